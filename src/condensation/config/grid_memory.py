"""Memory estimate of a phase-diagram grid (its cells train every width and seed at
once), checked before compute like every run's (:mod:`condensation.config.memory`).
"""

from __future__ import annotations

from collections.abc import Sequence

from condensation.config.memory import RUNTIME_BYTES, Factor, check_memory


def cell_memory(
    d_in: int, widths: Sequence[int], depth: int, seeds: int, n: int, workers: int
) -> dict[str, float]:
    """Estimated bytes of a phase-diagram run: each cell trains every width and seed
    at once, zero-padded to the largest width (weights, gradients, start and
    escape copies, activations), ``max(workers, 1)`` cells at a time, each worker a
    process with its own libraries."""
    m = max(widths)
    dims = [d_in] + [m] * (depth - 1) + [1]
    weights = sum(dims[j] * dims[j + 1] for j in range(len(dims) - 1))
    members = len(widths) * seeds
    at_once = max(workers, 1)
    return {
        "cells": 8.0 * at_once * members * (8 * weights + 4 * n * m * (depth - 1)),
        "libraries": at_once * RUNTIME_BYTES,
    }


def check_cell_memory(p: dict, d_in: int, n: int, widths_key: str, default_widths) -> float:
    """Refuse a phase-diagram grid (its validated parameters ``p``) whose cells would
    not fit in memory, naming the widths (or the seeds, or the workers)."""
    widths = list(p[widths_key])
    args = {
        "d_in": d_in,
        "widths": tuple(widths),
        "depth": p["depth"],
        "seeds": len(p["seeds"]),
        "n": n,
        "workers": p["workers"],
    }
    factors = [
        Factor(widths_key, widths, {"widths": tuple(default_widths)}, {"widths": (2, 4)}),
        Factor("seeds", list(p["seeds"]), {"seeds": 1}, {"seeds": 1}),
        Factor("workers", p["workers"], {"workers": 1}, {"workers": 1}),
    ]
    return check_memory(cell_memory, args, factors)

