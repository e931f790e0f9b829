"""Checkpoints of a trainer's loop at snapshot boundaries, for ``--resume``.

A trainer runs its compiled loop from one snapshot step to the next and keeps
two things between intervals: the loop *carry* (a pytree of arrays: parameters,
escape and divergence records, optimizer state, whatever fields the trainer
has) and the *records* taken at each snapshot (named lists of host arrays, one
entry per snapshot).  :class:`Checkpoint` saves both, generically:

- the carry as its flattened leaves (``jax.tree_util``), restored into the
  structure and device placement of a freshly built carry, so a field added to
  the carry needs no change here (a checkpoint of another layout is refused);
- the records incrementally, one ``.npz`` chunk per save with the entries that
  are new since the last one, so saving costs what was computed, not the past.

A save is atomic: new files first, then ``meta.json`` replaced in one rename;
a run killed at any moment leaves the previous checkpoint intact.

Ownership is proven, never guessed from names: the directory gets its owner
record (``.condensation-checkpoint``: pid, process start time, host, a random
token) before anything else, ``meta.json`` carries the same token, and the files
it names must be plain names inside the directory (anything else is refused on
``--resume``).  Discarding a checkpoint deletes only the files its meta lists
(and its own temporary files), then the directory if it is empty; a directory of
that name which is not provably ours is left alone and the run keeps no
checkpoint (one note).  A damaged checkpoint (truncated, bit-flipped, malformed
meta) is refused on ``--resume`` with the fix: rerun without ``--resume``.  Saves are at
most every ``CONDENSATION_CHECKPOINT_EVERY`` seconds (default 30; 0 saves at
every boundary) and, through :meth:`Checkpoint.flush`, once more when the run is
interrupted (the CLI calls it).  The directory is
``.DIR.checkpoint`` beside the run directory ``DIR``; it is removed when the run
directory is written.  Resuming continues from exactly the stored state, so the
result is bit-identical to an uninterrupted run on the same machine layout.
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

import jax
import numpy as np

from condensation.errors import InputError
from condensation.store.checkpoint_files import (
    META,
    UNREADABLE,
    load_carry,
    load_records,
    meta_files,
    our_name,
    refuse,
)
from condensation.store.chunking import CHUNK_FLOPS, Pacer, chunk_steps
from condensation.store.leftovers import note_left_alone
from condensation.store.marker import run_key
from condensation.store.names import hidden_sibling
from condensation.store.owner import is_this_process, owner_gone, owner_record, read_owner
from condensation.store.rundir import signals_deferred

EVERY_ENV = "CONDENSATION_CHECKPOINT_EVERY"
DEFAULT_EVERY_S = 30.0
OWNER = ".condensation-checkpoint"  # the owner record, written first


def checkpoint_dir(out: str | Path) -> Path:
    """The checkpoint directory ``.DIR.checkpoint`` beside the run directory ``out``
    (its name within the system's limits, see :func:`condensation.store.rundir.hidden_stem`)."""
    return hidden_sibling(out, "checkpoint")


def _every_s() -> float:
    raw = os.environ.get(EVERY_ENV)
    if raw is None:
        return DEFAULT_EVERY_S
    try:
        v = float(raw)
    except ValueError:
        v = -1.0
    if not v >= 0:
        raise InputError(EVERY_ENV, raw, "must be a number of seconds >= 0", f"unset {EVERY_ENV}")
    return v


class Checkpoint:
    """The checkpoint of one run: ``restore`` at the start, ``save`` at boundaries.

    ``key`` identifies the run (:func:`run_key`); ``resume=False`` starts over
    (an earlier checkpoint of this run directory is discarded, if it is provably
    this tool's; a directory of that name that is not is left alone, and this run
    keeps no checkpoint).
    """

    def __init__(self, directory: str | Path, key: str, resume: bool = False) -> None:
        self.dir = Path(directory)
        self.key = key
        self.resume = resume
        self.every_s = _every_s()
        self._meta: dict | None = None
        self._last = time.monotonic()
        self._saved_index = -1
        self._pending: tuple | None = None
        self._token: str | None = None  # set once the directory is ours (made or adopted)
        self._off = False  # the directory is not ours: nothing is saved
        self._keep = False  # a refused resume: the checkpoint stays as it is
        if not resume:
            self.discard()

    # ---- ownership ---------------------------------------------------------------
    def _owner(self) -> dict | None:
        """The owner record of the directory, when its process is gone or is this one."""
        rec = read_owner(self.dir / OWNER)
        if rec is None or not (owner_gone(rec) or is_this_process(rec)):
            return None
        return rec

    def _raw_meta(self, token: str) -> dict | None:
        try:
            m = json.loads((self.dir / META).read_text())
        except (OSError, ValueError, UnicodeDecodeError):
            return None
        ours = isinstance(m, dict) and m.get("tool") == "condensation" and m.get("token") == token
        return m if ours else None

    @property
    def exists(self) -> bool:
        """A checkpoint of ours is stored (something ``--resume`` can continue from)."""
        rec = read_owner(self.dir / OWNER)
        return rec is not None and self._raw_meta(rec["token"]) is not None

    def _leave_alone(self, why: str) -> None:
        self._off = True
        note_left_alone([self.dir], f"{why}; this run keeps no checkpoint")

    def _claim(self) -> bool:
        """Make the directory ours before the first save: create it (or take an empty
        one, or our own leftover) and write the owner record first.  False if it is
        not ours to write in."""
        created = False
        if not os.path.lexists(self.dir):
            self.dir.mkdir(parents=True)
            created = True
        elif self.dir.is_symlink() or not self.dir.is_dir():
            self._leave_alone("it is not a directory condensation made")
            return False
        else:
            rec = self._owner()
            if rec is not None:
                self._token = rec["token"]
                created = bool(rec.get("created_dir"))
            elif any(self.dir.iterdir()):
                self._leave_alone("it holds files condensation did not write")
                return False
        token = self._token or owner_record()["token"]
        rec = {**owner_record(token), "created_dir": created}
        tmp = self.dir / f".{OWNER}.{token}.tmp"
        try:
            with open(tmp, "x") as f:
                f.write(json.dumps(rec))
            os.replace(tmp, self.dir / OWNER)
        except BaseException:
            tmp.unlink(missing_ok=True)
            if created:
                try:
                    self.dir.rmdir()
                except OSError:
                    pass
            raise
        self._token = token
        return True

    # ---- restore -------------------------------------------------------------------
    def restore(self, carry, records: dict[str, list]):
        """``(first_interval, carry)``: from the checkpoint when resuming (the lists of
        ``records`` are replaced in place), else ``(0, carry)`` unchanged.  A checkpoint
        that is not provably ours, names files outside its directory, or is damaged is
        refused (one-line :class:`InputError`; it is then left as it is)."""
        try:
            return self._restore(carry, records)
        except InputError:
            self._keep = True
            raise
        except UNREADABLE as e:
            self._keep = True
            what = " ".join(str(e).split())[:200]
            kind = type(e).__name__
            if type(e).__module__ not in ("builtins", None):
                kind = f"{type(e).__module__}.{kind}"
            raise refuse(
                self.dir,
                f"the checkpoint is damaged and cannot be read ({kind}: {what})",
            ) from None

    def _restore(self, carry, records: dict[str, list]):
        if not self.resume or not os.path.lexists(self.dir):
            return 0, carry
        if self.dir.is_symlink() or not self.dir.is_dir():
            raise refuse(self.dir, "is not a checkpoint directory condensation made")
        raw = read_owner(self.dir / OWNER)
        if raw is None:
            if not any(self.dir.iterdir()):
                return 0, carry
            raise refuse(
                self.dir,
                f"is not provably a checkpoint of condensation (no valid {OWNER}); it was left"
                " alone",
            )
        rec = self._owner()
        if rec is None:
            raise refuse(self.dir, f"is in use by another live run (pid {raw['pid']})")
        if not (self.dir / META).exists():  # killed before its first save: nothing to resume
            self._token = rec["token"]
            return 0, carry
        meta = self._raw_meta(rec["token"])
        if meta is None:
            raise refuse(self.dir, f"its {META} is unreadable or not this checkpoint's")
        if meta.get("key") != self.key:
            raise InputError(
                "--resume",
                str(self.dir),
                "the checkpoint was made by another command, config or version",
                "rerun the same command as before, or without --resume to start over",
            )
        index, treedef_s, carry_path, paths = meta_files(self.dir, meta, rec["token"])
        restored = load_carry(self.dir, carry_path, treedef_s, carry)
        loaded = load_records(self.dir, paths, list(records), index)
        for name, lst in records.items():
            lst[:] = loaded[name]
        self._token = rec["token"]
        self._claim()  # the owner record now names this process
        self._meta, self._saved_index = meta, index
        return index, restored

    # ---- save ------------------------------------------------------------------------
    def _write_npz(self, name: str, arrays: dict[str, np.ndarray], written: list[Path]) -> None:
        """Write ``name`` (it carries this run's token) atomically: a temporary file of
        this token, then a rename; ``name`` is added to ``written``.  A file already at
        that name is this run's own, left by a save cut off by SIGKILL."""
        final = self.dir / name
        tmp = self.dir / f".{name}.{self._token}.tmp"
        tmp.unlink(missing_ok=True)  # this run's own, if a save was killed while writing it
        try:
            with open(tmp, "xb") as f:
                np.savez(f, **arrays)
            written.append(final)
            os.replace(tmp, final)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def save(self, index: int, carry, records: dict[str, list], force: bool = False) -> None:
        """Checkpoint after ``index`` intervals (``records`` hold ``index + 1`` entries);
        skipped when the last save is more recent than ``every_s`` unless ``force``."""
        if index <= self._saved_index or self._off:
            return
        self._pending = (index, carry, records)  # for flush(): the last boundary reached
        if not force and time.monotonic() - self._last < self.every_s:
            return
        if self._token is None and not self._claim():
            return
        written: list[Path] = []  # this save's files: removed again if it is cut off
        try:
            self._save(index, carry, records, written)
        except BaseException:
            # an interrupt (or an error) between the files and the commit of meta.json
            # leaves files no meta lists; they are this process's, so they go now (a
            # flush() after the interrupt then writes them again, not refusing them as
            # foreign)
            listed = self._listed(self._meta)
            for f in written:
                if f not in listed:
                    f.unlink(missing_ok=True)
            raise

    def _save(self, index: int, carry, records: dict[str, list], written: list[Path]) -> None:
        meta = self._meta or {
            "tool": "condensation",
            "key": self.key,
            "token": self._token,
            "chunks": [],
        }
        start = self._saved_index + 1
        chunk = f"records-{start}-{index + 1}.{self._token}.npz"
        arrays = {
            f"{name}:{j}": np.asarray(lst[j])
            for name, lst in records.items()
            for j in range(start, index + 1)
        }
        self._write_npz(chunk, arrays, written)
        leaves, treedef = jax.tree_util.tree_flatten(carry)
        carry_file = f"carry-{index}.{self._token}.npz"
        self._write_npz(
            carry_file, {f"leaf{i}": np.asarray(x) for i, x in enumerate(leaves)}, written
        )
        old_carry = our_name(self.dir, meta.get("carry"), self._token)
        meta = {
            **meta,
            "index": index,
            "carry": carry_file,
            "treedef": str(treedef),
            "chunks": [*meta["chunks"], {"file": chunk, "start": start, "stop": index + 1}],
        }
        tmp = self.dir / f".{META}.{self._token}.tmp"
        try:
            tmp.write_text(json.dumps(meta, indent=1))
            with signals_deferred():  # the commit and what this object knows of it: together
                os.replace(tmp, self.dir / META)
                self._meta, self._saved_index, self._last = meta, index, time.monotonic()
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        if old_carry is not None and old_carry.name != carry_file:
            old_carry.unlink(missing_ok=True)

    def flush(self) -> None:
        """Save the last boundary reached if a throttled save skipped it (on an interrupt:
        the run then resumes from there).  Entries appended after it are not saved."""
        if self._pending is not None:
            self.save(*self._pending, force=True)

    # ---- discard ---------------------------------------------------------------------
    def _listed(self, meta: dict | None) -> set[Path]:
        """The files a meta of ours names (only names of ours, inside the directory)."""
        if not isinstance(meta, dict):
            return set()
        names = [meta.get("carry")]
        chunks_ = meta.get("chunks")
        if isinstance(chunks_, list):
            names += [c.get("file") for c in chunks_ if isinstance(c, dict)]
        token = meta.get("token")
        return {p for p in (our_name(self.dir, n, token) for n in names) if p is not None}

    def discard(self) -> None:
        """Remove the checkpoint, if it is provably this tool's: the files its meta lists,
        its meta, its temporary files and its owner record, then the directory if that
        leaves it empty and this tool made it.  Anything else in it is left alone."""
        if self._keep or not os.path.lexists(self.dir):
            return
        if self.dir.is_symlink() or not self.dir.is_dir():
            self._leave_alone("it is not a directory condensation made")
            return
        rec = self._owner()
        if rec is None:
            if read_owner(self.dir / OWNER) is not None:
                self._leave_alone("it is in use by another live run")
            elif any(self.dir.iterdir()):
                self._leave_alone("it holds files condensation did not write")
            return
        token = rec["token"]
        tmp = re.compile(rf"^\..*\.{token}\.tmp$")
        ours = {self.dir / META} | {
            self.dir / n
            for n in os.listdir(self.dir)
            if tmp.match(n) or our_name(self.dir, n, token) is not None
        }
        for p in sorted(ours):
            if p.is_file() and not p.is_symlink():
                p.unlink(missing_ok=True)
        (self.dir / OWNER).unlink(missing_ok=True)
        self._token, self._meta, self._saved_index = None, None, -1
        if rec.get("created_dir"):
            try:
                self.dir.rmdir()
            except OSError:
                pass
        if os.path.lexists(self.dir) and any(self.dir.iterdir()):
            self._leave_alone("it holds files condensation did not write")


__all__ = [
    "CHUNK_FLOPS",
    "Checkpoint",
    "DEFAULT_EVERY_S",
    "EVERY_ENV",
    "META",
    "OWNER",
    "Pacer",
    "checkpoint_dir",
    "chunk_steps",
    "run_key",
]
