"""The numbers of a matrix run: its ``summary.json``, member by member.

Test error, effective rank, singular values and their half times, escape and
plateau exit against the effective ``T*``, the rank-one plateau, the alignment
of ``W1`` with the top singular vector of ``M_O``, and the nuclear-norm baseline.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from condensation import matrix as mx
from condensation.commands.stages import matrix_stages, no_stage_notes
from condensation.config import checks as inputs
from condensation.core import staircase
from condensation.effective import theory

if TYPE_CHECKING:
    from condensation.commands.matrix import MatrixRun


N_REPORT = 10  # singular values / half times per member in summary.json
SIGNIFICANT = 1e-3  # half times are reported for sigma_k(T) >= this x sigma_1(T)

def _opt(x) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None


def closed_form_modes(run: MatrixRun) -> np.ndarray | str:
    """The modes of THEORY §10's closed form for this run (``M``'s diagonal, largest
    first), or the one line saying why the run is outside it."""
    pb, cfg = run.problem, run.config
    full = pb.kind == "completion" and bool(np.all(pb.mask))
    width = cfg.model.width if cfg.model.width is not None else max(pb.shape)
    return staircase.diagonal_modes(pb.m, full, cfg.init.scheme, width)


def predicted_half_times(modes: np.ndarray | str, eps: float, depth: int, k: int) -> list | None:
    """Gradient flow's half-time of each of the first ``k`` modes from ``u(0) = eps^L``
    (None outside the closed form, or for a mode that starts above half its value)."""
    if isinstance(modes, str):
        return None
    u0 = eps**depth
    return [
        staircase.mode_half_time(float(si), u0, depth) if 0 < u0 < si / 2 else None
        for si in modes[:k]
    ]


def member_summaries(run: MatrixRun) -> list[dict]:
    """Every member's numbers, as in ``summary.json``'s ``members``.

    Args:
        run: the matrix run.

    Returns:
        One dict per member: status, errors, effective rank, singular values and
        half times, escape and plateau exit against ``T*``, alignment with ``v1``.
    """
    r, cfg = run.result, run.config
    times = r.snapshot_times
    s = r.series
    tiny = float(inputs.dtype_limits(cfg.train.dtype).smallest_normal)
    x = s["x"]
    stuck = [  # gradients underflow and the product never moved: underflow to zero
        eps ** max(cfg.model.depth - 1, 1) < tiny and np.array_equal(x[i, -1], x[i, 0])
        for i, eps in enumerate(run.ensemble.scales)
    ]
    modes = closed_form_modes(run)
    out = []
    for i in range(run.ensemble.size):
        sv = s["singular_values"][i, -1]
        tracked = r.tracked_singular_values[i]
        k = min(N_REPORT, sv.size)
        significant = sv[:k] >= SIGNIFICANT * sv[0] if sv[0] > 0 else np.zeros(k, bool)
        ht = mx.half_times(times, tracked[:, :k])
        esc = r.escape_step[i]
        fs = r.final_stage_step[i]
        b = run.blowups[i] if run.blowups is not None else None
        t_star = b.T_star if b is not None and b.blew_up else float("nan")
        esc_t = esc * r.lr if esc >= 0 else float("nan")
        ex = r.plateau_exit_step[i]
        exit_t = ex * r.lr if ex >= 0 else float("nan")
        plateau = mx.longest_stretch_below(times, s["effective_rank"][i], mx.PLATEAU_RANK)
        x0 = mx.row_alignment_np(r.escape_w1[i], run_v1(run)) if esc >= 0 else None
        out.append(
            {
                "seed": run.ensemble.seeds[i],
                "scale": run.ensemble.scales[i],
                "depth": cfg.model.depth,
                "status": "diverged"
                if r.diverged_step[i] >= 0
                else ("underflow" if stuck[i] else "ok"),
                "test_rmse": s["test_rmse"][i, -1],
                "rel_fro_error": s["rel_fro_error"][i, -1],
                "train_loss": s["loss"][i, -1],
                "loss_initial": s["loss"][i, 0],
                "effective_rank": s["effective_rank"][i, -1],
                "nuclear_norm": s["nuclear_norm"][i, -1],
                "singular_values": sv[:k],
                "half_times": [float(h) if ok else None for h, ok in zip(ht, significant)],
                "half_times_closed_form": predicted_half_times(
                    modes, run.ensemble.scales[i], cfg.model.depth, k
                ),
                "escape_time": _opt(esc_t),
                "T_star_effective": _opt(t_star),
                "T_star_rel_error": _opt(b.T_star_rel_error) if b is not None else None,
                "escape_over_T_star": _opt(esc_t / t_star),
                "plateau_exit_time": _opt(exit_t),
                "plateau_exit_over_T_star": _opt(exit_t / t_star),
                "final_stage_entry_time": float(fs * r.lr) if fs >= 0 else None,
                "rank_one_plateau": list(plateau) if plateau is not None else None,
                "median_abs_cos_v1_at_escape": float(np.median(x0)) if x0 is not None else None,
                "frac_abs_cos_v1_above_0_95_at_escape": (
                    float(np.mean(x0 > mx.ALIGNED)) if x0 is not None else None
                ),
                "median_abs_cos_v1_final": s["median_abs_cos_v1"][i, -1],
                "n_stages": len(stages := matrix_stages(run, i)),
                "stages": stages,
                **(
                    {}
                    if run.plan is None
                    else {
                        "fast_forward": run.plan.members[i].summary(
                            r.steps, int(esc) if esc >= 0 else None
                        )
                    }
                ),
            }
        )
    return out


def run_v1(run: MatrixRun) -> np.ndarray:
    """The top right singular vector ``v1`` of the run's ``M_O``.

    Args:
        run: the matrix run.

    Returns:
        (n2,) ``v1``.
    """
    return mx.top_singular_pair(run.problem.m_obs)[2]


def t_star_notes(run: MatrixRun) -> list[str]:
    """One line per member whose effective T* is beyond float64 (summary ``null``).

    Args:
        run: the matrix run.

    Returns:
        The note lines (empty without blow-ups).
    """
    if run.blowups is None:
        return []
    from condensation.effective.predictions import log10_t_star

    return [
        f"member {i} (seed {run.ensemble.seeds[i]}, eps {run.ensemble.scales[i]:.3g}): "
        f"effective T* = {theory.format_time(b.T_star, log10_t_star(b))}, "
        "recorded as null in T_star_effective"
        for i, b in enumerate(run.blowups)
        if b.blew_up and not math.isfinite(b.T_star)
    ]


def summary(run: MatrixRun) -> dict:
    """The ``summary.json`` of a matrix run.

    Args:
        run: the matrix run.

    Returns:
        The summary dict (``kind = "matrix"``), members and baseline included.
    """
    cfg, pb = run.config, run.problem
    s_obs = np.linalg.svd(pb.m_obs, compute_uv=False)
    s_m = np.linalg.svd(pb.m, compute_uv=False)
    members = member_summaries(run)
    out = {
        "kind": "matrix",
        "problem": pb.kind,
        "name": pb.name,
        "shape": list(pb.shape),
        "n_observed": pb.n_observed,
        "rank_M": int(np.sum(s_m > 1e-10 * s_m[0])),
        "singular_values_M": s_m[:N_REPORT],
        "singular_values_M_obs": s_obs[:N_REPORT],
        "s1": float(s_obs[0]),
        "depth": cfg.model.depth,
        "width": int(run.ensemble.params[0].shape[1]) if cfg.model.depth > 1 else None,
        "init_scheme": cfg.init.scheme,
        "lr": cfg.train.lr,
        "steps": cfg.train.steps,
        "dtype": cfg.train.dtype,
        "fast_forward": cfg.train.fast_forward,
        "handoff": cfg.train.handoff if cfg.train.fast_forward else None,
        "notes": [
            *([] if run.plan is None else run.plan.notes),
            *t_star_notes(run),
            *no_stage_notes(members),
        ],
        # THEORY §10's closed form of each mode's half-time: "applies", or why not
        "closed_form": "applies" if not isinstance(modes := closed_form_modes(run), str) else modes,
        "members": members,
    }
    if run.baseline is not None:
        out["nuclear_norm_baseline"] = {
            **mx.matrix_errors(pb, run.baseline.x),
            "iterations": run.baseline.iterations,
            "converged": run.baseline.converged,
        }
    return out
