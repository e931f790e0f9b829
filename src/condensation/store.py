"""Run directories: resolved config, arrays, summary JSON, figures; atomic writes.

A run is assembled in a hidden sibling directory (``.DIR.partial-PID-*``) and
renamed into place only when everything is written, so an error or an
interrupt leaves no half-written output behind.

Never losing data:

- every run directory carries a marker, ``DIR/.condensation-run`` (JSON: tool,
  version, command, the run's key and the manifest of every file it wrote);
- ``--out`` onto an existing directory is refused unless it is empty, or it is
  such a run, holds only the files of its manifest, and ``overwrite`` was asked
  for (the CLI's ``--overwrite``); nothing else is ever deleted or replaced;
- a run holds the lock ``.DIR.lock`` (an exclusive ``flock`` on a file beside
  ``DIR``, released by the kernel when the process dies, so a lock left by a
  killed run is never mistaken for a live one) from before its compute until
  its directory is in place: a second run on the same ``--out`` is refused;
- partial directories of earlier runs whose process is gone are removed (they
  were made by this tool); writability and free space are checked up front.

Files and directories get the permissions of the user's umask (0644 / 0755
under the usual 022), not ``tempfile``'s private 0600 / 0700.
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import math
import os
import re
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import tomli_w

from condensation.errors import InputError

SUMMARY = "summary.json"
MARKER = ".condensation-run"
FIGURE_BYTES = 4_000_000  # a run's figures and small files, for the free-space check

log = logging.getLogger("condensation")


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, (np.bool_,)):
        return bool(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        f = float(obj)
        return f if math.isfinite(f) else None
    return obj


def write_json(path: Path, obj: Any) -> None:
    """JSON with NaN/inf written as null and numpy types as plain ones."""
    path.write_text(json.dumps(_jsonable(obj), indent=2, allow_nan=False) + "\n")


def write_toml(path: Path, obj: dict) -> None:
    path.write_text(tomli_w.dumps(obj))


def save_arrays(path: Path, **arrays: np.ndarray) -> None:
    np.savez_compressed(path, **arrays)


# ---- permissions ---------------------------------------------------------------------
def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _chmod_umask(path: Path, directory: bool) -> None:
    os.chmod(path, (0o777 if directory else 0o666) & ~_umask())


# ---- the marker ----------------------------------------------------------------------
def _files_under(d: Path) -> list[str]:
    """Every non-directory entry under ``d`` (recursively), as relative posix paths."""
    out = []
    for root, dirs, files in os.walk(d):
        rel = Path(root).relative_to(d)
        out += [(rel / f).as_posix() for f in files]
        out += [(rel / x).as_posix() for x in dirs if (Path(root) / x).is_symlink()]
    return sorted(out)


def read_marker(d: str | Path) -> dict | None:
    """The marker of a run directory written by this tool, or None."""
    p = Path(d) / MARKER
    try:
        m = json.loads(p.read_text())
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    if not isinstance(m, dict) or m.get("tool") != "condensation":
        return None
    if not isinstance(m.get("files"), list):
        return None
    return m


def write_marker(d: Path, key: str | None = None) -> None:
    """Write ``d/.condensation-run``, listing every file now under ``d``."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        ver = version("condensation")
    except PackageNotFoundError:  # a source checkout on PYTHONPATH
        ver = "unknown"
    files = [f for f in _files_under(d) if f != MARKER]
    write_json(
        d / MARKER,
        {
            "tool": "condensation",
            "version": ver,
            "command": " ".join(["condensation", *sys.argv[1:]]),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "key": key,
            "files": files,
        },
    )


def add_to_manifest(d: str | Path, *relpaths: str) -> None:
    """Record files the tool added to a finished run (e.g. a re-rendered report)."""
    m = read_marker(d)
    if m is None:
        return
    m["files"] = sorted(set(m["files"]) | set(relpaths))
    atomic_write_bytes(Path(d) / MARKER, (json.dumps(m, indent=2) + "\n").encode())


def is_run_dir(path: Path) -> bool:
    """A directory this tool wrote (it carries the marker)."""
    return read_marker(path) is not None


def completed_run(out: str | Path, key: str) -> bool:
    """``out`` is a finished run with this ``key`` and only the files it wrote."""
    m = read_marker(out)
    return m is not None and m.get("key") == key and not foreign_files(Path(out))


def foreign_files(d: Path) -> list[str]:
    """Files under the run directory ``d`` that its manifest does not list."""
    m = read_marker(d)
    listed = set(m["files"]) if m is not None else set()
    return [f for f in _files_under(d) if f != MARKER and f not in listed]


# ---- checks --------------------------------------------------------------------------
def resolve_out(out: str | Path) -> Path:
    """``out`` as an absolute path (symlinks kept), so that ``.`` has a name."""
    return Path(os.path.abspath(os.fspath(out)))


def check_out_dir(out: str | Path, overwrite: bool = False) -> None:
    """Refuse an ``--out`` whose contents this run would destroy.

    Accepted: a path that does not exist, an empty directory, or (with
    ``overwrite``) an earlier run directory holding only the files it wrote.
    """
    p = resolve_out(out)
    cwd = Path(os.path.abspath(os.getcwd()))
    if p == cwd or p in cwd.parents:
        raise InputError(
            "--out", str(out), "is the working directory or one above it", "choose a new directory"
        )
    if not p.exists() and not p.is_symlink():
        return
    if not p.is_dir() or p.is_symlink():
        raise InputError("--out", str(out), "exists and is not a directory", "choose a new path")
    if not any(p.iterdir()):
        return
    if read_marker(p) is None:  # refused before looking further (it may be a big tree)
        raise InputError(
            "--out",
            str(out),
            f"exists and was not written by condensation (no {MARKER} marker); nothing was changed",
            "choose a new directory",
        )
    foreign = foreign_files(p)
    if foreign:
        shown = ", ".join(foreign[:3]) + (", ..." if len(foreign) > 3 else "")
        raise InputError(
            "--out",
            str(out),
            f"is an earlier run but holds files condensation did not write ({shown})",
            "move those files out, or choose a new directory",
        )
    if not overwrite:
        raise InputError(
            "--out",
            str(out),
            "is an earlier run directory",
            "pass --overwrite to replace it, or choose a new directory",
        )


def check_free_space(out: str | Path, need_bytes: float) -> None:
    """Refuse when the disk of ``out`` has less than ``need_bytes`` (plus 10%) free."""
    p = resolve_out(out)
    parent = next((q for q in (p.parent, *p.parent.parents) if q.exists()), Path("/"))
    free = shutil.disk_usage(parent).free
    if free < 1.1 * need_bytes:
        raise InputError(
            "--out",
            str(out),
            f"the run needs about {need_bytes / 1e6:.0f} MB but its disk has "
            f"{free / 1e6:.0f} MB free",
            "free some space, choose a directory on another disk, or store fewer snapshots",
        )


# ---- the lock ------------------------------------------------------------------------
_held: dict[Path, list[int]] = {}  # lock path -> [fd, depth] for locks this process holds


def lock_path(out: str | Path) -> Path:
    p = resolve_out(out)
    return p.parent / f".{p.name}.lock"


def _not_writable(out: str | Path, e: OSError) -> InputError:
    return InputError(
        "--out",
        str(out),
        f"cannot be written ({e.strerror or e})",
        "choose a directory you can write to",
    )


@contextmanager
def out_lock(out: str | Path) -> Iterator[None]:
    """Hold the lock of ``out`` (re-entrant within one process); refuse if another
    live process holds it.  Also the check that ``out``'s parent is writable."""
    lock = lock_path(out)
    if lock in _held:
        _held[lock][1] += 1
        try:
            yield
        finally:
            _held[lock][1] -= 1
        return
    try:
        lock.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise _not_writable(out, e) from None
    while True:
        try:
            fd = os.open(lock, os.O_CREAT | os.O_RDWR, 0o666 & ~_umask())
        except OSError as e:
            raise _not_writable(out, e) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno not in (errno.EAGAIN, errno.EACCES):
                os.close(fd)
                raise
            holder = os.read(fd, 64).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise InputError(
                "--out",
                str(out),
                f"is being written by another run (pid {holder}, lock {lock.name})",
                "wait for that run to finish, or choose another --out",
            ) from None
        try:  # the file we locked must still be the one at the path (not unlinked meanwhile)
            same = os.fstat(fd).st_ino == os.stat(lock).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    os.ftruncate(fd, 0)
    os.write(fd, str(os.getpid()).encode())
    _held[lock] = [fd, 1]
    try:
        yield
    finally:
        del _held[lock]
        try:
            lock.unlink()
        except FileNotFoundError:
            pass
        os.close(fd)


# ---- stale partial directories -------------------------------------------------------
def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_stale(out: str | Path) -> list[Path]:
    """Remove ``.DIR.partial-PID-*`` / ``.DIR.old-PID`` siblings of ``out`` whose
    process is gone (this tool made them); restore ``DIR`` from an ``.old`` one
    when a replacement was cut off in between.  Returns what was removed."""
    p = resolve_out(out)
    removed = []
    if not p.parent.is_dir():
        return removed
    pat = re.compile(rf"^\.{re.escape(p.name)}\.(partial|old)-(\d+)(-.*)?$")
    for q in sorted(p.parent.iterdir()):
        m = pat.match(q.name)
        if m is None:
            if q.name.startswith(f".{p.name}.partial-"):
                log.warning("%s was left by an earlier version of condensation; remove it", q)
            continue
        pid = int(m.group(2))
        if pid == os.getpid() or _alive(pid):
            continue
        if m.group(1) == "old" and not p.exists() and is_run_dir(q):
            os.replace(q, p)
            log.warning("restored %s from %s (a replacement was interrupted)", p, q.name)
            continue
        shutil.rmtree(q, ignore_errors=True)
        removed.append(q)
        log.warning("removed %s, left by an earlier run (pid %d) that was killed", q, pid)
    return removed


# ---- the run directory ---------------------------------------------------------------
@contextmanager
def reserve(
    out: str | Path, overwrite: bool = False, need_bytes: float = FIGURE_BYTES
) -> Iterator[Path]:
    """Everything checked before any compute: ``out`` may be written (see
    :func:`check_out_dir`), its disk has room for ``need_bytes``, and it is
    locked against other runs until the block ends.  Yields the absolute path."""
    with out_lock(out):
        check_out_dir(out, overwrite)
        check_free_space(out, need_bytes)
        clean_stale(out)
        yield resolve_out(out)


@contextmanager
def _signals_deferred() -> Iterator[None]:
    """SIGINT/SIGTERM held back for a few renames (main thread only)."""
    sigs = {signal.SIGINT, signal.SIGTERM}
    try:
        old = signal.pthread_sigmask(signal.SIG_BLOCK, sigs)
    except (ValueError, OSError):  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


@contextmanager
def run_directory(
    out: str | Path, overwrite: bool = False, *, key: str | None = None
) -> Iterator[Path]:
    """Yield a temporary directory that becomes ``out`` when the block succeeds.

    ``out`` is checked and locked (:func:`reserve`); an existing run is replaced
    only with ``overwrite``.  The directory gets the marker (with ``key``, e.g. a
    hash of the resolved config) listing every file written in the block.
    """
    out_abs = resolve_out(out)
    with reserve(out, overwrite, need_bytes=0):
        tmp = Path(
            tempfile.mkdtemp(prefix=f".{out_abs.name}.partial-{os.getpid()}-", dir=out_abs.parent)
        )
        _chmod_umask(tmp, directory=True)
        try:
            yield tmp
            write_marker(tmp, key)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        put_in_place(tmp, out_abs)


def put_in_place(src: Path, out: Path) -> None:
    """Rename the finished directory ``src`` to ``out``, replacing an earlier ``out``
    (moved aside first, removed after), with SIGINT/SIGTERM held back meanwhile."""
    with _signals_deferred():
        if out.exists():
            old = out.with_name(f".{out.name}.old-{os.getpid()}")
            os.replace(out, old)
            os.replace(src, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(src, out)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write a single file via a temporary file and a rename (umask permissions)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        _chmod_umask(Path(tmp), directory=False)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
