"""A corpus of bad, hostile and edge-case inputs over every command, and its runner.

Each case is a command line (``{tmp}`` stands for its scratch directory), the
files it writes there first (``{secret}`` in their contents stands for a token
unique to the case; a name ending in ``/`` is a folder), an optional ``setup``
(e.g. an interrupted run that leaves a checkpoint, then tampered with) and an
optional ``patch`` (in-process hooks for the run: a read-only folder, a full
disk).  :func:`run_case` runs it in-process through the CLI's ``main`` (catching
``SystemExit``) under an alarm, and classifies the outcome:

- ``ok``: exit 0 and the ``--out`` directory holds a ``summary.json``;
- ``error``: exit 2 with exactly one line on stderr, starting ``error:``, with
  no control character in it;
- ``traceback``: any other exception, any other exit status, or an error that
  is not one line;
- ``hang``: the alarm fired (:data:`CASE_TIMEOUT` seconds, or the case's own);

and, whatever the outcome, two flags:

- ``partial``: something new was left behind that the outcome does not
  explain: a ``.partial-``/``.old-`` directory or a ``.lock``, a half-written
  ``--out`` (no ``summary.json``), anything at all after a refusal or a crash,
  anything outside the case's outputs after a valid run;
- ``foreign``: a file or folder the case did not create itself (everything its
  files and setup wrote is foreign to the command) was changed or deleted, or
  the case's secret token was read into a new or changed file (raw or base64).

An ``expect`` on a case (``"ok"``, ``"error"``, or a text the one-line error
must contain, e.g. the field it blames) marks an outcome that is neither
traceback nor hang but still wrong (a silently wrong result): ``unexpected``.

Almost every case fails validation before any compute, so hundreds run in
seconds; a handful (``TINY``) train for a few steps.  :func:`run_signal` is the
one case that needs a process of its own: ``train`` sent SIGINT or SIGTERM in
its first seconds.  ``benchmarks/fuzz.py`` runs the whole corpus and prints the
counts.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import hashlib
import io
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from helpers import ctrl_c_in_train

CASE_TIMEOUT = 120  # seconds; a case that takes longer counts as a hang

# A tiny valid run of each config family, to which the bad values are added.
TINY = ["--set", "train.steps=3", "--set", "train.snapshots=2", "--set", "train.linear_snapshots=0"]
TINY_NET = [*TINY, "--set", "model.widths=[3, 3]", "--set", "data.n=8", "--set", "data.d=2"]
TINY_MAT = [*TINY, "--set", "problem.n=4", "--set", "problem.rank=1", "--set", "problem.observed=8"]


@dataclass
class Case:
    name: str
    argv: list[str]
    files: dict[str, bytes | str | np.ndarray | dict] = field(default_factory=dict)
    out: bool = True  # append --out {tmp}/out
    # after the files, before the snapshot; returns the paths the tool itself made there
    # (e.g. the checkpoint of an interrupted run), which the command may remove
    setup: Callable[[Path], list[str] | None] | None = None
    patch: Callable[[Path], contextlib.AbstractContextManager] | None = None  # around the run
    outputs: tuple[str, ...] = ()  # paths under {tmp} a valid run may create (besides out)
    env: dict[str, str] = field(default_factory=dict)
    expect: str | None = None  # "ok", "error", or a text the error line must contain
    timeout: float | None = None
    check: Callable[[Path], str | None] | None = None  # after a valid run: what is wrong


@dataclass
class Outcome:
    case: str
    kind: str  # ok, error, traceback, hang (run_signal: interrupted)
    partial: bool
    detail: str = ""
    foreign: list[str] = field(default_factory=list)  # foreign paths changed or read
    unexpected: bool = False


class _Hang(BaseException):
    pass


def _write(path: Path, content, token: str = "", tmp: Path | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, str):
        content = content.encode()
    if isinstance(content, bytes):
        content = content.replace(b"{secret}", token.encode())
        if tmp is not None:
            content = content.replace(b"{tmp}", os.fsencode(tmp))
        path.write_bytes(content)
    elif isinstance(content, np.ndarray):
        np.save(path, content)  # numpy appends .npy unless the name has it
        if not path.exists():
            Path(str(path) + ".npy").rename(path)
    elif isinstance(content, dict):
        with open(path, "wb") as f:
            np.savez(f, **content)
    else:
        path.write_text(str(content))


def snapshot(root: Path) -> dict[str, str]:
    """Every path under ``root`` (not following links): ``relpath -> sha256`` for
    files, ``"dir"`` for folders, ``"link:TARGET"`` for symbolic links."""
    seen: dict[str, str] = {}
    for dirpath, dirs, files in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        for name in dirs + files:
            full = os.path.join(dirpath, name)
            key = os.path.normpath(os.path.join(rel, name))
            if os.path.islink(full):
                seen[key] = "link:" + os.readlink(full)
            elif name in dirs:
                seen[key] = "dir"
            else:
                try:
                    with open(full, "rb") as f:
                        seen[key] = hashlib.sha256(f.read()).hexdigest()
                except OSError as e:
                    seen[key] = f"unreadable: {e.errno}"
    return seen


def _needles(token: str) -> list[bytes]:
    """The token raw and as it appears inside base64 text at each of the 3 alignments."""
    raw = token.encode()
    out = [raw]
    for skip in range(3):
        part = raw[skip:]
        part = part[: len(part) // 3 * 3]
        out.append(base64.b64encode(part))
    return out


def foreign_changes(before: dict[str, str], after: dict[str, str], root: Path, token: str):
    """Foreign paths (in ``before``) changed or gone, and new or changed files holding
    the ``token``."""
    bad = [f"changed {p}" if p in after else f"deleted {p}" for p, h in before.items()
           if after.get(p) != h]  # fmt: skip
    needles = _needles(token)
    for p, h in after.items():
        if before.get(p) == h or h == "dir" or h.startswith("link:"):
            continue
        try:
            data = (root / p).read_bytes()
        except OSError:
            continue
        if any(n in data for n in needles):
            bad.append(f"secret read into {p}")
    return bad


def call_cli(argv: list[str]) -> tuple[int | None, str, BaseException | None]:
    """Run ``condensation ARGV`` in-process: ``(exit status, stderr, exception)``; the
    exception is whatever escaped ``main`` other than ``SystemExit`` (status None)."""
    from condensation.cli import _common, main

    err, std = io.StringIO(), io.StringIO()
    old_argv = sys.argv
    sys.argv = ["condensation", *argv]
    code, exc = 0, None
    try:
        with (
            contextlib.redirect_stderr(err),
            contextlib.redirect_stdout(std),
            _swap_consoles(_common, std, err),
        ):
            try:
                main()
            except SystemExit as e:
                code = e.code if isinstance(e.code, int) else 1
    except _Hang:
        raise
    except BaseException as e:  # noqa: BLE001 - a traceback is what we count
        code, exc = None, e
    finally:
        sys.argv = old_argv
    return code, err.getvalue(), exc


@contextlib.contextmanager
def _environ(env: dict[str, str]):
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _control(text: str) -> bool:
    return any(ord(c) < 32 and c != "\t" or 127 <= ord(c) < 160 for c in text)


# a progress line of a batch log ("gd steps 3/20 done, eta 1 s"): a run that failed
# while writing its output (disk full) has progressed first; its error is still one line
_PROGRESS = re.compile(r"^\S.* \d+/\d+ done(, .*)?$")


def classify(code: int | None, text: str, out: Path | None) -> tuple[str, str]:
    """``(kind, detail)`` of a finished CLI call (exit ``code``, stderr ``text``)."""
    lines = [
        ln
        for ln in text.splitlines()
        if ln.strip() and not ln.startswith("warning:") and not _PROGRESS.match(ln)
    ]
    if code == 0:
        if out is not None and not (out / "summary.json").is_file():
            return "traceback", "exit 0 without summary.json"
        return "ok", ""
    if code == 2 and len(lines) == 1 and lines[0].startswith("error:"):
        if _control(lines[0]):
            return "traceback", f"control character in the error line: {lines[0]!r}"[:300]
        return "error", lines[0]
    if code == 2 and lines and lines[-1].startswith("Error:") and "Usage:" in text:
        return "error", lines[-1]  # a usage error, printed by typer's click layer
    return "traceback", f"exit {code}: {text[-300:]!r}"


def run_case(case: Case, tmp: Path, timeout: float = CASE_TIMEOUT) -> Outcome:
    """Run one case in-process in the scratch directory ``tmp`` (created, left in place)."""
    token = f"SECRET-{secrets.token_hex(12)}"
    tmp.mkdir(parents=True, exist_ok=True)
    for name, content in case.files.items():
        if name.endswith("/"):
            (tmp / name).mkdir(parents=True, exist_ok=True)
        else:
            _write(tmp / name, content, token, tmp)
    argv = [a.replace("{tmp}", str(tmp)) for a in case.argv]
    out = tmp / "out"
    if case.out:
        argv += ["--out", str(out)]

    def alarm(signum, frame):
        raise _Hang

    old_handler = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, case.timeout or timeout)
    before: dict[str, str] | None = None
    owned: list[str] = []
    kind, detail = "ok", ""
    try:
        with _environ(case.env):
            if case.setup is not None:
                try:
                    owned = list(case.setup(tmp) or [])
                except _Hang:
                    raise
                except BaseException as e:  # noqa: BLE001
                    return Outcome(case.name, "traceback", False, f"setup failed: {e!r}"[:300])
            before = snapshot(tmp)
            patch = case.patch(tmp) if case.patch is not None else contextlib.nullcontext()
            with patch:
                code, text, exc = call_cli(argv)
        if exc is not None:
            kind, detail = "traceback", f"{type(exc).__name__}: {exc}"[:300]
        else:
            kind, detail = classify(code, text, out if case.out else None)
    except _Hang:
        kind, detail = "hang", ""
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old_handler)
    before = before if before is not None else {}
    after = snapshot(tmp)
    mine = {k: v for k, v in before.items() if k not in owned}
    foreign = foreign_changes(mine, after, tmp, token)
    outputs = (*(("out",) if case.out else ()), *case.outputs)
    new = [p for p in after if p not in before]
    leftovers = [
        p
        for p in new
        if ".partial-" in p or ".old-" in p or p.endswith(".lock")
        or kind != "ok"
        or not any(p == o or p.startswith(o + os.sep) for o in outputs)
    ]  # fmt: skip
    partial = bool(leftovers)
    if partial and kind != "traceback":
        detail = f"{detail} [left: {', '.join(sorted(leftovers)[:3])}]".strip()
    unexpected = False
    if case.check is not None and kind == "ok":
        problem = case.check(tmp)
        if problem:
            unexpected, detail = True, problem
    if case.expect is not None and kind in ("ok", "error"):
        wrong = (
            kind != case.expect if case.expect in ("ok", "error")
            else kind != "error" or not detail.startswith(f"error: {case.expect}")
        )  # fmt: skip
        unexpected = unexpected or wrong
        if wrong:
            detail = f"expected {case.expect!r}, got {kind}: {detail}"[:300]
    return Outcome(case.name, kind, partial, detail, foreign, unexpected)


@contextlib.contextmanager
def _swap_consoles(common, std, err):
    """Point the CLI's rich consoles at the captured streams for one case."""
    from rich.console import Console

    saved = common.console, common.console_err
    common.console = Console(file=std, width=200)
    common.console_err = Console(file=err, width=200)
    mods = [m for name, m in sys.modules.items() if name.startswith("condensation.cli")]
    patched = []
    for m in mods:
        for attr, new in (("console", common.console), ("console_err", common.console_err)):
            if hasattr(m, attr):
                patched.append((m, attr, getattr(m, attr)))
                setattr(m, attr, new)
    try:
        yield
    finally:
        for m, attr, old in patched:
            setattr(m, attr, old)
        common.console, common.console_err = saved


def summarise(outcomes: list[Outcome]) -> dict[str, int]:
    """Counts by outcome: valid runs, one-line errors (exit 2), tracebacks, hangs, runs
    interrupted as they should be (:func:`run_signal`), and the flags."""
    c = Counter(o.kind for o in outcomes)
    return {
        "cases": len(outcomes),
        "ok": c["ok"],
        "error": c["error"],
        "traceback": c["traceback"],
        "hang": c["hang"],
        "interrupted": c["interrupted"],
        "partial": sum(o.partial for o in outcomes),
        "foreign": sum(bool(o.foreign) for o in outcomes),
        "unexpected": sum(o.unexpected for o in outcomes),
    }


def failed(counts: dict[str, int]) -> bool:
    """Whether the counts break a promise: any traceback, hang, partial output,
    foreign file changed or read, or silently wrong result."""
    return any(counts[k] for k in ("traceback", "hang", "partial", "foreign", "unexpected"))


def bad(o: Outcome) -> bool:
    return o.kind in ("traceback", "hang") or o.partial or bool(o.foreign) or o.unexpected


# ---- hooks for the filesystem cases (in-process; tests run as root, so chmod cannot) ---
def _inside(path, folder: Path) -> bool:
    try:
        p = os.path.abspath(os.fsdecode(path))
    except TypeError:  # a file descriptor
        return False
    return p.startswith(str(folder) + os.sep)


_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND


@contextlib.contextmanager
def _denied(folder: Path, err: int, *, opens_only: bool = False):
    """Every write inside ``folder`` fails with ``err`` (EACCES: a read-only folder;
    ENOSPC with ``opens_only``: a full disk once the files are opened for writing)."""
    import builtins

    def fail(path):
        raise OSError(err, os.strerror(err), os.fsdecode(path))

    real = {n: getattr(os, n) for n in ("mkdir", "open", "replace", "rename", "unlink",
                                         "remove", "rmdir", "access")}  # fmt: skip
    real_open = io.open

    def mkdir(path, *a, **k):
        if _inside(path, folder):
            fail(path)
        return real["mkdir"](path, *a, **k)

    def os_open(path, flags, *a, **k):
        lock = opens_only and os.fsdecode(path).endswith(".lock")
        if flags & _WRITE_FLAGS and _inside(path, folder) and not lock:
            fail(path)
        return real["open"](path, flags, *a, **k)

    def two(name):
        def f(src, dst, *a, **k):
            if _inside(src, folder) or _inside(dst, folder):
                fail(dst)
            return real[name](src, dst, *a, **k)

        return f

    def one(name):
        def f(path, *a, **k):
            if _inside(path, folder):
                fail(path)
            return real[name](path, *a, **k)

        return f

    def access(path, mode, *a, **k):
        if mode & os.W_OK and _inside(path, folder):
            return False
        return real["access"](path, mode, *a, **k)

    def open_(file, mode="r", *a, **k):
        if any(c in mode for c in "wax+") and _inside(file, folder):
            fail(file)
        return real_open(file, mode, *a, **k)

    hooks = {"mkdir": mkdir, "open": os_open, "access": access}
    if not opens_only:
        hooks |= {"replace": two("replace"), "rename": two("rename"), "unlink": one("unlink"),
                  "remove": one("remove"), "rmdir": one("rmdir")}  # fmt: skip
    else:
        hooks = {"open": os_open}
    try:
        for n, f in hooks.items():
            setattr(os, n, f)
        io.open = builtins.open = open_
        yield
    finally:
        for n in hooks:
            setattr(os, n, real[n])
        io.open = builtins.open = real_open


def read_only(sub: str) -> Callable[[Path], contextlib.AbstractContextManager]:
    """A patch: the folder ``{tmp}/SUB`` cannot be written."""
    return lambda tmp: _denied(tmp / sub, errno.EACCES)


def disk_full(tmp: Path) -> contextlib.AbstractContextManager:
    """A patch: the disk is full once files are written (after any free-space check;
    the lock file, made first, still fits)."""
    return _denied(tmp, errno.ENOSPC, opens_only=True)


@contextlib.contextmanager
def no_free_space(tmp: Path):
    """A patch: the disk reports almost no free space (the free-space check refuses)."""
    real = os.statvfs

    def statvfs(path):
        r = real(path)
        return os.statvfs_result((r.f_bsize, r.f_frsize, r.f_blocks, 1, 1, *tuple(r)[5:]))

    os.statvfs = statvfs
    try:
        yield
    finally:
        os.statvfs = real


# ---- setups: an earlier run of the tool, then tampered with ---------------------------
# a run long enough to leave a checkpoint when interrupted at step 20
CK_SETS = ["--set", "model.widths=[4, 4]", "--set", "train.steps=60",
           "--set", "train.snapshots=4", "--set", "train.linear_snapshots=3"]  # fmt: skip
CK_ENV = {"CONDENSATION_CHECKPOINT_EVERY": "0"}


def ctrl_c_train(out: Path, argv: list[str] | None = None, at_step: int = 20):
    """``train ARGV --out OUT`` in-process (``ARGV`` default :data:`CK_SETS`), Ctrl-C
    at step ``at_step``: ``(exit status, stderr, exception)`` as :func:`call_cli`."""
    with ctrl_c_in_train(at_step), _environ(CK_ENV):
        return call_cli(["train", *(argv or CK_SETS), "--out", str(out)])


def interrupted_train(tmp: Path) -> list[str]:
    """A setup: :func:`ctrl_c_train` on ``{tmp}/out`` (exit 130); the files of the
    checkpoint it leaves in ``{tmp}/.out.checkpoint``, relative to ``tmp`` (the tool's)."""
    code, text, exc = ctrl_c_train(tmp / "out")
    ck = tmp / ".out.checkpoint"
    if exc is not None or code != 130 or not (ck / "meta.json").is_file():
        raise RuntimeError(f"no checkpoint (exit {code}, {exc!r}, {text[-200:]!r})")
    return [os.path.join(".out.checkpoint", k) for k in snapshot(ck)] + [".out.checkpoint"]


def _tamper(edit: Callable[[Path, dict], None]) -> Callable[[Path], None]:
    """A setup: an interrupted run, then ``edit(checkpoint dir, meta)`` (meta rewritten)."""

    def setup(tmp: Path) -> list[str]:  # the checkpoint's folder stays the tool's to remove
        owned = interrupted_train(tmp)
        ck = tmp / ".out.checkpoint"
        meta = json.loads((ck / "meta.json").read_text())
        edit(ck, meta)
        (ck / "meta.json").write_text(json.dumps(meta))
        return owned

    return setup


def _carry_outside(ck: Path, meta: dict) -> None:
    (ck.parent / "outside").mkdir()
    shutil.copy(ck / meta["carry"], ck.parent / "outside" / "victim.npz")
    meta["carry"] = "../outside/victim.npz"


def _carry_absolute(ck: Path, meta: dict) -> None:
    shutil.copy(ck / meta["carry"], ck.parent / "victim.npz")
    meta["carry"] = str(ck.parent / "victim.npz")


def _chunk_outside(ck: Path, meta: dict) -> None:
    (ck.parent / "outside").mkdir()
    shutil.copy(ck / meta["chunks"][0]["file"], ck.parent / "outside" / "victim.npz")
    meta["chunks"][0]["file"] = "../outside/victim.npz"


def _rewrite_carry(how: Callable[[bytes], bytes]) -> Callable[[Path, dict], None]:
    def edit(ck: Path, meta: dict) -> None:
        p = ck / meta["carry"]
        p.write_bytes(how(p.read_bytes()))

    return edit


def _flip(data: bytes) -> bytes:
    b = bytearray(data)
    b[len(b) // 2] ^= 0x40
    return bytes(b)


_TAMPERINGS: dict[str, Callable[[Path, dict], None]] = {
    "carry ../outside/victim.npz": _carry_outside,
    "carry absolute path": _carry_absolute,
    "records chunk ../outside": _chunk_outside,
    "carry truncated": _rewrite_carry(lambda b: b[: len(b) // 2]),
    "carry bit-flipped": _rewrite_carry(_flip),
    "carry empty": _rewrite_carry(lambda b: b""),
    "meta.json not json": lambda ck, meta: meta.update(carry=["x"], index="many"),
    "meta index beyond the records": lambda ck, meta: meta.update(index=99),
}


# ---- early signals: train in a process of its own -------------------------------------
SIGNAL_SETS = ["--set", "model.widths=[8, 8]", "--set", "train.steps=200000"]


def run_signal(sig: int, delay: float, tmp: Path, wait: float = 90.0) -> Outcome:
    """``python -m condensation train ... --out {tmp}/out`` sent ``sig`` after ``delay``
    seconds: ``interrupted`` if it exits 128 + sig with one line on stderr and writes
    nothing (but a checkpoint its line names)."""
    tmp.mkdir(parents=True, exist_ok=True)
    name = f"{signal.Signals(sig).name} at {delay:.2f} s"
    cmd = [sys.executable, "-m", "condensation", "train", *SIGNAL_SETS, "--out", str(tmp / "out")]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(delay)
    early_exit = p.poll()
    p.send_signal(sig)
    try:
        _, err = p.communicate(timeout=wait)
    except subprocess.TimeoutExpired:
        p.kill()
        p.communicate()
        return Outcome(name, "hang", False, "the signal was lost: still running")
    lines = [ln for ln in err.splitlines() if ln.strip()]
    kind, detail = "interrupted", lines[0] if lines else ""
    if early_exit is not None:
        kind, detail = "traceback", f"exited {early_exit} before the signal"
    elif p.returncode != 128 + sig or len(lines) != 1 or _control(lines[0]):
        kind, detail = "traceback", f"exit {p.returncode}: {err[-300:]!r}"
    left = [q.name for q in tmp.iterdir()]
    if left == [".out.checkpoint"] and "--resume" in detail:
        left = []
    return Outcome(name, kind, bool(left), detail + (f" [left: {left}]" if left else ""))


def signal_runs(n: int, root: Path, seed: int = 0, verbose=False) -> list[Outcome]:
    """``n`` SIGINTs and ``n`` SIGTERMs at random times in ``[0.1, 1.5]`` s."""
    rng = np.random.default_rng(seed)
    outcomes = []
    for i in range(2 * n):
        sig = signal.SIGINT if i % 2 == 0 else signal.SIGTERM
        o = run_signal(sig, float(rng.uniform(0.1, 1.5)), root / f"signal{i:03d}")
        outcomes.append(o)
        if verbose == "all" or (verbose and bad(o)):
            print(f"{o.kind:11s} partial={o.partial} {o.case}: {o.detail}", flush=True)
    return outcomes


# ---- the corpus ----------------------------------------------------------------------
def _npz_bytes(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def _zip_with(name: str, data: bytes) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr(name, data)
    return buf.getvalue()


_rng = np.random.default_rng(0)
_GOOD_X, _GOOD_Y = _rng.uniform(-1, 1, (8, 2)), _rng.standard_normal(8)

# Hostile files, by name: each is used as data.path, init.path and problem.path.
BAD_FILES: dict[str, bytes | np.ndarray | dict] = {
    "empty.npz": _npz_bytes(),
    "zero.npz": b"",
    "garbage.npz": b"PK\x03\x04 this is not really a zip archive",
    "truncated.npz": _npz_bytes(x=_GOOD_X, y=_GOOD_Y)[:100],
    "renamed.npz": np.zeros((3, 2)),
    "object.npz": {"x": np.array([{"a": 1}, None], dtype=object), "y": np.zeros(2)},
    "complex.npz": {"x": _GOOD_X + 1j, "y": _GOOD_Y, "M": np.ones((3, 3)) * 1j},
    "strings.npz": {"x": np.array([["a", "b"]]), "y": np.array(["c"]), "M": np.array([["a"]])},
    "nan.npz": {"x": np.array([[np.nan, 1.0]]), "y": np.ones(1), "M": np.full((2, 2), np.nan)},
    "inf.npz": {"x": np.array([[np.inf, 1.0]]), "y": np.ones(1)},
    "huge.npz": {"x": np.full((4, 2), 1e300), "y": np.ones(4), "M": np.full((3, 3), 1e300)},
    "d0.npz": {"x": np.zeros((5, 0)), "y": np.zeros(5)},
    "n0.npz": {"x": np.zeros((0, 2)), "y": np.zeros(0)},
    "shape.npz": {"x": np.zeros((3, 2)), "y": np.zeros(4), "M": np.zeros(5)},
    "x3d.npz": {"x": np.zeros((3, 2, 2)), "y": np.zeros(3)},
    "missing.npz": {"a": np.zeros(3)},
    "pickle-inside.npz": _zip_with("x.npy", b"\x80\x04\x95 not an npy header"),
    "text.csv": b"1,2,3\n4,five,6\n",
    "empty-field.csv": b"1,2,3\n4,,6\n",
    "ragged.csv": b"1,2,3\n4,5\n",
    "semicolon.csv": b"1;2;3\n4;5;6\n",
    "tabs.csv": b"1\t2\t3\n4\t5\t6\n",
    "binary.csv": bytes(range(256)) * 4,
    "latin1.csv": "x,\xe9\n1,2\n".encode("latin-1"),
    "nul.csv": b"1,2\x00,3\n",
    "blank.csv": b"\n\n\n",
    "header-only.csv": b"a,b,y\n",
    "one-column.csv": b"1\n2\n3\n",
    "nan.csv": b"1,nan\n2,3\n",
    "huge.csv": b"1,1e308\n2,3\n",
    "inf.csv": b"inf,1\n2,3\n",
    "data.txt": b"1,2\n",
    "dir": b"",  # a directory (written as dir/)
}

_BAD_VALUES: dict[str, list[str]] = {
    # value strings as written after key= in --set (TOML), per key
    "int": ["-1", "0", "1.5", "'ten'", "true", "[1]", "1e400", "9" * 30, "9" * 5000, "{a=1}"],
    "float": [
        "0",
        "-1",
        "nan",
        "inf",
        "-inf",
        "'x'",
        "true",
        "1e999",
        "1e300",
        "[1.0]",
        "9" * 30,
        "1979-05-27",
        "1+2j",
    ],
    "str": ["1", "true", "[1]", "''", "'no-such'", "'[bold]x[/]'"],
    "list": ["[]", "1", "'a'", "[0]", "[-1]", "[1e400]", "['a']", "[[1]]", "[true]"],
}

_NET_KEYS = {
    "data.n": "int",
    "data.d": "int",
    "data.seed": "int",
    "data.noise": "float",
    "data.dataset": "str",
    "data.bias": "str",
    "model.depth": "int",
    "model.widths": "list",
    "model.activation": "str",
    "init.scale": "float",
    "init.gamma": "float",
    "init.seed": "int",
    "init.seeds": "list",
    "init.scales": "list",
    "train.lr": "float",
    "train.steps": "int",
    "train.dtype": "str",
    "train.snapshots": "int",
    "train.linear_snapshots": "int",
}
_MAT_KEYS = {
    "problem.kind": "str",
    "problem.n": "int",
    "problem.cols": "int",
    "problem.rank": "int",
    "problem.spectrum": "str",
    "problem.observed": "int",
    "problem.seed": "int",
    "model.depth": "int",
    "model.width": "int",
    "init.scheme": "str",
    "init.scale": "float",
    "init.scales": "list",
    "init.seed": "int",
    "init.seeds": "list",
    "train.lr": "float",
    "train.steps": "int",
    "train.snapshots": "int",
    "train.linear_snapshots": "int",
}

# Specific hostile settings that passed validation before and crashed or hung later.
_SPECIAL_NET = [
    ["model.widths=[40000, 40000]"],
    ["model.widths=[100000000, 1]"],
    ["data.n=1000000000"],
    ["data.d=100000000"],
    ["init.gamma=1e6"],
    ["init.scale=1e-320"],
    ["init.scale=1e-40", "train.dtype='float32'"],
    ["model.depth=1000", "model.widths=[2]"],
    ["train.snapshots=1000000000"],
    ["train.linear_snapshots=1000000000"],
    ["init.seeds=[-1]"],
    ["init.seeds=[4294967296]"],
    ["data.seed=-5"],
    ["init.scales=[1e-3, 0.0]"],
    ["a.b.c=1"],
    ["data.n"],
    ["=1"],
    ["data.=1"],
    [".x=1"],
    ["data.n=1=2"],
    ["model.widths=[3]"],
    ["init.scale=1e-3", "init.gamma=1"],
    ["init.path='{tmp}/nosuch.npz'"],
    # huge but allowed: these run (tiny) and must end in marked members, not crashes
    ["init.scale=1e90"],
    ["train.lr=1e90"],
    ["data.noise=1e90"],
    ["init.scales=[1e-3, 1e90]", "train.dtype='float32'"],
    ["init.scale=1e-150"],
]
_SPECIAL_MAT = [
    ["model.depth=1000"],
    ["problem.n=100000000"],
    ["problem.n=3000", "problem.kind='sensing'", "problem.observed=3000"],
    ["problem.rank=5"],
    ["problem.observed=1000"],
    ["problem.seed=-1"],
    ["init.seeds=[4294967296]"],
    ["init.scale=1e-200", "model.depth=3"],
    ["model.width=0"],
    ["init.scale=1e90"],
    ["train.lr=1e90"],
    ["init.scales=[1e-3, 1e50]", "model.depth=3"],
    ["problem.kind='sensing'", "problem.observed=0"],
]

_CONFIG_FILES: dict[str, bytes] = {
    "latin1.toml": "[data]\ndataset = 'caf\xe9'\n".encode("latin-1"),
    "binary.toml": bytes(range(256)),
    "syntax.toml": b"[data\nn = 1\n",
    "empty.toml": b"",
    "array-section.toml": b"data = [1, 2]\n",
    "nested.toml": b"[model.widths]\na = 1\n",
    "unknown.toml": b"[data]\ncolour = 'red'\n",
    "bigint.toml": b"[train]\nsteps = " + b"9" * 5000 + b"\n",
    "date.toml": b"[train]\nlr = 1979-05-27\n",
    "bom.toml": b"\xef\xbb\xbf[train]\nsteps = 3\n",
    "utf16.toml": "[train]\nsteps = 3\n".encode("utf-16"),
}


# ---- issue 20: the edges -------------------------------------------------------------
_EXPERIMENT = {
    "kind": "experiment",
    "name": "e",
    "title": "An experiment",
    "story": "A story.",
    "section": "other",
    "figures": [{"file": "fig.png", "caption": "a figure", "numbers": ["a"]}],
    "headline": {"a": 1.5},
    "params": {"p": 1},
}
_PNG = b"\x89PNG\r\n\x1a\n not really a picture"
_SPEC_HEAD = (
    '[sweep]\ncommand = "train"\n[sweep.set]\n"train.snapshots" = 2\n'
    '"train.linear_snapshots" = 0\n"model.widths" = [3, 3]\n"data.n" = 8\n"data.d" = 2\n'
)  # train.steps = 3 too, unless an axis
_SWEEP = ["sweep", "{tmp}/spec.toml", "--out", "{tmp}/sw", "--workers", "0"]
_DEAD = "4194305"  # above the largest pid Linux allows (2**22): never a live process
_ROWS = "".join(f"{a:.3f},{b:.3f},{c:.3f}\n" for (a, b), c in zip(_GOOD_X, _GOOD_Y))


def _exp(**changes) -> str:
    return json.dumps({**_EXPERIMENT, **changes})


def _marked(*files: str) -> Callable[[Path], list[str]]:
    """A setup giving ``{tmp}/rep`` the run marker condensation writes, listing
    ``files`` (so ``report`` may write there): the marker is the tool's own."""

    def setup(tmp: Path) -> list[str]:
        marker = {"tool": "condensation", "files": sorted(files)}
        (tmp / "rep" / ".condensation-run").write_text(json.dumps(marker))
        return ["rep/.condensation-run"]

    return setup


def _without(*keys: str) -> str:
    return json.dumps({k: v for k, v in _EXPERIMENT.items() if k not in keys})


def _spec(axes: str, sets: str = "") -> str:
    steps = "" if "train.steps" in axes else '"train.steps" = 3\n'
    return _SPEC_HEAD + steps + sets + "[sweep.axes]\n" + axes


def _n_samples(n: int) -> Callable[[Path], str | None]:
    def check(tmp: Path) -> str | None:
        got = json.loads((tmp / "out" / "summary.json").read_text()).get("n")
        return None if got == n else f"used {got} samples of {n}"

    return check


def _symlink(link: str, target: str) -> Callable[[Path], None]:
    def setup(tmp: Path) -> None:
        os.symlink(tmp / target, tmp / link)

    return setup


def _resume_with_foreign(tmp: Path) -> list[str]:
    """An interrupted run's checkpoint, then a user's file put into its folder."""
    owned = interrupted_train(tmp)
    (tmp / ".out.checkpoint" / "records-draft.txt").write_text("my draft")
    return owned


def edge_cases() -> list[Case]:
    """The classes of issue 20: filesystem, ownership, checkpoint tampering, report
    inputs, sweep specs, CSV, key names and integer values, numerics at the edges."""
    cases: list[Case] = []
    train, tiny = ["train", *TINY_NET], TINY_NET

    # filesystem: name length, path length, no space, a read-only parent, a full disk
    long_name = "a" * 240
    deep = "/".join(["d" * 200] * 25)
    spec_ok = {"spec.toml": _spec('"init.seed" = [0, 1]\n')}
    exp_ok = {"rep/summary.json": _exp(), "rep/fig.png": _PNG}
    cases += [
        Case("train --out a 240-character name", [*train, "--out", f"{{tmp}}/{long_name}"],
             out=False, outputs=(long_name,)),
        Case("train --out a 5000-character path", [*train, "--out", f"{{tmp}}/{deep}/out"],
             out=False, expect="error"),
        Case("train --out missing parents, no free space",
             [*train, "--out", "{tmp}/missing/deeper/out"], out=False, patch=no_free_space,
             expect="error"),
        Case("train --out no free space", train, patch=no_free_space, expect="error"),
        Case("train disk full after the check", train, patch=disk_full, expect="error"),
        Case("matrix disk full after the check", ["matrix", *TINY_MAT], patch=disk_full,
             expect="error"),
        Case("effective disk full after the check", ["effective", *tiny], patch=disk_full,
             expect="error"),
        Case("train --out under a read-only folder", [*train, "--out", "{tmp}/ro/out"],
             {"ro/": b""}, out=False, patch=read_only("ro"), expect="error"),
        Case("sweep --out under a read-only folder",
             ["sweep", "{tmp}/spec.toml", "--out", "{tmp}/ro/sw", "--workers", "0"],
             {**spec_ok, "ro/": b""}, out=False, patch=read_only("ro"), expect="error"),
        Case("sweep disk full", _SWEEP, spec_ok, out=False, patch=disk_full, expect="error"),
        Case("report in a read-only folder", ["report", "{tmp}/rep"], exp_ok, out=False,
             patch=read_only("rep"), expect="error"),
        Case("report disk full", ["report", "{tmp}/rep"], exp_ok, out=False, patch=disk_full,
             expect="error"),
    ]  # fmt: skip

    # ownership: a user's files named like our leftovers, beside --out
    leftovers = {
        ".out.old-2023/notes.txt": "my notes {secret}",
        ".out.partial-1999-final/thesis.tex": "my thesis {secret}",
        f".out.partial-{_DEAD}-abc/summary.json": '{"mine": "{secret}"}',
        ".out.checkpoint/records-draft.txt": "my draft {secret}",
        ".out.lock": "my lock notes {secret}",
        ".out.old-1999/.condensation-run": '{"tool": "condensation", "files": []}',
        ".out.checkpoint/meta.json": '{"tool": "condensation", "note": "{secret}"}',
        ".out.checkpoint/carry-0.npz": "my carry {secret}",
        ".out.partial-1/x": "pid 1 is alive",
    }
    for name, content in leftovers.items():
        cases.append(Case(f"train beside a user's {name}", train, {name: content}))
    cases += [
        Case("train beside every leftover name", train, dict(leftovers)),
        Case("matrix beside a user's .out.old-2023/", ["matrix", *TINY_MAT],
             {".out.old-2023/notes.txt": "mine {secret}"}),
        Case("effective beside a user's .out.partial-1999-final/", ["effective", *tiny],
             {".out.partial-1999-final/notes.txt": "mine {secret}"}),
        Case("train --overwrite beside a user's .out.old-2023/", [*train, "--overwrite"],
             {".out.old-2023/notes.txt": "mine {secret}"}),
        Case("sweep --out a user's folder with cells/", _SWEEP,
             {**spec_ok, "sw/cells/": b"", "sw/results.csv": "a,b\n1,{secret}\n",
              "sw/summary.json": '{"kind": "mine"}', "sw/spec.toml": "# mine {secret}\n",
              "sw/progress.log": "mine {secret}\n"},
             out=False, outputs=("sw",), expect="error"),
        Case("sweep --out a user's folder claiming kind sweep", _SWEEP,
             {**spec_ok, "sw/summary.json": '{"kind": "sweep"}',
              "sw/results.csv": "a,b\n1,{secret}\n"},
             out=False, outputs=("sw",), expect="error"),
        Case("sweep beside a user's .sw.lock", _SWEEP, {**spec_ok, ".sw.lock": "mine {secret}"},
             out=False, outputs=("sw",)),
        Case("valid sweep", _SWEEP, spec_ok, out=False, outputs=("sw",), expect="ok"),
    ]  # fmt: skip

    # checkpoints: an interrupted run's checkpoint, tampered with, then --resume
    resume = ["train", *CK_SETS, "--resume"]
    cases.append(Case("train --resume after Ctrl-C", resume, setup=interrupted_train,
                      env=CK_ENV, expect="ok"))  # fmt: skip
    cases.append(Case("train --resume, a user's file in the checkpoint", resume,
                      setup=_resume_with_foreign, env=CK_ENV))  # fmt: skip
    for name, edit in _TAMPERINGS.items():
        cases.append(Case(f"train --resume, checkpoint {name}", resume, setup=_tamper(edit),
                          env=CK_ENV, expect="error"))  # fmt: skip

    # report: hand-edited or hostile run directories
    report = ["report", "{tmp}/rep"]
    secret_png = {"secret.png": b"\x89PNG {secret}"}
    exp_dir = {"exp/summary.json": _exp(), "exp/fig.png": b"\x89PNG {secret}"}
    summaries = {
        "valid": _exp(),
        "figure absolute": _exp(figures=[{"file": "{tmp}/secret.png", "caption": "c"}]),
        "figure ../secret.png": _exp(figures=[{"file": "../secret.png", "caption": "c"}]),
        "no title": _without("title"),
        "no name": _without("name"),
        "no story": _without("story"),
        "only kind": '{"kind": "experiment"}',
        "figure without file": _exp(figures=[{"caption": "c"}]),
        "figure without caption": _exp(figures=[{"file": "fig.png"}]),
        "figures a number": _exp(figures=5),
        "figures strings": _exp(figures=["fig.png"]),
        "figure file a number": _exp(figures=[{"file": 3, "caption": "c"}]),
        "numbers a number": _exp(figures=[{"file": "fig.png", "caption": "c", "numbers": 3}]),
        "title a list": _exp(title=["x"]),
        "headline a list": _exp(headline=[1]),
        "params a string": _exp(params="p"),
        "other_numbers a dict": _exp(other_numbers={"a": 1}),
        "kind a number": '{"kind": 5}',
        "a list": "[]",
        "a string": '"experiment"',
        "reproduce ../exp": '{"kind": "reproduce", "experiments": ["../exp"]}',
        "reproduce absolute exp": '{"kind": "reproduce", "experiments": ["{tmp}/exp"]}',
        "reproduce experiments a string": '{"kind": "reproduce", "experiments": "exp"}',
        "reproduce experiments [1]": '{"kind": "reproduce", "experiments": [1]}',
        "reproduce experiments [null]": '{"kind": "reproduce", "experiments": [null]}',
        "reproduce experiments [.]": '{"kind": "reproduce", "experiments": ["."]}',
        "not JSON": "{",
        "not UTF-8": b'{"kind": "experiment", "title": "caf\xe9"}',
    }
    for name, summary in summaries.items():
        files = {"rep/summary.json": summary, "rep/fig.png": _PNG, **secret_png, **exp_dir}
        expect = "ok" if name == "valid" else None
        cases.append(Case(f"report summary.json {name}", report, files, out=False,
                          outputs=("rep/report.html",), expect=expect,
                          setup=_marked("summary.json", "fig.png")))  # fmt: skip
    cases += [
        Case("report figure a symbolic link outside", report,
             {"rep/summary.json": _exp(), **secret_png}, out=False,
             outputs=("rep/report.html",), setup=_symlink("rep/fig.png", "secret.png")),
        Case("report report.html a folder", report, {**exp_ok, "rep/report.html/": b""},
             out=False, expect="error"),
        Case("report report.html a user's file", report,
             {**exp_ok, "rep/report.html": "my page {secret}"}, out=False,
             setup=_marked("summary.json", "fig.png"), expect="error"),
        Case("report summary.json a folder", report, {"rep/summary.json/": b""}, out=False,
             expect="error"),
    ]  # fmt: skip

    # sweep specs
    specs = {
        "not UTF-8": b"# caf\xe9\n" + _spec('"init.seed" = [0]\n').encode(),
        "UTF-16": _spec('"init.seed" = [0]\n').encode("utf-16"),
        "init.gamma with init.scale": _spec('"init.gamma" = [0.5, 1.0]\n"init.scale" = [1e-3]\n'),
        "init.gamma axis, init.scales set": _spec(
            '"init.gamma" = [0.5, 1.0]\n', '"init.scales" = [0.001]\n'
        ),
        "init.scales axis, init.gamma set": _spec(
            '"init.scales" = [[0.001]]\n', '"init.gamma" = 0.5\n'
        ),
        "init.layer_scales with init.scale": _spec(
            '"init.scale" = [1e-3, 1e-2]\n', '"init.layer_scales" = [0.1, 0.1, 0.1]\n'
        ),
        "duplicate steps [3, 3.0]": _spec('"train.steps" = [3, 3.0]\n'),
        "duplicate seeds [0, 0]": _spec('"init.seed" = [0, 0]\n'),
        "duplicate lr [0.1, 1e-1]": _spec('"train.lr" = [0.1, 1e-1]\n'),
        "10^12 cells": _spec(
            "".join(
                f'"{k}" = [{", ".join(str(v * f + a) for v in range(1000))}]\n'
                for k, a, f in (("data.seed", 0, 1), ("init.seed", 0, 1),
                                ("train.lr", 0.001, 0.001), ("data.noise", 0, 0.001))
            )
        ),  # fmt: skip
        "control characters in an axis": _spec('"data.\\u001b[2Jn" = [8]\n'),
    }
    for name, spec in specs.items():
        timeout = 30 if "cells" in name else None
        expect = None if name.startswith("duplicate seeds") else "error"
        cases.append(Case(f"sweep spec {name}", _SWEEP, {"spec.toml": spec}, out=False,
                          outputs=("sw",), expect=expect, timeout=timeout))  # fmt: skip

    # CSV files: a BOM, a first row with a typo, hexadecimal
    csv_cases = {
        "BOM headerless": ("\ufeff" + _ROWS, "ok"),
        "BOM with a header": ("\ufeffx1,x2,y\n" + _ROWS, "ok"),
        "first row 1,2,oops": ("1,2,oops\n" + _ROWS, "error"),
        "first row 0x10": ("0x10,1,2\n" + _ROWS, "error"),
        "header x1,2,y": ("x1,2,y\n" + _ROWS, "error"),
        "bad cell in row 5": (_ROWS[:60] + "1,2,oops\n" + _ROWS[60:], "error"),
    }
    for name, (text, expect) in csv_cases.items():
        cases.append(Case(f"train CSV {name}", [*train, "--set", "data.path='{tmp}/d.csv'"],
                          {"d.csv": text}, expect=expect,
                          check=_n_samples(len(_GOOD_Y)) if expect == "ok" else None))  # fmt: skip

    # key names and values
    for key in ("data.\x1b[2Jn", "da\nta.n", "data.\x00n", "\x07", "data.\x9bn", "data.n\r"):
        expect = None if key.endswith("\r") else "error"  # (a trailing CR is whitespace)
        cases.append(Case(f"train key {key!r}", [*train, "--set", f"{key}=8"], expect=expect))
    cases += [
        Case("train config key with an escape", ["train", "{tmp}/c.toml", *tiny],
             {"c.toml": '[data]\n"n\\u001b[2J" = 3\n'}, expect="error"),
        Case("train data.d=1e300", [*train, "--set", "data.d=1e300"], expect="data.d"),
        Case("train data.n=1e18", [*train, "--set", "data.n=1e18"], expect="data.n"),
        Case("train train.steps=1e300", [*train, "--set", "train.steps=1e300"],
             expect="train.steps"),
        Case("matrix problem.n=1e300", ["matrix", *TINY_MAT, "--set", "problem.n=1e300"],
             expect="problem.n"),
        Case("train --set value with a newline",
             [*train, "--set", "data.noise=0.1\nmodel.depth=7"], expect="error"),
        Case("train z = 0 data",
             [*train, "--set", "data.path='{tmp}/z0.csv'"],
             {"z0.csv": "1,0,1\n-1,0,1\n0,1,1\n0,-1,1\n"}),
        Case("effective z = 0 data",
             ["effective", *tiny, "--set", "data.path='{tmp}/z0.csv'"],
             {"z0.csv": "1,0,1\n-1,0,1\n0,1,1\n0,-1,1\n"}),  # (or a clear status)
        Case("train depth 16 widths 1 scale 1e-25",
             [*train, "--set", "model.depth=16", "--set", f"model.widths={[1] * 15}",
              "--set", "init.scale=1e-25"]),
        Case("matrix depth 16 width 1 scale 1e-25",
             ["matrix", *TINY_MAT, "--set", "model.depth=16", "--set", "model.width=1",
              "--set", "init.scale=1e-25"]),
        Case("train steps=auto beyond the step limit",
             [*train, "--set", "model.depth=16", "--set", f"model.widths={[1] * 15}",
              "--set", "init.scale=1e-25", "--set", "train.steps='auto'"], expect="error",
             timeout=60),
    ]  # fmt: skip
    return cases


def corpus() -> list[Case]:
    """Every case, in a fixed order."""
    cases: list[Case] = []
    # 1. every config key of both families with every bad value of its type
    for cmd, keys, tiny in (("train", _NET_KEYS, TINY_NET), ("matrix", _MAT_KEYS, TINY_MAT)):
        for key, typ in keys.items():
            for v in _BAD_VALUES[typ]:
                cases.append(Case(f"{cmd} {key}={v[:20]}", [cmd, *tiny, "--set", f"{key}={v}"]))
    # effective shares train's config: a sample of the keys
    for key in ("model.depth", "init.scale", "init.seeds", "data.d", "train.dtype"):
        for v in _BAD_VALUES[_NET_KEYS[key]][:5]:
            cases.append(
                Case(f"effective {key}={v}", ["effective", *TINY_NET, "--set", f"{key}={v}"])
            )
    # 2. specific hostile settings
    for sets in _SPECIAL_NET:
        for cmd in ("train", "effective"):
            argv = [cmd, *TINY_NET]
            for s in sets:
                argv += ["--set", s]
            cases.append(Case(f"{cmd} {' '.join(sets)[:40]}", argv))
    for sets in _SPECIAL_MAT:
        argv = ["matrix", *TINY_MAT]
        for s in sets:
            argv += ["--set", s]
        cases.append(Case(f"matrix {' '.join(sets)[:40]}", argv))
    # 3. hostile files as data, init and problem files
    for fname, content in BAD_FILES.items():
        files = {"dir/": b""} if fname == "dir" else {fname: content}
        cases.append(
            Case(
                f"train data.path={fname}",
                ["train", *TINY_NET, "--set", f"data.path='{{tmp}}/{fname}'"],
                files,
            )
        )
        if fname.endswith(".npz"):
            cases.append(
                Case(
                    f"train init.path={fname}",
                    ["train", *TINY_NET, "--set", f"init.path='{{tmp}}/{fname}'"],
                    dict(files),
                )
            )
            cases.append(
                Case(
                    f"matrix problem.path={fname}",
                    ["matrix", *TINY_MAT, "--set", f"problem.path='{{tmp}}/{fname}'"],
                    dict(files),
                )
            )
            cases.append(
                Case(
                    f"matrix sensing path={fname}",
                    [
                        "matrix",
                        *TINY_MAT,
                        "--set",
                        "problem.kind='sensing'",
                        "--set",
                        f"problem.path='{{tmp}}/{fname}'",
                    ],
                    dict(files),
                )
            )
    cases.append(
        Case(
            "effective data.path=text.csv",
            ["effective", *TINY_NET, "--set", "data.path='{tmp}/text.csv'"],
            {"text.csv": BAD_FILES["text.csv"]},
        )
    )
    # 4. config files in odd encodings and shapes
    for fname, content in _CONFIG_FILES.items():
        for cmd, tiny in (("train", TINY_NET), ("matrix", TINY_MAT), ("effective", TINY_NET)):
            cases.append(
                Case(f"{cmd} config {fname}", [cmd, f"{{tmp}}/{fname}", *tiny], {fname: content})
            )
    cases.append(Case("train config missing", ["train", "{tmp}/nosuch.toml"]))
    cases.append(Case("train config is a dir", ["train", "{tmp}"]))
    # 5. command-line options
    for argv in (
        ["effective", *TINY_NET, "--form", "nosuch"],
        ["effective", *TINY_NET, "--rtol", "0"],
        ["effective", *TINY_NET, "--rtol", "nan"],
        ["effective", *TINY_NET, "--rtol", "1"],
        [
            "effective",
            *TINY_NET,
            "--form",
            "reduced",
            "--set",
            "model.depth=2",
            "--set",
            "model.widths=[3]",
        ],
        ["effective", *TINY_NET, "--set", "model.activation='relu'"],
        ["train", *TINY_NET, "--nosuch"],
        ["run", "nosuch"],
        ["run", "escape-scaling", "--quick", "--set", "eps_min=-1"],
        ["run", "escape-scaling", "--quick", "--set", "seed=-1"],
        ["run", "escape-scaling", "--quick", "--set", "n_eps=0"],
        ["run", "escape-scaling", "--quick", "--set", "width=" + "9" * 30],
        ["run", "escape-scaling", "--quick", "--set", "eps_min=1e999"],
        ["run", "escape-scaling", "--quick", "--set", "nosuch=1"],
        ["run", "escape-scaling", "--quick", "--set", "x"],
        ["run", "two-vs-three-layer", "--quick", "--set", "lr=0"],
        ["run", "two-vs-three-layer", "--quick", "--set", "seed=4294967296"],
        ["run", "matrix-completion", "--quick", "--set", "seeds=[-1]"],
        ["run", "matrix-completion", "--quick", "--set", "depths=[]"],
    ):
        cases.append(Case(" ".join(argv[:1] + argv[len(TINY_NET) + 1 :])[:60], argv))
    for argv in (
        ["reproduce", "--workers", "0"],
        ["reproduce", "--workers", "-3"],
        ["reproduce", "--only", "nosuch"],
        ["report", "{tmp}/nosuch"],
    ):
        cases.append(Case(" ".join(argv), argv, out=argv[0] == "reproduce"))
    # 6. output paths
    for name, argv, files in (
        ("--out is a file", ["train", *TINY_NET, "--out", "{tmp}/afile"], {"afile": b"x"}),
        (
            "--out non-empty dir",
            ["train", *TINY_NET, "--out", "{tmp}/d"],
            {"d/keep.txt": b"precious {secret}"},
        ),
    ):
        cases.append(Case(name, argv, files, out=False))
    # 7. a few valid tiny runs (they train)
    cases += [
        Case("valid train", ["train", *TINY_NET]),
        Case(
            "valid train csv",
            ["train", *TINY_NET, "--set", "data.path='{tmp}/ok.csv'"],
            {
                "ok.csv": b"x1,x2,y\n"
                + b"".join(f"{a},{b},{c}\n".encode() for (a, b), c in zip(_GOOD_X, _GOOD_Y))
            },
        ),
        Case("valid matrix", ["matrix", *TINY_MAT]),
        Case("valid effective", ["effective", *TINY_NET, "--set", "model.widths=[3, 3]"]),
    ]
    # 8. issue 20: the edges (filesystem, ownership, checkpoints, report, sweep, values)
    cases += edge_cases()
    return cases


# A small representative sample for the default test run: one of each family.
SAMPLE_NAMES = (
    "train model.widths=[]",
    "train init.seeds=[-1]",
    "train init.gamma=1e6",
    "train model.widths=[40000, 40000]",
    "matrix model.depth=1000",
    "train data.path=object.npz",
    "train data.path=renamed.npz",
    "train data.path=empty.npz",
    "train data.path=ragged.csv",
    "train data.path=binary.csv",
    "matrix problem.path=complex.npz",
    "train config latin1.toml",
    "train a.b.c=1",
    "reproduce --workers 0",
)


def sample() -> list[Case]:
    by_name = {c.name: c for c in corpus()}
    return [by_name[n] for n in SAMPLE_NAMES if n in by_name]


def run_all(cases: list[Case], root: Path, *, verbose: bool = False) -> list[Outcome]:
    """Run every case in its own scratch directory under ``root``; print the bad ones
    (every one with ``verbose="all"``)."""
    outcomes = []
    for i, case in enumerate(cases):
        o = run_case(case, root / f"case{i:04d}")
        outcomes.append(o)
        if verbose == "all" or (verbose and bad(o)):
            flags = f"partial={o.partial} foreign={o.foreign[:3]}" if bad(o) else ""
            print(f"{o.kind:9s} {flags} {o.case}: {o.detail}", flush=True)
    return outcomes
