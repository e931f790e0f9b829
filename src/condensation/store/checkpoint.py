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

import hashlib
import json
import os
import re
import time
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path

import jax
import numpy as np

from condensation.errors import InputError
from condensation.store.rundir import (
    hidden_sibling,
    inside,
    is_this_process,
    jsonable,
    note_left_alone,
    owner_gone,
    owner_record,
    read_owner,
    signals_deferred,
)

EVERY_ENV = "CONDENSATION_CHECKPOINT_EVERY"
DEFAULT_EVERY_S = 30.0
META = "meta.json"
OWNER = ".condensation-checkpoint"  # the owner record, written first
# a file of a checkpoint carries the token of the run that wrote it (the token of the
# directory's owner record): a file left by a save cut off by SIGKILL is then provably
# this tool's, and a later save or discard may replace or remove it
_FILE_RE = re.compile(r"^(carry-[0-9]+|records-[0-9]+-[0-9]+)\.([0-9a-f]{16})\.npz$")
# what a damaged file raises while it is read
_UNREADABLE = (
    OSError,
    ValueError,
    KeyError,
    TypeError,
    IndexError,
    EOFError,
    zipfile.BadZipFile,
    zlib.error,
)
# an interval of the compiled loop is cut into chunks of at most this much work
# (about a second of one core), so that a signal is handled within bounded time
CHUNK_FLOPS = 4e9


def checkpoint_dir(out: str | Path) -> Path:
    """The checkpoint directory ``.DIR.checkpoint`` beside the run directory ``out``
    (its name within the system's limits, see :func:`condensation.store.rundir.hidden_stem`)."""
    return hidden_sibling(out, "checkpoint")


def run_key(*parts) -> str:
    """A short hash of what determines a run (command, resolved config, options)."""
    text = json.dumps(jsonable(parts), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def chunks(start: int, stop: int, max_steps: int) -> Iterator[tuple[int, int]]:
    """``[start, stop)`` cut into consecutive pieces of at most ``max_steps`` steps."""
    a = int(start)
    while a < stop:
        b = min(int(stop), a + max(1, int(max_steps)))
        yield a, b
        a = b


def chunk_steps(flops_per_step: float) -> int:
    return max(1, int(CHUNK_FLOPS // max(flops_per_step, 1.0)))


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


def _refuse(directory: Path, problem: str) -> InputError:
    return InputError("--resume", str(directory), problem, "rerun without --resume to start over")


def _our_name(directory: Path, name, token: str | None) -> Path | None:
    """``directory/name`` for a file name of ours with this ``token``
    (``carry-I.TOKEN.npz``, ``records-A-B.TOKEN.npz``) that stays inside ``directory``;
    else None."""
    m = _FILE_RE.match(name) if isinstance(name, str) else None
    if m is None or token is None or m.group(2) != token:
        return None
    return inside(directory, name)


def _int(v) -> bool:
    return type(v) is int and v >= 0


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
        except _UNREADABLE as e:
            self._keep = True
            what = " ".join(str(e).split())[:200]
            kind = type(e).__name__
            if type(e).__module__ not in ("builtins", None):
                kind = f"{type(e).__module__}.{kind}"
            raise _refuse(
                self.dir,
                f"the checkpoint is damaged and cannot be read ({kind}: {what})",
            ) from None

    def _restore(self, carry, records: dict[str, list]):
        if not self.resume or not os.path.lexists(self.dir):
            return 0, carry
        if self.dir.is_symlink() or not self.dir.is_dir():
            raise _refuse(self.dir, "is not a checkpoint directory condensation made")
        raw = read_owner(self.dir / OWNER)
        if raw is None:
            if not any(self.dir.iterdir()):
                return 0, carry
            raise _refuse(
                self.dir,
                f"is not provably a checkpoint of condensation (no valid {OWNER}); it was left"
                " alone",
            )
        rec = self._owner()
        if rec is None:
            raise _refuse(self.dir, f"is in use by another live run (pid {raw['pid']})")
        if not (self.dir / META).exists():  # killed before its first save: nothing to resume
            self._token = rec["token"]
            return 0, carry
        meta = self._raw_meta(rec["token"])
        if meta is None:
            raise _refuse(self.dir, f"its {META} is unreadable or not this checkpoint's")
        if meta.get("key") != self.key:
            raise InputError(
                "--resume",
                str(self.dir),
                "the checkpoint was made by another command, config or version",
                "rerun the same command as before, or without --resume to start over",
            )
        index, chunks_, treedef_s = meta.get("index"), meta.get("chunks"), meta.get("treedef")
        if not _int(index) or not isinstance(chunks_, list) or not isinstance(treedef_s, str):
            raise _refuse(self.dir, f"its {META} is malformed (index, chunks or treedef)")
        carry_path = _our_name(self.dir, meta.get("carry"), rec["token"])
        paths = []
        at = 0
        for c in chunks_:
            f = _our_name(self.dir, c.get("file"), rec["token"]) if isinstance(c, dict) else None
            if f is None and isinstance(c, dict) and isinstance(c.get("file"), str):
                raise _refuse(
                    self.dir, f"its {META} names a file that is not one of its own ({c['file']!r})"
                )
            if f is None or not _int(c.get("start")) or not _int(c.get("stop")):
                raise _refuse(self.dir, f"its {META} is malformed (a chunk: {c!r:.80})")
            if c["start"] != at or c["stop"] <= at:
                raise _refuse(self.dir, f"its {META} is malformed (chunks not consecutive)")
            at = c["stop"]
            paths.append((f, c["start"], c["stop"]))
        if carry_path is None:
            raise _refuse(
                self.dir,
                f"its {META} names a file that is not one of its own ({meta.get('carry')!r})",
            )
        if at != index + 1:
            raise _refuse(self.dir, "the checkpoint is incomplete")
        leaves, treedef = jax.tree_util.tree_flatten(carry)
        with open(carry_path, "rb") as fh, np.load(fh, allow_pickle=False) as f:
            saved = [np.array(f[f"leaf{i}"]) for i in range(len(f.files))]
        same = (
            treedef_s == str(treedef)
            and len(saved) == len(leaves)
            and all(
                s.shape == np.shape(x) and s.dtype == np.asarray(x).dtype
                for s, x in zip(saved, leaves)
            )
        )
        if not same:
            raise InputError(
                "--resume",
                str(self.dir),
                "the checkpoint's trainer state has another layout (other version or number"
                " of devices)",
                "resume with the same version and CONDENSATION_CPU_DEVICES, or start over",
            )
        loaded: dict[str, list] = {name: [] for name in records}
        for path, start, stop in paths:
            with open(path, "rb") as fh, np.load(fh, allow_pickle=False) as f:
                for name in records:
                    loaded[name] += [np.array(f[f"{name}:{j}"]) for j in range(start, stop)]
        for name in records:
            if len(loaded[name]) != index + 1:
                raise _refuse(self.dir, "the checkpoint is incomplete")
        placed = [
            jax.device_put(s, x.sharding) if isinstance(x, jax.Array) else s
            for s, x in zip(saved, leaves)
        ]
        for name, lst in records.items():
            lst[:] = loaded[name]
        self._token = rec["token"]
        self._claim()  # the owner record now names this process
        self._meta, self._saved_index = meta, index
        return index, jax.tree_util.tree_unflatten(treedef, placed)

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
        old_carry = _our_name(self.dir, meta.get("carry"), self._token)
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
        return {p for p in (_our_name(self.dir, n, token) for n in names) if p is not None}

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
            if tmp.match(n) or _our_name(self.dir, n, token) is not None
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
