"""Memory estimates of a run, checked before compute (:func:`check_memory`).

A run's memory (its working set plus the snapshots it keeps) is estimated before
compute and refused above :func:`memory_limit` (half the available memory, or
``CONDENSATION_MEMORY_LIMIT`` bytes, e.g. ``8e9``) with the estimate, naming the
input that makes it too large.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from condensation.core.snapshots import (
    SAVE_MODES,
    kept_indices,
    network_layer_bytes,
    stored_bytes,
)
from condensation.core.solve_memory import solve_bytes
from condensation.datasets import TEACHERS
from condensation.errors import InputError

MEMORY_FRACTION = 0.5  # share of the available memory a run may plan to use
MEMORY_ENV = "CONDENSATION_MEMORY_LIMIT"


def available_memory() -> float:
    """Bytes of memory available now (MemAvailable; physical memory where unknown)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return float(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return float(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return 8e9


def memory_limit() -> float:
    """The cap on a run's estimated memory: ``CONDENSATION_MEMORY_LIMIT`` bytes, else
    :data:`MEMORY_FRACTION` of the available memory."""
    raw = os.environ.get(MEMORY_ENV)
    if raw:
        try:
            v = float(raw)
        except ValueError:
            v = -1.0
        if not (math.isfinite(v) and v > 0):
            raise InputError(MEMORY_ENV, raw, "expected a positive number of bytes", "e.g. 8e9")
        return v
    return MEMORY_FRACTION * available_memory()


def _gib(b: float) -> str:
    return f"{b / 2**30:.3g} GiB"


class Factor(NamedTuple):
    """One input a memory estimate grows with: the config ``field`` to name, its
    ``value`` as given, and the estimate's arguments with it at its default and at
    its smallest value."""

    field: str
    value: object
    default: dict[str, Any]
    smallest: dict[str, Any]
    note: str = ""  # what the value stands for, when not plain (e.g. a file's rows)


def check_memory(
    parts_of: Callable[..., dict[str, float]],
    args: dict[str, Any],
    factors: Sequence[Factor],
) -> float:
    """Refuse a run whose estimated bytes exceed :func:`memory_limit`, naming the
    input that makes it too large.

    ``parts_of(**args)`` is the estimate (part name -> bytes).  The field named is
    the :class:`Factor` whose return to its default saves the most bytes (the one
    raised furthest above what the estimate was sized for); where none saves
    anything (every factor at or below its default), the one whose reduction to its
    smallest value saves the most.  The first listed wins a tie; the fix lists the
    other factors.  Returns the estimated bytes when they fit.
    """
    parts = parts_of(**args)
    total = float(sum(parts.values()))
    cap = memory_limit()
    if total <= cap:
        return total

    def saved(at: dict[str, Any]) -> float:
        return total - float(sum(parts_of(**{**args, **at}).values()))

    worst = max(factors, key=lambda f: saved(f.default))  # max keeps the first of ties
    if not saved(worst.default) > 0:
        worst = max(factors, key=lambda f: saved(f.smallest))
    detail = ", ".join(f"{k} {_gib(v)}" for k, v in parts.items())
    note = f" ({worst.note})" if worst.note else ""
    others = list(dict.fromkeys(f.field for f in factors if f.field != worst.field))
    raise InputError(
        worst.field,
        worst.value,
        f"the run needs about {_gib(total)} ({detail}), more than the {_gib(cap)} allowed "
        f"(half the available memory, or {MEMORY_ENV}); {worst.field}{note} is the "
        "largest factor",
        f"use a smaller {worst.field} (the estimate also grows with {', '.join(others)})"
        if others
        else f"use a smaller {worst.field}",
    )


def network_memory(
    n: int, d_in: int, widths: Sequence[int], members: int, n_snapshots: int, dtype: str
) -> dict[str, float]:
    """Estimated bytes of a network run: data, the working set of one GD step (weights,
    gradients, escape copy and activations of every member), the snapshots kept on the
    host, and the metrics' per-snapshot cosine matrices."""
    item = 4 if dtype == "float32" else 8
    dims = [d_in, *widths, 1]
    weights = sum(dims[k] * dims[k + 1] for k in range(len(dims) - 1))
    acts = n * sum(dims)
    m1 = widths[0] if widths else 1
    return {
        "data": 8.0 * n * (d_in + 1),
        "working set": float(item) * members * (5 * weights + 4 * acts),
        "snapshots": float(item) * members * n_snapshots * weights * 2,
        "metrics": 8.0 * 4 * m1 * m1,
    }


def snapshot_count(steps: int | str, snapshots: int, linear: int) -> int:
    """An upper bound on the number of snapshots a ``[train]`` section keeps.
    ``steps = "auto"`` (a horizon not resolved yet, e.g. ``effective`` without
    ``--compare-gd``, which trains nothing): the bound the snapshot counts give."""
    if not isinstance(steps, int):  # "auto": no horizon to cap the count
        return snapshots + linear + 2
    return min(snapshots + linear + 2, steps + 1)


def check_save(field: str, value: str) -> str:
    """``[train] save``: one of :data:`condensation.core.snapshots.SAVE_MODES`."""
    if value not in SAVE_MODES:
        raise InputError(
            field,
            value,
            "unknown save mode",
            'use save = "bounded" (default: parameter snapshots within a fixed budget) '
            'or "full" (every layer at every snapshot)',
        )
    return value


def _members(cfg) -> tuple[int, list[Factor]]:
    """An ensemble's member count (seeds x scales) and its factors, for the memory check."""
    seeds = list(cfg.init.seeds) if cfg.init.seeds is not None else [cfg.init.seed]
    scales = list(cfg.scales)
    factors = []
    if len(seeds) > 1:
        one = {"members": len(scales)}
        factors.append(Factor("init.seeds", seeds, one, one, f"{len(seeds)} seeds"))
    if cfg.init.scales is not None and len(scales) > 1:
        one = {"members": len(seeds)}
        factors.append(Factor("init.scales", scales, one, one, f"{len(scales)} scales"))
    return len(seeds) * len(scales), factors


def _snapshot_factors(t) -> list[Factor]:
    """The ``[train]`` snapshot counts as memory factors (defaults: the section's)."""
    d = type(t)()
    return [
        Factor(
            "train.snapshots",
            t.snapshots,
            {"k": snapshot_count(t.steps, d.snapshots, t.linear_snapshots)},
            {"k": snapshot_count(t.steps, 2, t.linear_snapshots)},
        ),
        Factor(
            "train.linear_snapshots",
            t.linear_snapshots,
            {"k": snapshot_count(t.steps, t.snapshots, d.linear_snapshots)},
            {"k": snapshot_count(t.steps, t.snapshots, 0)},
        ),
    ]


RUNTIME_BYTES = 0.45 * 2**30  # the libraries and compiled programs (a width-10 run's RSS)
SOLVER_BYTES = 0.15 * 2**30  # the ODE solver's, on top (a width-10 fast-forward's RSS)


def train_memory(
    n: int,
    d_in: int,
    widths: Sequence[int],
    members: int,
    k: int,
    dtype: str,
    save: str,
    fast_forward: bool = False,
    predict: bool = False,
) -> dict[str, float]:
    """:func:`network_memory` with the snapshots ``save`` keeps (twice: the list and
    the stacked arrays), the process's libraries, and what comes before GD:
    ``predict``, a depth-3 T* (``steps = "auto"``, fast-forward: one
    eigendecomposition of a member's middle layer, a few copies of it);
    ``fast_forward``, the second-order solve of one member at a time
    (:func:`condensation.core.solve_memory.solve_bytes`), the hand-off's
    snapshots and start states."""
    parts = network_memory(n, d_in, widths, members, k, dtype)
    sizes = network_layer_bytes(d_in, widths, members, 4 if dtype == "float32" else 8)
    stored = stored_bytes(k, sizes, kept_indices(save, k, sizes))
    parts["snapshots"] = 2 * stored
    parts["libraries"] = RUNTIME_BYTES + (SOLVER_BYTES if fast_forward or predict else 0.0)
    dims = [d_in, *widths, 1]
    weights = sum(dims[j] * dims[j + 1] for j in range(len(dims) - 1))
    if predict:
        parts["T* prediction"] = 8.0 * 4 * weights
    if fast_forward:
        parts["fast-forward"] = solve_bytes(weights) + stored + 8.0 * members * weights
    return parts


def check_train_memory(cfg, n: int, d_in: int) -> float:
    """Refuse a network run (a validated ``Config``) too large for memory, before
    compute, naming the input that makes it so: ``data.n`` / ``data.d`` (or the
    ``data.path`` file, or the bundled ``data.dataset``), ``model.widths``,
    ``init.seeds`` / ``init.scales`` (ensemble members) or the snapshot counts."""
    t, d = cfg.train, cfg.data
    if cfg.init.path is None:
        members, member_factors = _members(cfg)
    else:
        members, member_factors = 1, []
    args = {
        "n": n,
        "d_in": d_in,
        "widths": tuple(cfg.model.widths),
        "members": members,
        "k": snapshot_count(t.steps, t.snapshots, t.linear_snapshots),
        "dtype": t.dtype,
        "save": t.save,
        "fast_forward": bool(t.fast_forward),
        "predict": len(cfg.model.widths) == 2 and (t.steps == "auto" or bool(t.fast_forward)),
    }
    dd = type(d)()  # the [data] defaults
    if d.path is not None:
        rows = f"{n} rows of {d_in} inputs"
        data = [
            Factor("data.path", d.path, {"n": dd.n}, {"n": 1}, rows),
            Factor("data.path", d.path, {"d_in": dd.d}, {"d_in": 1}, rows),
        ]
    elif d.dataset in TEACHERS:
        data = [
            Factor("data.n", d.n, {"n": dd.n}, {"n": 1}),
            Factor("data.d", d.d, {"d_in": dd.d}, {"d_in": 1}),
        ]
    elif d.n == n:  # a 1-D built-in of data.n points
        data = [Factor("data.n", d.n, {"n": dd.n}, {"n": 1})]
    else:  # a bundled data set of its own size
        small = {"n": 1, "d_in": 1}
        data = [Factor("data.dataset", d.dataset, small, small, f"{n} x {d_in}")]
    m, w0 = len(cfg.model.widths), type(cfg.model)().widths[0]  # (the default width)
    widths = Factor(
        "model.widths", list(cfg.model.widths), {"widths": (w0,) * m}, {"widths": (1,) * m}
    )
    return check_memory(
        train_memory,
        args,
        [*data, widths, *member_factors, *_snapshot_factors(t)],
    )


def matrix_memory(
    n1: int,
    n2: int,
    width: int | None,
    depth: int,
    n_obs: int,
    sensing: bool,
    members: int,
    k: int,
    dtype: str,
) -> dict[str, float]:
    """Estimated bytes of a matrix run: the problem, the working set of one GD step
    of every member, and the snapshots kept (hidden width ``max(n1, n2)`` by default)."""
    h = width if width is not None else max(n1, n2)
    item = 4 if dtype == "float32" else 8
    dims = [n2] + [h] * (depth - 1) + [n1]
    weights = sum(dims[j] * dims[j + 1] for j in range(len(dims) - 1))
    a = n_obs * n1 * n2 if sensing else 0
    return {
        "problem": 8.0 * (4 * n1 * n2 + a),
        "working set": float(item) * members * (6 * weights + 4 * n1 * n2 + a),
        "snapshots": 8.0 * members * k * (3 * n1 * n2 + 2 * min(n1, n2)),
    }


def check_matrix_memory(cfg, n1: int, n2: int, n_obs: int) -> float:
    """Refuse a matrix run (a validated ``MatrixConfig``) too large for memory, naming
    the input that makes it so (``problem.n`` / ``cols`` / ``observed`` or the
    ``problem.path`` file, ``model.width``, seeds x scales, the snapshot counts)."""
    t, m, p = cfg.train, cfg.model, cfg.problem
    members, member_factors = _members(cfg)
    sensing = p.kind == "sensing"
    args = {
        "n1": n1,
        "n2": n2,
        "width": m.width,
        "depth": m.depth,
        "n_obs": n_obs,
        "sensing": sensing,
        "members": members,
        "k": snapshot_count(t.steps, t.snapshots, t.linear_snapshots),
        "dtype": t.dtype,
    }
    pd = type(p)()  # the [problem] defaults
    problem: list[Factor] = []
    if p.path is not None:
        shape = f"a {n1} x {n2} problem" + (f" with {n_obs} measurements" if sensing else "")
        size = {"n1": pd.n, "n2": pd.n}
        problem.append(Factor("problem.path", p.path, size, {"n1": 1, "n2": 1}, shape))
        if sensing:
            obs = Factor("problem.path", p.path, {"n_obs": pd.observed}, {"n_obs": 1}, shape)
            problem.append(obs)
    else:
        if p.cols is not None:
            problem.append(Factor("problem.n", p.n, {"n1": pd.n}, {"n1": 1}))
            problem.append(Factor("problem.cols", p.cols, {"n2": pd.n}, {"n2": 1}))
        else:
            both = Factor("problem.n", p.n, {"n1": pd.n, "n2": pd.n}, {"n1": 1, "n2": 1})
            problem.append(both)
        if sensing:
            problem.append(
                Factor("problem.observed", p.observed, {"n_obs": pd.observed}, {"n_obs": 1})
            )
    if m.width is not None:
        problem.append(Factor("model.width", m.width, {"width": None}, {"width": 1}))
    return check_memory(
        matrix_memory,
        args,
        [*problem, *member_factors, *_snapshot_factors(t)],
    )


def data_memory(n: int, d_in: int) -> dict[str, float]:
    """Estimated bytes of a built-in data set: inputs with a bias column and targets."""
    return {"data": 8.0 * n * (d_in + 2)}


def check_data_memory(d) -> float:
    """Refuse a built-in data set (a validated ``DataConfig``) too large for memory
    before it is drawn, naming ``data.n`` or ``data.d``: what an experiment's ``data.*``
    parameters go through (a network run's own check, :func:`check_train_memory`,
    covers its data).  A file or a bundled set has its own size: 0 is returned.

    Args:
        d: the ``[data]`` section.

    Returns:
        The estimated bytes.
    """
    from condensation.datasets import BUNDLED

    if d.path is not None or d.dataset in BUNDLED:
        return 0.0
    dd = type(d)()
    teacher = d.dataset in TEACHERS
    factors = [Factor("data.n", d.n, {"n": dd.n}, {"n": 1})]
    if teacher:
        factors.append(Factor("data.d", d.d, {"d_in": dd.d}, {"d_in": 1}))
    return check_memory(data_memory, {"n": d.n, "d_in": d.d if teacher else 1}, factors)
