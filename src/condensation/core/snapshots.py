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
