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

This module assembles the run directory (:func:`reserve`, :func:`run_directory`,
:func:`put_in_place`); each piece answers one question in its own module, and its
names are re-exported here:

- :mod:`~condensation.store.owner`: who made a leftover, and is that process gone;
- :mod:`~condensation.store.names`: ``--out`` resolved, hidden sibling names;
- :mod:`~condensation.store.marker`: the marker, its manifest, the run's key;
- :mod:`~condensation.store.checks`: the checks before anything is created;
- :mod:`~condensation.store.lock`: the lock ``.DIR.lock``;
- :mod:`~condensation.store.leftovers`: cleaning what killed runs left behind;
- :mod:`~condensation.store.atomic`: JSON / TOML / arrays, atomic single files.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from condensation.errors import InputError
from condensation.progress import write_session_log

# re-exported: these names were defined here before the store was split by concept
from condensation.store.atomic import (
    atomic_write_bytes,
    jsonable,
    save_arrays,
    write_json,
    write_toml,
)
from condensation.store.checks import (
    check_free_space,
    check_names,
    check_out_dir,
    check_writable,
    make_parents,
    output_error,
    remove_made,
)
from condensation.store.leftovers import clean_stale, note_left_alone
from condensation.store.lock import is_held, lock_path, out_lock
from condensation.store.marker import (
    MARKER,
    add_to_manifest,
    completed_run,
    foreign_files,
    is_run_dir,
    read_marker,
    write_marker,
    write_marker_dict,
)
from condensation.store.names import (
    INNER_PATH_BYTES,
    NAME_MAX,
    PATH_MAX,
    hidden_sibling,
    hidden_stem,
    inside,
    resolve_out,
)
from condensation.store.owner import (
    is_this_process,
    new_token,
    owner_gone,
    owner_record,
    read_owner,
    valid_owner,
)

SUMMARY = "summary.json"
FIGURE_BYTES = 4_000_000  # a run's figures and small files, for the free-space check

log = logging.getLogger("condensation")


# ---- the run directory ---------------------------------------------------------------
@contextmanager
def claim(out: str | Path) -> Iterator[Path]:
    """Lock ``out`` for this process until the block ends, creating only what the lock
    needs: first the checks that create nothing (names within the system's limits, a
    writable parent), then the missing parents of ``out``, then the lock.  A file-system
    error in the block (disk full, no permission) becomes a one-line
    :class:`InputError`; the folders made here are removed again if the block fails
    and they are empty.  Re-entrant within one process.  Yields the absolute path."""
    held = is_held(out)
    made: list[Path] = []
    if not held:
        check_names(out)
        check_writable(out)
        made = make_parents(out)
    try:
        with out_lock(out):
            yield resolve_out(out)
    except OSError as e:
        remove_made(made)
        err = output_error(e, out)
        if err is None:
            raise
        raise err from None
    except BaseException:
        remove_made(made)
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
    held = is_held(out)
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
        write_marker_dict(tmp, {"tool": "condensation", "files": [], "owner": owner})
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
            write_marker_dict(stage, {"tool": "condensation", "files": [], "owner": owner})
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
            write_session_log(tmp)  # the command's progress and warnings: log.txt
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
            write_marker_dict(src, m)
        os.replace(out, old)
        try:
            os.replace(src, out)
        except BaseException:
            os.replace(old, out)
            raise
        shutil.rmtree(old, ignore_errors=True)


__all__ = [
    # defined here: the run directory, assembled aside and put in place
    "FIGURE_BYTES",
    "SUMMARY",
    "claim",
    "claim_staging",
    "new_partial",
    "put_in_place",
    "reserve",
    "run_directory",
    "signals_deferred",
    # re-exported from store.atomic, .checks, .leftovers, .lock, .marker, .names, .owner
    "INNER_PATH_BYTES",
    "MARKER",
    "NAME_MAX",
    "PATH_MAX",
    "add_to_manifest",
    "atomic_write_bytes",
    "check_free_space",
    "check_names",
    "check_out_dir",
    "check_writable",
    "clean_stale",
    "completed_run",
    "foreign_files",
    "hidden_sibling",
    "hidden_stem",
    "inside",
    "is_run_dir",
    "is_this_process",
    "jsonable",
    "lock_path",
    "new_token",
    "note_left_alone",
    "out_lock",
    "output_error",
    "owner_gone",
    "owner_record",
    "read_marker",
    "read_owner",
    "resolve_out",
    "save_arrays",
    "valid_owner",
    "write_json",
    "write_marker",
    "write_toml",
]
