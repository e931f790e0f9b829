"""Condensed-solution detection on an effective trajectory near its blow-up (THEORY §5).

A condensed solution has every ``|c_j| -> infinity`` as ``t -> T*``: every
first-layer weight aligns with ``+-z``, the rows of ``W`` align with
``+-c/|c|``, ``W`` becomes rank one and ``a/|a|`` converges.  Once the
final-stage set is entered at ``t0``, ``|c_j(t)| >= |c_j(t0)| log((T* - t0)/(T* - t)) - C``.
"""

from __future__ import annotations

import numpy as np

from condensation.core.metrics import abs_cos_to, sigma_ratio
from condensation.effective.blowup import Blowup
from condensation.effective.system import EffectiveSystem, trajectory

LEVELS = (1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6)  # snapshots at T* - level * T*


def condensed_report(
    system: EffectiveSystem, sol: Blowup, entry_time: float | None, levels=LEVELS, min_len=0
) -> dict:
    """Measurements at ``t = T* (1 - level)`` (and at the final-stage entry ``t0``).

    Returns per-level arrays and summary numbers: ``min_abs_cos`` (min_j
    |cos(b_j, z)|), ``w_sigma_ratio``, ``w_rows_min_abs_cos_c`` (min_k
    |cos(W_k,:, c)|), ``a_direction_change`` (1 - cos between successive a/|a|),
    and ``log_bound_min_ratio`` = min over j and levels of
    ``|c_j(t)| / (|c_j(t0)| log((T* - t0)/(T* - t)))`` (>= 1: the bound holds
    without its constant).  ``min_len``: passed to :func:`condensation.effective.system.trajectory`
    (a caller that also queries longer trajectories of the same system shares their
    compiled solve).
    """
    if not sol.blew_up:
        raise ValueError(f"no blow-up to examine (status {sol.status})")
    t_star = sol.T_star
    levels = np.asarray(levels, dtype=float)
    level_times = t_star * (1 - levels)
    has_entry = entry_time is not None and entry_time < level_times[-1]
    times = np.sort(np.concatenate([level_times, [entry_time] if has_entry else []]))
    t, (b, w, a) = trajectory(system, sol, times, min_len=min_len)
    at_levels = np.searchsorted(times, level_times)  # indices of the level snapshots
    # zero (padded) neurons are an invariant subspace: leave them out
    act1, act2 = np.any(b[0] != 0, axis=1), np.any(w[0] != 0, axis=1)
    b, w = b[:, act1], w[:, act2][:, :, act1]
    c = b @ system.z  # (K, m1)
    ahat = a[:, 0, act2] / np.linalg.norm(a[:, 0, act2], axis=1, keepdims=True)
    ahat = ahat[at_levels]
    out = {
        "levels": levels,
        "times": t[at_levels],
        "min_abs_cos": np.min(abs_cos_to(b, system.z), axis=-1)[at_levels],
        "w_sigma_ratio": np.array([sigma_ratio(wk) for wk in w])[at_levels],
        "w_rows_min_abs_cos_c": np.array([np.min(abs_cos_to(wk, ck)) for wk, ck in zip(w, c)])[
            at_levels
        ],
        "a_direction_change": 1 - np.sum(ahat[1:] * ahat[:-1], axis=1),
        "log_bound_min_ratio": float("nan"),
    }
    if has_entry:
        i0 = int(np.searchsorted(times, entry_time))
        after = at_levels[at_levels > i0]
        if after.size:
            logs = np.log((t_star - t[i0]) / (t_star - t[after]))
            ratio = np.abs(c[after]) / (np.abs(c[i0])[None, :] * logs[:, None])
            out["log_bound_min_ratio"] = float(np.min(ratio))
    return out
