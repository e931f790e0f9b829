"""The lock of a run directory: ``.DIR.lock`` beside ``DIR``, an exclusive ``flock``
on a file holding the owner record, released by the kernel when the process
dies.  A second run on the same ``--out`` is refused; a file of that name the
tool did not write is refused and left alone.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from condensation.errors import InputError
from condensation.store.atomic import current_umask
from condensation.store.checks import not_writable_error, output_error
from condensation.store.names import hidden_sibling
from condensation.store.owner import is_this_process, owner_gone, owner_record, valid_owner

_held: dict[Path, list] = {}  # lock path -> [fd, depth, token] for locks this process holds


def lock_path(out: str | Path) -> Path:
    """The lock file ``.DIR.lock`` beside the run directory ``out``."""
    return hidden_sibling(out, "lock")


def is_held(out: str | Path) -> bool:
    """This process holds the lock of ``out`` now (see :func:`out_lock`)."""
    return lock_path(out) in _held


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
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o666 & ~current_umask())
            created = True
        except FileExistsError:
            try:
                fd = os.open(lock, os.O_RDWR | os.O_NOFOLLOW)
            except FileNotFoundError:  # removed meanwhile by the run that held it
                continue
            except OSError as e:
                if e.errno in (errno.ELOOP, errno.EISDIR):  # a link or a folder: not ours
                    raise _foreign_lock(out, lock) from None
                raise not_writable_error(out, e) from None
            created = False
        except OSError as e:
            raise (output_error(e, out) or not_writable_error(out, e)) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            text = os.pread(fd, 4096, 0).decode(errors="replace")
            os.close(fd)
            if e.errno not in (errno.EAGAIN, errno.EACCES):
                raise not_writable_error(out, e) from None
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
            raise (output_error(e, out) or not_writable_error(out, e)) from None
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
