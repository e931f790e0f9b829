"""Run directories: resolved config, arrays, summary JSON, figures; atomic writes.

A run is assembled in a hidden sibling directory (``.DIR.partial-TOKEN``) and
renamed into place only when everything is written, so an error or an
interrupt leaves no half-written output behind.

Never losing data:

- every run directory carries a marker, ``DIR/.condensation-run`` (JSON: tool,
  version, command, the run's key, the manifest of every file it wrote and the
  *owner* that wrote it: pid, process start time, host, boot and a random token);
- ``--out`` onto an existing directory is refused unless it is empty, or it is
  such a run, holds only the files of its manifest, and ``overwrite`` was asked
  for (the CLI's ``--overwrite``); nothing else is ever deleted or replaced;
- a run holds the lock ``.DIR.lock`` (an exclusive ``flock`` on a file beside
  ``DIR`` holding the owner record, released by the kernel when the process dies)
  from before its compute until its directory is in place: a second run on the
  same ``--out`` is refused; a file of that name the tool did not write is refused
  and left alone;
- a hidden leftover beside ``DIR`` (a partial directory, an earlier run moved
  aside during a replacement) is removed or restored only when its own marker
  proves it was made by this tool (the token in its name matches the owner record
  in its marker) and the process that made it is gone (pid, and the start time
  against pid reuse); anything else of a similar name is left alone, with one
  note.  Names never make a path ours;
- every check (names within the system's limits, free space, a writable parent)
  runs before anything is created; a refusal creates nothing, and a failure while
  creating the missing parents of ``DIR`` removes just the folders it made;
- an error of the file system while writing (disk full, no permission) is a
  one-line :class:`~condensation.errors.InputError` about ``--out``, with nothing
  half-written left.

Hidden sibling names fit the system's 255-byte limit whatever the length of
``DIR``'s name: a name too long keeps its beginning and gets a short hash
(``.LONGNAME~1a2b3c4d.partial-TOKEN``).

Files and directories get the permissions of the user's umask (0644 / 0755
under the usual 022), not ``tempfile``'s private 0600 / 0700.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import logging
import math
import os
import re
import secrets
import shutil
import signal
import socket
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


def jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
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
    path.write_text(json.dumps(jsonable(obj), indent=2, allow_nan=False) + "\n")


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


# ---- owners: who made a leftover, and is it gone ---------------------------------------
NAME_MAX = 255  # bytes in one path component (Linux, macOS)
PATH_MAX = 4096  # bytes in a whole path
# room kept in a path for the files a run writes inside its directory
# (``arrays/snapshots.npz``, ``.DIR.checkpoint/records-1-20.npz.TOKEN.tmp``, ...)
INNER_PATH_BYTES = 160
_SUFFIX_BYTES = 32  # the longest suffix a hidden sibling gets (".partial-" + 16 hex)
_TOKEN_RE = re.compile(r"^[0-9a-f]{16}$")


def new_token() -> str:
    """A random token (16 hex digits) naming and proving one leftover."""
    return secrets.token_hex(8)


def _start_time(pid: int) -> str | None:
    """The start time of process ``pid`` (Linux: clock ticks since boot), or None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (OSError, ValueError):
        return None
    fields = stat[stat.rfind(")") + 2 :].split()
    return fields[19] if len(fields) > 19 else None


def _boot_id() -> str | None:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip() or None
    except OSError:
        return None


def owner_record(token: str | None = None) -> dict:
    """Who is making a leftover now: this process (pid, start time, host, boot) and a
    random ``token`` (new unless given)."""
    return {
        "tool": "condensation",
        "pid": os.getpid(),
        "start": _start_time(os.getpid()),
        "host": socket.gethostname(),
        "boot": _boot_id(),
        "token": token or new_token(),
    }


def valid_owner(rec: Any) -> dict | None:
    """``rec`` if it is an owner record as :func:`owner_record` writes it, else None."""
    if not isinstance(rec, dict) or rec.get("tool") != "condensation":
        return None
    pid, token = rec.get("pid"), rec.get("token")
    if type(pid) is not int or pid <= 0 or not isinstance(token, str):
        return None
    if not _TOKEN_RE.match(token) or not isinstance(rec.get("host"), str):
        return None
    if not all(rec.get(k) is None or isinstance(rec.get(k), str) for k in ("start", "boot")):
        return None
    return rec


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def is_this_process(rec: dict) -> bool:
    """The owner record ``rec`` was written by this very process."""
    return (
        rec["pid"] == os.getpid()
        and rec["host"] == socket.gethostname()
        and rec.get("start") == _start_time(os.getpid())
    )


def owner_gone(rec: dict) -> bool:
    """True only when the process of the owner record ``rec`` provably runs no more:
    same host, and either another boot, or its pid is dead, or that pid now belongs
    to a process started at another time (pid reuse).  Unknown means alive."""
    if rec["host"] != socket.gethostname() or is_this_process(rec):
        return False
    boot = _boot_id()
    if boot is not None and rec.get("boot") is not None and rec["boot"] != boot:
        return True
    if not _alive(rec["pid"]):
        return True
    start = _start_time(rec["pid"])
    return start is not None and rec.get("start") is not None and start != rec["start"]


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError, UnicodeDecodeError):
        return None


def read_owner(path: str | Path) -> dict | None:
    """The owner record stored as JSON in the file ``path``, or None (not ours)."""
    p = Path(path)
    if p.is_symlink() or not p.is_file():
        return None
    return valid_owner(_read_json(p))


# ---- hidden sibling names ------------------------------------------------------------
def hidden_stem(name: str) -> str:
    """``.NAME``, or for a name too long to take a suffix within ``NAME_MAX`` its
    beginning and a short hash of the whole: ``.NAMEBEGINNING~1a2b3c4d``."""
    stem = "." + name
    raw = os.fsencode(stem)
    if len(raw) <= NAME_MAX - _SUFFIX_BYTES:
        return stem
    digest = hashlib.sha256(os.fsencode(name)).hexdigest()[:8]
    cut = raw[: NAME_MAX - _SUFFIX_BYTES - 9]
    for back in range(4):  # end on a whole UTF-8 character
        try:
            text = cut[: len(cut) - back].decode("utf-8")
            break
        except UnicodeDecodeError:
            continue
    else:
        text = os.fsdecode(cut)
    return f"{text}~{digest}"


def hidden_sibling(out: str | Path, kind: str, token: str | None = None) -> Path:
    """The hidden sibling ``.DIR.KIND`` (or ``.DIR.KIND-TOKEN``) of the run directory
    ``out``; its name fits ``NAME_MAX`` (see :func:`hidden_stem`)."""
    p = resolve_out(out)
    tail = kind if token is None else f"{kind}-{token}"
    return p.parent / f"{hidden_stem(p.name)}.{tail}"


def inside(directory: str | Path, name: Any) -> Path | None:
    """``directory/name`` when ``name`` (read from one of our own files) is a plain file
    name that stays inside ``directory`` (no separator, no ``..``, not absolute, not a
    link out of it); else None."""
    if not isinstance(name, str) or name in ("", ".", ".."):
        return None
    if "/" in name or (os.altsep and os.altsep in name) or "\0" in name:
        return None
    d = Path(directory)
    p = d / name
    try:
        real_d = os.path.realpath(d)
        if os.path.dirname(os.path.realpath(p)) != real_d:
            return None
    except (OSError, ValueError):
        return None
    return p


# ---- notes -----------------------------------------------------------------------------
_noted: set[str] = set()


def note_left_alone(paths: list[Path], why: str) -> None:
    """One note naming the leftovers ``paths`` that were left alone (each path once per
    process, so nested steps of one run do not repeat it)."""
    new = [p for p in paths if str(p) not in _noted]
    if not new:
        return
    _noted.update(str(p) for p in new)
    shown = ", ".join(p.name for p in new[:3]) + (", ..." if len(new) > 3 else "")
    log.warning("left alone %s in %s: %s", shown, new[0].parent, why)


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
    m = _read_json(p)
    if not isinstance(m, dict) or m.get("tool") != "condensation":
        return None
    if not isinstance(m.get("files"), list):
        return None
    return m


def _write_marker_dict(d: Path, m: dict) -> None:
    atomic_write_bytes(d / MARKER, (json.dumps(jsonable(m), indent=2) + "\n").encode())


def write_marker(d: Path, key: str | None = None) -> None:
    """Write ``d/.condensation-run``, listing every file now under ``d`` (the owner
    record of a partial directory made by :func:`run_directory` is kept)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        ver = version("condensation")
    except PackageNotFoundError:  # a source checkout on PYTHONPATH
        ver = "unknown"
    before = read_marker(d)
    files = [f for f in _files_under(d) if f != MARKER]
    m = {
        "tool": "condensation",
        "version": ver,
        "command": " ".join(["condensation", *sys.argv[1:]]),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "key": key,
        "files": files,
    }
    if before is not None and valid_owner(before.get("owner")):
        m["owner"] = before["owner"]
    _write_marker_dict(d, m)


def add_to_manifest(d: str | Path, *relpaths: str) -> None:
    """Record files the tool added to a finished run (e.g. a re-rendered report)."""
    m = read_marker(d)
    if m is None:
        return
    m["files"] = sorted(set(m["files"]) | set(relpaths))
    _write_marker_dict(Path(d), m)


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


def check_names(out: str | Path) -> None:
    """Refuse an ``--out`` whose path the system cannot hold: a component longer than
    ``NAME_MAX`` bytes, or a whole path (with the files a run writes inside it) longer
    than ``PATH_MAX``.  Reads nothing from the disk."""
    p = resolve_out(out)
    for part in p.parts:
        n = len(os.fsencode(part))
        if n > NAME_MAX:
            raise InputError(
                "--out",
                str(out),
                f"a folder or file name in it is {n} bytes long; the system's limit is "
                f"{NAME_MAX}; nothing was created",
                "choose a shorter name",
            )
    n = len(os.fsencode(str(p)))
    if n + 1 + INNER_PATH_BYTES > PATH_MAX:
        raise InputError(
            "--out",
            str(out),
            f"the path is {n} bytes long; with the files a run writes inside it, it would "
            f"pass the system's limit of {PATH_MAX} bytes; nothing was created",
            "choose a shorter path",
        )


def _nearest_existing(p: Path) -> Path:
    return next((q for q in (p.parent, *p.parent.parents) if os.path.lexists(q)), Path("/"))


def check_writable(out: str | Path) -> None:
    """Refuse when ``out`` cannot be created: its nearest existing ancestor is not a
    directory, or this user may not write there (or the disk is read-only)."""
    p = resolve_out(out)
    q = _nearest_existing(p)
    if not q.is_dir():
        raise InputError(
            "--out",
            str(out),
            f"cannot be written ({q} is not a directory); nothing was created",
            "choose a directory you can write to",
        )
    if not os.access(q, os.W_OK | os.X_OK):
        why = "a read-only disk" if _read_only(q) else "no permission"
        raise InputError(
            "--out",
            str(out),
            f"cannot be written ({why} to write in {q}); nothing was created",
            "choose a directory you can write to",
        )


def _read_only(q: Path) -> bool:
    try:
        return bool(os.statvfs(q).f_flag & os.ST_RDONLY)
    except (OSError, AttributeError):
        return False


def check_out_dir(out: str | Path, overwrite: bool = False) -> None:
    """Refuse an ``--out`` whose contents this run would destroy.

    Accepted: a path that does not exist, an empty directory, or (with
    ``overwrite``) an earlier run directory holding only the files it wrote.
    """
    check_names(out)
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
    parent = next((q for q in (p.parent, *p.parent.parents) if q.is_dir()), Path("/"))
    free = shutil.disk_usage(parent).free
    if free < 1.1 * need_bytes:
        raise InputError(
            "--out",
            str(out),
            f"the run needs about {need_bytes / 1e6:.0f} MB but its disk has "
            f"{free / 1e6:.0f} MB free",
            "free some space, choose a directory on another disk, or store fewer snapshots",
        )


_DISK_FULL = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC), errno.EFBIG}
_NO_WRITE = {errno.EACCES, errno.EPERM, errno.EROFS}


def output_error(e: OSError, out: str | Path) -> InputError | None:
    """The one-line error for a file-system failure while writing ``out`` (disk full,
    no permission, read-only, name too long), or None for any other ``OSError``.
    A permission error counts only when it names a path beside or inside ``out``."""
    what = e.strerror or str(e)
    if e.errno in _DISK_FULL:
        return InputError(
            "--out",
            str(out),
            f"the disk filled up while writing ({what}); nothing was written",
            "free some space, or choose a directory on another disk",
        )
    fname = e.filename if isinstance(e.filename, str) else None
    parent = str(resolve_out(out).parent)
    near = fname is not None and (
        os.path.abspath(fname) == parent
        or os.path.abspath(fname).startswith(parent.rstrip(os.sep) + os.sep)
    )
    if e.errno in _NO_WRITE and near:
        return InputError(
            "--out",
            str(out),
            f"cannot be written ({what}: {fname}); nothing was written",
            "choose a directory you can write to",
        )
    if e.errno == errno.ENAMETOOLONG and near:
        return InputError(
            "--out", str(out), f"a path is too long ({fname})", "choose a shorter --out"
        )
    return None


def _make_parents(out: str | Path) -> list[Path]:
    """Create the missing parents of ``out``; return those made (outermost first).  On
    failure the ones made are removed again and the error is one line."""
    p = resolve_out(out)
    missing = []
    q = p.parent
    while not os.path.lexists(q):
        missing.append(q)
        q = q.parent
    made: list[Path] = []
    try:
        for d in reversed(missing):
            os.mkdir(d)
            made.append(d)
    except OSError as e:
        _remove_made(made)
        raise (output_error(e, out) or _not_writable(out, e)) from None
    return made


def _remove_made(made: list[Path]) -> None:
    """Remove the folders this run created (deepest first), as far as they are empty."""
    for d in reversed(made):
        try:
            os.rmdir(d)
        except OSError:
            return


# ---- the lock ------------------------------------------------------------------------
_held: dict[Path, list] = {}  # lock path -> [fd, depth, token] for locks this process holds


def lock_path(out: str | Path) -> Path:
    """The lock file ``.DIR.lock`` beside the run directory ``out``."""
    return hidden_sibling(out, "lock")


def _not_writable(out: str | Path, e: OSError) -> InputError:
    return InputError(
        "--out",
        str(out),
        f"cannot be written ({e.strerror or e}); nothing was created",
        "choose a directory you can write to",
    )


def _busy(out: str | Path, lock: Path, holder: str) -> InputError:
    return InputError(
        "--out",
        str(out),
        f"is being written by another run (pid {holder}, lock {lock.name})",
        "wait for that run to finish, or choose another --out",
    )


def _foreign_lock(out: str | Path, lock: Path) -> InputError:
    return InputError(
        "--out",
        str(out),
        f"its lock file {lock} exists and was not written by this version of condensation;"
        " it was left alone",
        "remove that file if no other run is writing there (an older condensation's lock),"
        " or choose another --out",
    )


def _open_lock(out: str | Path, lock: Path) -> tuple[int, str]:
    """Open and flock the lock file: a new one (created exclusively, our owner record
    written while locked) or a stale one of ours (its process gone; taken over in place).
    Returns ``(fd, token)``."""
    while True:
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o666 & ~_umask())
            created = True
        except FileExistsError:
            try:
                fd = os.open(lock, os.O_RDWR | os.O_NOFOLLOW)
            except FileNotFoundError:  # removed meanwhile by the run that held it
                continue
            except OSError as e:
                if e.errno in (errno.ELOOP, errno.EISDIR):  # a link or a folder: not ours
                    raise _foreign_lock(out, lock) from None
                raise _not_writable(out, e) from None
            created = False
        except OSError as e:
            raise (output_error(e, out) or _not_writable(out, e)) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            text = os.pread(fd, 4096, 0).decode(errors="replace")
            os.close(fd)
            if e.errno not in (errno.EAGAIN, errno.EACCES):
                raise _not_writable(out, e) from None
            rec = valid_owner(_loads(text))
            raise _busy(out, lock, str(rec["pid"]) if rec else text.strip()[:20] or "?") from None
        try:  # the file we locked must still be the one at the path (not unlinked meanwhile)
            same = os.fstat(fd).st_ino == os.stat(lock, follow_symlinks=False).st_ino
        except FileNotFoundError:
            same = False
        if not same:
            os.close(fd)
            continue
        if not created:
            st = os.fstat(fd)
            text = os.pread(fd, 4096, 0).decode(errors="replace") if st.st_size <= 4096 else ""
            rec = valid_owner(_loads(text))
            if rec is None:
                os.close(fd)
                young = st.st_size == 0 and time.time() - st.st_mtime < 5
                if young:  # another run is creating it right now
                    raise _busy(out, lock, "?")
                raise _foreign_lock(out, lock)
            if not (owner_gone(rec) or is_this_process(rec)):
                os.close(fd)
                raise _busy(out, lock, str(rec["pid"]))
        me = owner_record()
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(me).encode(), 0)
        except OSError as e:
            os.close(fd)
            if created:
                lock.unlink(missing_ok=True)
            raise (output_error(e, out) or _not_writable(out, e)) from None
        return fd, me["token"]


def _loads(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


@contextmanager
def out_lock(out: str | Path) -> Iterator[None]:
    """Hold the lock of ``out`` (re-entrant within one process); refuse if another
    live process holds it, or if a file of the lock's name is not one of ours.
    The parent of ``out`` must exist (see :func:`reserve`)."""
    lock = lock_path(out)
    if lock in _held:
        _held[lock][1] += 1
        try:
            yield
        finally:
            _held[lock][1] -= 1
        return
    fd, token = _open_lock(out, lock)
    _held[lock] = [fd, 1, token]
    try:
        yield
    finally:
        del _held[lock]
        try:  # unlink only our own file (same inode, our token inside)
            if os.fstat(fd).st_ino == os.stat(lock, follow_symlinks=False).st_ino:
                rec = valid_owner(_loads(os.pread(fd, 4096, 0).decode(errors="replace")))
                if rec is not None and rec["token"] == token:
                    lock.unlink()
        except OSError:
            pass
        os.close(fd)


# ---- leftovers of earlier runs ---------------------------------------------------------
def _replaces(m: Any) -> dict | None:
    """The record of a replacement in a run marker ``m``: the name the earlier run was
    moved aside to, its device and inode, and the owner that moved it."""
    rep = m.get("replaces") if isinstance(m, dict) else None
    if not isinstance(rep, dict) or valid_owner(rep.get("owner")) is None:
        return None
    if not isinstance(rep.get("old"), str) or not all(
        type(rep.get(k)) is int for k in ("dev", "ino")
    ):
        return None
    return rep


def _is_dir_at(p: Path, rep: dict) -> bool:
    """``p`` is the directory the replacement record ``rep`` moved aside (same inode)."""
    try:
        st = os.stat(p, follow_symlinks=False)
    except OSError:
        return False
    return st.st_dev == rep["dev"] and st.st_ino == rep["ino"]


def _own_partial(q: Path, token: str) -> dict | None:
    """The marker of ``q`` when it is a partial directory made by this tool (the owner
    in its marker has the token of its name), else None."""
    if q.is_symlink() or not q.is_dir():
        return None
    m = read_marker(q)
    owner = valid_owner(m.get("owner")) if m is not None else None
    return m if owner is not None and owner["token"] == token else None


def clean_stale(out: str | Path) -> list[Path]:
    """Remove the leftovers beside ``out`` that provably are this tool's and whose
    process is gone: partial directories (``.DIR.partial-TOKEN``, with the owner record
    of that token in their marker) and earlier runs moved aside by a replacement
    (``.DIR.old-TOKEN``, named with their inode in the marker of ``out`` or of the
    interrupted replacement).  When a replacement was cut off between its two renames,
    ``DIR`` is restored from the moved-aside run.  Anything else with a similar name
    is left alone (one note).  Returns what was removed."""
    p = resolve_out(out)
    removed: list[Path] = []
    left: list[Path] = []
    try:
        names = sorted(os.listdir(p.parent))
    except OSError:
        return removed
    stem = hidden_stem(p.name)
    pat = re.compile(rf"^{re.escape(stem)}\.(partial|old)-([0-9a-f]{{16}})$")
    partials: dict[Path, dict] = {}
    olds: list[Path] = []
    proofs: list[tuple[dict, bool]] = []  # (replacement record, recorded by DIR itself)
    for name in names:
        q = p.parent / name
        if not name.startswith(f"{stem}."):
            continue
        mt = pat.match(name)
        if mt is not None and mt.group(1) == "partial":
            m = _own_partial(q, mt.group(2))
            if m is None:
                left.append(q)
            elif owner_gone(m["owner"]):
                partials[q] = m
        elif mt is not None:
            olds.append(q)
        elif name.startswith((f"{stem}.partial", f"{stem}.old")):
            left.append(q)
        rep = _replaces(read_marker(q)) if q.is_dir() and not q.is_symlink() else None
        if rep is not None:
            proofs.append((rep, False))
    rep = _replaces(read_marker(p)) if p.is_dir() and not p.is_symlink() else None
    if rep is not None:
        proofs.append((rep, True))
    for q in olds:
        proof = next(
            (
                (r, by_out)
                for r, by_out in proofs
                if r["old"] == q.name and _is_dir_at(q, r) and owner_gone(r["owner"])
            ),
            None,
        )
        if proof is None:
            left.append(q)
        elif proof[1]:  # DIR is the finished replacement: the earlier run is to go
            shutil.rmtree(q, ignore_errors=True)
            removed.append(q)
            log.warning("removed %s, an earlier run this tool had replaced", q)
        elif not os.path.lexists(p):  # cut off between the renames: put it back
            os.replace(q, p)
            log.warning("restored %s from %s (a replacement was interrupted)", p, q.name)
        else:
            left.append(q)
    for q, m in partials.items():
        shutil.rmtree(q, ignore_errors=True)
        removed.append(q)
        log.warning(
            "removed %s, left by an earlier run (pid %d) that was killed", q, m["owner"]["pid"]
        )
    if left:
        note_left_alone(
            left, "their names look like condensation's leftovers but no marker proves it"
        )
    return removed


# ---- the run directory ---------------------------------------------------------------
@contextmanager
def claim(out: str | Path) -> Iterator[Path]:
    """Lock ``out`` for this process until the block ends, creating only what the lock
    needs: first the checks that create nothing (names within the system's limits, a
    writable parent), then the missing parents of ``out``, then the lock.  A file-system
    error in the block (disk full, no permission) becomes a one-line
    :class:`InputError`; the folders made here are removed again if the block fails
    and they are empty.  Re-entrant within one process.  Yields the absolute path."""
    held = lock_path(out) in _held
    made: list[Path] = []
    if not held:
        check_names(out)
        check_writable(out)
        made = _make_parents(out)
    try:
        with out_lock(out):
            yield resolve_out(out)
    except OSError as e:
        _remove_made(made)
        err = output_error(e, out)
        if err is None:
            raise
        raise err from None
    except BaseException:
        _remove_made(made)
        raise


@contextmanager
def reserve(
    out: str | Path, overwrite: bool = False, need_bytes: float = FIGURE_BYTES
) -> Iterator[Path]:
    """Everything checked before any compute and before anything is created: ``out``
    may be written (see :func:`check_out_dir`; names within the system's limits), its
    disk has room for ``need_bytes``, its parent can be written.  Then it is claimed
    (:func:`claim`: missing parents made, locked against other runs until the block
    ends), and leftovers of earlier runs of it are cleaned (:func:`clean_stale`).
    Yields the absolute path."""
    held = lock_path(out) in _held
    check_out_dir(out, overwrite)
    check_free_space(out, need_bytes)
    with claim(out) as path:
        if not held:
            clean_stale(out)
            check_out_dir(out, overwrite)  # again: a cut-off replacement may be restored
        yield path


@contextmanager
def signals_deferred() -> Iterator[None]:
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


def new_partial(out: str | Path) -> Path:
    """Make the hidden partial directory ``.DIR.partial-TOKEN`` beside ``out``, its
    marker (with this process's owner record of that token) written at once."""
    owner = owner_record()
    tmp = hidden_sibling(out, "partial", owner["token"])
    os.mkdir(tmp)  # mode 0777 less the umask
    try:
        _write_marker_dict(tmp, {"tool": "condensation", "files": [], "owner": owner})
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return tmp


def claim_staging(out: str | Path, kind: str) -> Path:
    """The fixed hidden staging directory ``.DIR.KIND`` beside ``out`` that a resumable
    command keeps across its runs (e.g. ``reproduce --resume``), made now with this
    process's owner record in its marker, or an earlier one whose marker proves this
    tool made it.  Anything else at that name (a folder without the marker, a file, a
    link) is refused in one line and left alone.  Call it while holding the lock of
    ``out`` (:func:`reserve`), so no other live run is using it."""
    stage = hidden_sibling(out, kind)
    if not os.path.lexists(stage):
        os.mkdir(stage)  # mode 0777 less the umask
        try:
            owner = owner_record()
            _write_marker_dict(stage, {"tool": "condensation", "files": [], "owner": owner})
        except BaseException:
            shutil.rmtree(stage, ignore_errors=True)
            raise
        return stage
    m = None if stage.is_symlink() or not stage.is_dir() else read_marker(stage)
    if m is None or valid_owner(m.get("owner")) is None:
        raise InputError(
            "--out",
            str(out),
            f"its staging folder {stage.name} exists but was not made by condensation (no "
            f"{MARKER} marker with an owner); nothing was changed",
            f"move {stage} away, or choose another --out",
        )
    return stage


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
        tmp = new_partial(out_abs)
        try:
            yield tmp
            write_marker(tmp, key)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        put_in_place(tmp, out_abs)


def put_in_place(src: Path, out: Path) -> None:
    """Rename the finished directory ``src`` to ``out``, replacing an earlier ``out``,
    with SIGINT/SIGTERM held back meanwhile.

    The earlier ``out`` is moved aside to ``.DIR.old-TOKEN`` and removed after; first
    the marker of ``src`` records that name, its inode and this process's owner
    record, so that a run killed at any point leaves what a later run needs to
    finish the job with proof (:func:`clean_stale`): killed before ``src`` is in
    place, ``out`` is restored; after, the moved-aside run is removed."""
    src, out = Path(src), Path(out)
    with signals_deferred():
        if not os.path.lexists(out):
            os.replace(src, out)
            return
        owner = owner_record()
        old = hidden_sibling(out, "old", owner["token"])
        st = os.stat(out, follow_symlinks=False)
        m = read_marker(src)
        if m is not None:
            m["replaces"] = {"old": old.name, "dev": st.st_dev, "ino": st.st_ino, "owner": owner}
            _write_marker_dict(src, m)
        os.replace(out, old)
        try:
            os.replace(src, out)
        except BaseException:
            os.replace(old, out)
            raise
        shutil.rmtree(old, ignore_errors=True)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write a single file via a temporary file and a rename (umask permissions)."""
    path = Path(path)
    prefix = f".{path.name}."
    if len(os.fsencode(prefix)) > NAME_MAX - 16:
        prefix = hidden_stem(path.name) + "."
    fd, tmp = tempfile.mkstemp(prefix=prefix, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        _chmod_umask(Path(tmp), directory=False)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
