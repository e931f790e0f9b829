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
a run killed at any moment leaves the previous checkpoint intact.  Saves are at
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
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import jax
import numpy as np

from condensation.errors import InputError
from condensation.store import _jsonable, resolve_out

EVERY_ENV = "CONDENSATION_CHECKPOINT_EVERY"
DEFAULT_EVERY_S = 30.0
META = "meta.json"
# an interval of the compiled loop is cut into chunks of at most this much work
# (about a second of one core), so that a signal is handled within bounded time
CHUNK_FLOPS = 4e9


def checkpoint_dir(out: str | Path) -> Path:
    p = resolve_out(out)
    return p.parent / f".{p.name}.checkpoint"


def run_key(*parts) -> str:
    """A short hash of what determines a run (command, resolved config, options)."""
    text = json.dumps(_jsonable(parts), sort_keys=True, default=str)
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


def _atomic_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, path)


class Checkpoint:
    """The checkpoint of one run: ``restore`` at the start, ``save`` at boundaries.

    ``key`` identifies the run (:func:`run_key`); ``resume=False`` starts over
    (an earlier checkpoint of this run directory is discarded).
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
        if not resume:
            self.discard()

    @property
    def exists(self) -> bool:
        return (self.dir / META).is_file()

    def _read_meta(self) -> dict | None:
        try:
            m = json.loads((self.dir / META).read_text())
        except (OSError, ValueError):
            return None
        return m if isinstance(m, dict) and m.get("tool") == "condensation" else None

    def restore(self, carry, records: dict[str, list]):
        """``(first_interval, carry)``: from the checkpoint when resuming (the lists of
        ``records`` are replaced in place), else ``(0, carry)`` unchanged."""
        try:
            return self._restore(carry, records)
        except InputError:
            raise
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise InputError(
                "--resume",
                str(self.dir),
                f"the checkpoint cannot be read ({type(e).__name__}: {e})",
                "rerun without --resume to start over",
            ) from None

    def _restore(self, carry, records: dict[str, list]):
        if not self.resume:
            return 0, carry
        meta = self._read_meta()
        if meta is None:
            return 0, carry
        if meta.get("key") != self.key:
            raise InputError(
                "--resume",
                str(self.dir),
                "the checkpoint was made by another command, config or version",
                "rerun the same command as before, or without --resume to start over",
            )
        leaves, treedef = jax.tree_util.tree_flatten(carry)
        with np.load(self.dir / meta["carry"]) as f:
            saved = [f[f"leaf{i}"] for i in range(len(f.files))]
        same = (
            meta.get("treedef") == str(treedef)
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
        placed = [
            jax.device_put(s, x.sharding) if isinstance(x, jax.Array) else s
            for s, x in zip(saved, leaves)
        ]
        index = int(meta["index"])
        loaded: dict[str, list] = {name: [] for name in records}
        for chunk in meta["chunks"]:
            with np.load(self.dir / chunk["file"]) as f:
                for name in records:
                    loaded[name] += [f[f"{name}:{j}"] for j in range(chunk["start"], chunk["stop"])]
        for name, lst in records.items():
            if len(loaded[name]) != index + 1:
                raise InputError(
                    "--resume",
                    str(self.dir),
                    "the checkpoint is incomplete",
                    "rerun without --resume to start over",
                )
            lst[:] = loaded[name]
        self._meta, self._saved_index = meta, index
        return index, jax.tree_util.tree_unflatten(treedef, placed)

    def save(self, index: int, carry, records: dict[str, list], force: bool = False) -> None:
        """Checkpoint after ``index`` intervals (``records`` hold ``index + 1`` entries);
        skipped when the last save is more recent than ``every_s`` unless ``force``."""
        if index <= self._saved_index:
            return
        self._pending = (index, carry, records)  # for flush(): the last boundary reached
        if not force and time.monotonic() - self._last < self.every_s:
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        meta = self._meta or {"tool": "condensation", "key": self.key, "chunks": []}
        start = self._saved_index + 1
        chunk = f"records-{start}-{index + 1}.npz"
        _atomic_npz(
            self.dir / chunk,
            {
                f"{name}:{j}": np.asarray(lst[j])
                for name, lst in records.items()
                for j in range(start, index + 1)
            },
        )
        leaves, treedef = jax.tree_util.tree_flatten(carry)
        carry_file = f"carry-{index}.npz"
        _atomic_npz(
            self.dir / carry_file, {f"leaf{i}": np.asarray(x) for i, x in enumerate(leaves)}
        )
        old_carry = meta.get("carry")
        meta = {
            **meta,
            "index": index,
            "carry": carry_file,
            "treedef": str(treedef),
            "chunks": [*meta["chunks"], {"file": chunk, "start": start, "stop": index + 1}],
        }
        tmp = self.dir / (META + ".tmp")
        tmp.write_text(json.dumps(meta, indent=1))
        os.replace(tmp, self.dir / META)  # the commit
        if old_carry and old_carry != carry_file:
            (self.dir / old_carry).unlink(missing_ok=True)
        self._meta, self._saved_index, self._last = meta, index, time.monotonic()

    def flush(self) -> None:
        """Save the last boundary reached if a throttled save skipped it (on an interrupt:
        the run then resumes from there).  Entries appended after it are not saved."""
        if self._pending is not None:
            self.save(*self._pending, force=True)

    def discard(self) -> None:
        """Remove the checkpoint (only a directory this tool wrote, or an empty one)."""
        if not self.dir.is_dir():
            return
        ours = ("records-", "carry-", META)
        if self._read_meta() is not None or all(
            f.name.startswith(ours) for f in self.dir.iterdir()
        ):
            shutil.rmtree(self.dir, ignore_errors=True)
