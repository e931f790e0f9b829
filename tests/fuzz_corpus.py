"""A corpus of bad, hostile and edge-case inputs over every command, and its runner.

Each case is a command line (``{tmp}`` stands for its scratch directory) and the
files it writes there first.  :func:`run_case` runs it
in-process through the CLI's ``main`` (catching ``SystemExit``) under an alarm,
and classifies the outcome:

- ``ok``: exit 0 and the ``--out`` directory holds a ``summary.json``;
- ``error``: exit 2 with exactly one line on stderr, starting ``error:``;
- ``traceback``: any other exception, any other exit status, or an error that
  is not one line;
- ``hang``: the alarm fired (:data:`CASE_TIMEOUT` seconds);
- ``partial``: whatever the outcome, a ``.partial-``/``.old-`` directory or a
  half-written ``--out`` (no ``summary.json``) was left behind.

Almost every case fails validation before any compute, so hundreds run in
seconds; a handful (``TINY``) train for a few steps.  ``benchmarks/fuzz.py``
runs the whole corpus and prints the counts.
"""

from __future__ import annotations

import contextlib
import io
import signal
import sys
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

CASE_TIMEOUT = 120  # seconds; a case that takes longer counts as a hang

# A tiny valid run of each config family, to which the bad values are added.
TINY = ["--set", "train.steps=3", "--set", "train.snapshots=2", "--set", "train.linear_snapshots=0"]
TINY_NET = [*TINY, "--set", "model.widths=[3, 3]", "--set", "data.n=8", "--set", "data.d=2"]
TINY_MAT = [*TINY, "--set", "problem.n=4", "--set", "problem.rank=1", "--set", "problem.observed=8"]


@dataclass
class Case:
    name: str
    argv: list[str]
    files: dict[str, bytes | np.ndarray | dict] = field(default_factory=dict)
    out: bool = True  # append --out {tmp}/out


@dataclass
class Outcome:
    case: str
    kind: str  # ok, error, traceback, hang
    partial: bool
    detail: str = ""


class _Hang(BaseException):
    pass


def _write(path: Path, content) -> None:
    if isinstance(content, bytes):
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


def run_case(case: Case, tmp: Path, timeout: float = CASE_TIMEOUT) -> Outcome:
    """Run one case in-process in the scratch directory ``tmp`` (created, left in place)."""
    from condensation.cli import main

    tmp.mkdir(parents=True, exist_ok=True)
    for name, content in case.files.items():
        _write(tmp / name, content)
    argv = [a.replace("{tmp}", str(tmp)) for a in case.argv]
    out = tmp / "out"
    if case.out:
        argv += ["--out", str(out)]
    err, std = io.StringIO(), io.StringIO()
    old_argv = sys.argv
    sys.argv = ["condensation", *argv]

    def alarm(signum, frame):
        raise _Hang

    old_handler = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, timeout)
    kind, detail = "ok", ""
    try:
        from condensation.cli import _common

        with (
            contextlib.redirect_stderr(err),
            contextlib.redirect_stdout(std),
            _swap_consoles(_common, std, err),
        ):
            try:
                main()
                code = 0
            except SystemExit as e:
                code = e.code if isinstance(e.code, int) else 1
    except _Hang:
        kind, code = "hang", None
    except BaseException as e:  # noqa: BLE001 - a traceback is what we count
        kind, code, detail = "traceback", None, f"{type(e).__name__}: {e}"[:300]
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old_handler)
        sys.argv = old_argv
    text = err.getvalue()
    if kind == "ok":
        lines = [ln for ln in text.splitlines() if ln.strip() and not ln.startswith("warning:")]
        if code == 0:
            if case.out and not (out / "summary.json").is_file():
                kind, detail = "traceback", "exit 0 without summary.json"
        elif code == 2 and len(lines) == 1 and lines[0].startswith("error:"):
            kind, detail = "error", lines[0]
        elif code == 2 and lines and lines[-1].startswith("Error:") and "Usage:" in text:
            kind, detail = "error", lines[-1]  # a usage error, printed by typer's click layer
        else:
            kind, detail = "traceback", f"exit {code}: {text[-300:]!r}"
    leftovers = [p.name for p in tmp.iterdir() if ".partial-" in p.name or ".old-" in p.name]
    half = out.exists() and out.is_dir() and not (out / "summary.json").is_file()
    partial = bool(leftovers) or (half and kind != "ok")
    return Outcome(case.name, kind, partial, detail)


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
    c = Counter(o.kind for o in outcomes)
    return {
        "cases": len(outcomes),
        "ok": c["ok"],
        "error": c["error"],
        "traceback": c["traceback"],
        "hang": c["hang"],
        "partial": sum(o.partial for o in outcomes),
    }


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
    "dir": b"",  # replaced by a directory below
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
        files = {} if fname == "dir" else {fname: content}
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
        ("--out non-empty dir", ["train", *TINY_NET, "--out", "{tmp}/d"], {"d": b""}),
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
    outcomes = []
    for i, case in enumerate(cases):
        tmp = root / f"case{i:04d}"
        if "dir" in case.files or case.name.endswith("data.path=dir"):
            (tmp / "dir").mkdir(parents=True, exist_ok=True)
        if case.name == "--out non-empty dir":
            (tmp / "d").mkdir(parents=True, exist_ok=True)
            (tmp / "d" / "keep.txt").write_text("precious")
            case.files = {}
        o = run_case(case, tmp)
        outcomes.append(o)
        if verbose == "all" or (verbose and (o.kind in ("traceback", "hang") or o.partial)):
            print(f"{o.kind:9s} partial={o.partial} {o.case}: {o.detail}", flush=True)
    return outcomes
