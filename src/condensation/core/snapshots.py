"""Which parameter snapshots a ``train`` run keeps: the ``[train] save`` policy.

A run takes snapshots at K steps (``train.snapshots`` log-spaced plus
``train.linear_snapshots`` equally spaced).  Its loss, times and per-snapshot
alignment numbers are always recorded at all K; what this module decides is
which of those K states of each weight matrix are *stored* (kept on the host
while the run goes, checkpointed, and written to ``arrays/snapshots.npz``):

- ``"full"``: every layer at every snapshot, ``E * K * (number of weights)``
  numbers.  A width-1000 three-layer network keeps 8 MB per member per snapshot
  of its middle layer alone, so with K = 254 (the default) this is 2 GB.
- ``"bounded"`` (the default): the layers whose snapshots together fit in
  :data:`BUDGET_BYTES` are kept at every snapshot (for small networks this is
  everything, the same as ``"full"``); a layer too large for its share of the
  budget is kept at an evenly spread subset of the snapshot indices, always
  including the first and the last (so at least two states per layer, whatever
  the budget).  Budget shares go to the smallest layers first: the first and
  last layers of a wide network (``m1 x d_in``, ``1 x m``) are usually kept
  whole, the ``m x m`` middle layers thinned.

What is written to ``arrays/`` is bounded too (:func:`written_plan`): under
``"bounded"`` the weights written, snapshots and the states kept at the escape and
the plateau exit together, stay within :data:`ARRAYS_BUDGET_BYTES`, so that a wide
network's run directory stays small (the run itself, its metrics and figures use
every stored snapshot; only the files are thinned, and the summary says how).

Pure functions of sizes: nothing here imports the rest of the package.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

SAVE_MODES = ("bounded", "full")
DEFAULT_SAVE = "bounded"
BUDGET_BYTES = 48 * 2**20  # stored parameter snapshots of a bounded run, all layers and members


def kept_indices(
    save: str,
    n_snapshots: int,
    layer_bytes: Sequence[float],
    budget: float | None = None,
) -> list[np.ndarray | None]:
    """Per layer, the sorted snapshot indices (into the K snapshot steps) to store,
    or None for all of them.

    ``layer_bytes``: bytes of one snapshot of each layer, all members together.
    ``"full"`` keeps everything; ``"bounded"`` is described in the module docstring
    (``budget`` default :data:`BUDGET_BYTES`).
    """
    if save not in SAVE_MODES:
        raise ValueError(f"save must be one of {SAVE_MODES}, got {save!r}")
    k = int(n_snapshots)
    out: list[np.ndarray | None] = [None] * len(layer_bytes)
    if save == "full" or k <= 2:
        return out
    left = float(BUDGET_BYTES if budget is None else budget)
    order = np.argsort(np.asarray(layer_bytes, dtype=float), kind="stable")
    for pos, layer in enumerate(order):
        size = max(float(layer_bytes[layer]), 1.0)
        share = left / (len(order) - pos)
        if k * size <= share:
            left -= k * size
            continue
        count = int(min(k, max(2, share // size)))
        idx = np.unique(np.round(np.linspace(0, k - 1, count)).astype(np.int64))
        out[layer] = idx
        left -= idx.size * size
    return out


def stored_bytes(n_snapshots: int, layer_bytes: Sequence[float], kept) -> float:
    """Bytes of the stored snapshots under a plan of :func:`kept_indices`."""
    return float(
        sum(
            (n_snapshots if idx is None else len(idx)) * float(b)
            for idx, b in zip(kept, layer_bytes)
        )
    )


def network_layer_bytes(d_in: int, widths: Sequence[int], members: int, itemsize: int):
    """Bytes of one snapshot of each weight matrix ``W1 .. WL`` of a network
    (``W1`` is (m1, d_in), ``WL`` is (1, m_{L-1})), all members together."""
    dims = [int(d_in), *map(int, widths), 1]
    return [float(members) * itemsize * dims[i] * dims[i + 1] for i in range(len(dims) - 1)]


# the weights a bounded run writes to arrays/, snapshots and kept states together
ARRAYS_BUDGET_BYTES = 90e6


def written_plan(
    save: str,
    stored: Sequence[int],
    layer_bytes: Sequence[float],
    n_states: int = 2,
    budget: float | None = None,
) -> list[tuple[np.ndarray, bool]]:
    """Per layer, what a run writes to ``arrays/``: ``(positions, states)``, the
    positions among the layer's ``stored[k]`` stored snapshots to write and whether
    its ``n_states`` kept states (the escape and the plateau exit) are written.

    ``"full"`` writes everything.  ``"bounded"`` keeps the weights written within
    ``budget`` (default :data:`ARRAYS_BUDGET_BYTES`): the layers go in the order of
    what they would write in full, smallest first, each taking what fits its share of
    what is left, in this order: the last stored snapshot, the kept states (where
    both fit), then further snapshots evenly spread from the first.
    Small networks write everything; at width 2000 the middle layer (32 MB a copy)
    is written once, at the end; at width 4000 (128 MB) not at all.
    """
    if save not in SAVE_MODES:
        raise ValueError(f"save must be one of {SAVE_MODES}, got {save!r}")
    everything = [(np.arange(int(k)), True) for k in stored]
    if save == "full":
        return everything
    left = float(ARRAYS_BUDGET_BYTES if budget is None else budget)
    out = list(everything)
    need = [(int(k) + n_states) * max(float(b), 1.0) for k, b in zip(stored, layer_bytes)]
    order = np.argsort(np.asarray(need), kind="stable")  # all of it, when it all fits
    for pos, layer in enumerate(order):
        k, size = int(stored[layer]), max(float(layer_bytes[layer]), 1.0)
        share = left / (len(order) - pos)
        if (k + n_states) * size <= share:
            left -= (k + n_states) * size
            continue
        used, picked = 0.0, np.zeros(0, np.int64)
        if k and size <= share:
            picked, used = np.array([k - 1]), size
        states = bool(picked.size) and used + n_states * size <= share
        used += n_states * size if states else 0.0
        more = int((share - used) // size) if picked.size else 0
        if more and k > 1:
            spread = np.round(np.linspace(0, k - 2, min(more, k - 1))).astype(np.int64)
            picked = np.unique(np.concatenate([spread, picked]))
            used += (picked.size - 1) * size
        out[layer] = (picked, states)
        left -= used
    return out
