"""The checks on ``--out`` that run before anything is created: names within the
system's limits, a writable parent, free space, contents this run may replace;
and the one-line error for a file-system failure while writing.  Missing parents
are made (and removed again on failure) only once every check has passed.
"""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

from condensation.errors import InputError
from condensation.store.marker import MARKER, foreign_files, read_marker
from condensation.store.names import INNER_PATH_BYTES, NAME_MAX, PATH_MAX, resolve_out


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


def make_parents(out: str | Path) -> list[Path]:
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
        remove_made(made)
        raise (output_error(e, out) or not_writable_error(out, e)) from None
    return made


def remove_made(made: list[Path]) -> None:
    """Remove the folders this run created (deepest first), as far as they are empty."""
    for d in reversed(made):
        try:
            os.rmdir(d)
        except OSError:
            return


def not_writable_error(out: str | Path, e: OSError) -> InputError:
    """The one-line error for an ``--out`` that cannot be written (``e``'s reason)."""
    return InputError(
        "--out",
        str(out),
        f"cannot be written ({e.strerror or e}); nothing was created",
        "choose a directory you can write to",
    )
