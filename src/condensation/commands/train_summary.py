"""The numbers of a train run: its ``summary.json``, member by member.

At the escape and the plateau exit (condensation measured where it happens), the
status of each member (ok, diverged, underflow), the stable ranks and the
hand-off of a fast-forwarded member; :func:`summary` is the whole file.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import jax
import numpy as np

from condensation.commands.prepare import optimizer_of
from condensation.commands.stages import no_stage_notes, train_stages
from condensation.config import checks as inputs
from condensation.core.final_stage import final_stage_counts
from condensation.core.metrics import abs_cos_to, condensation_metrics, top_direction_alignment
from condensation.core.regime import rd_over_snapshots
from condensation.core.regime_measures import balance_drift, kernel_distance, pattern_distance
from condensation.training.network import TrainResult
from condensation.training.optimizers import Optimizer

if TYPE_CHECKING:
    from condensation.commands.train import TrainRun

# one compiled program per shape (op by op it compiled ~10 tiny programs, 0.25 s a run)
_final_stage_counts = jax.jit(final_stage_counts)


def _state_numbers(params, z: np.ndarray, where: str) -> dict:
    """At one recorded state (``where`` = ``plateau_exit`` or ``escape``): W1's rows'
    alignment with its own top singular direction and, for depth 3, how many
    neurons violate the inner-product constraint and how many pairs the angle
    constraint of the final-stage condition; all None when ``params`` is None."""
    keys = (
        f"median_abs_cos_top_direction_at_{where}",
        f"final_stage_inner_violations_at_{where}",
        f"final_stage_angle_violations_at_{where}",
    )
    if params is None:
        return dict.fromkeys(keys)
    out = {keys[0]: top_direction_alignment(params[0])}
    if len(params) == 3:
        b, w, a = params
        n_inner, n_pairs = _final_stage_counts(a[0], w, b @ z)
        out[keys[1]], out[keys[2]] = int(n_inner), int(n_pairs)
    else:
        out[keys[1]] = out[keys[2]] = None
    return out


def plateau_numbers(r: TrainResult, i: int, z: np.ndarray) -> dict:
    """Member ``i``'s condensation measured where it happens: at the plateau exit
    (loss down by ``plateau_drop``) and at the peak of the median |cos(b_j, z)|.

    Args:
        r: the training's result.
        i: the member.
        z: the data's ``z = mean(y x)``.

    Returns:
        The ``plateau_exit_*`` and ``peak_median_abs_cos*`` keys of its summary.
    """
    exited = r.plateau_exit_step[i] >= 0
    params = [np.asarray(w[i], dtype=float) for w in r.plateau_exit_params] if exited else None
    return {
        "plateau_exit_step": int(r.plateau_exit_step[i]) if exited else None,
        "plateau_exit_time": float(r.plateau_exit_step[i] * r.lr) if exited else None,
        "median_abs_cos_at_plateau_exit": (
            float(np.median(abs_cos_to(params[0], z))) if exited else None
        ),
        "peak_median_abs_cos": float(r.peak_median_abs_cos[i]),
        "peak_median_abs_cos_time": float(r.peak_median_abs_cos_step[i] * r.lr),
        **_state_numbers(params, z, "plateau_exit"),
    }


def member_summaries(run: TrainRun) -> list[dict]:
    """Every member's numbers, as in ``summary.json``'s ``members``.

    Args:
        run: the train run.

    Returns:
        One dict per member: status, losses, escape and plateau exit, condensation
        at both, final-stage entry, stable ranks, fast-forward hand-off.
    """
    r, z = run.result, run.data.z
    stuck = never_moved(r.snapshots, run.ensemble.scales, run.spec.depth, run.config.train.dtype)
    rd_end, rd_max = rd_over_snapshots(r.snapshots)  # (E, L), at the snapshot times
    out = []
    for i in range(run.ensemble.size):
        escaped = r.escape_step[i] >= 0
        at_escape = (
            condensation_metrics([np.asarray(w[i], dtype=float) for w in r.escape_params], z)
            if escaped
            else dict.fromkeys(
                ("median_abs_cos", "frac_abs_cos_above_0_95", "w_sigma_ratio", "n_clusters")
            )
        )
        fs = r.final_stage_step[i]
        out.append(
            {
                "seed": run.ensemble.seeds[i],
                "scale": run.ensemble.scales[i],
                "status": member_status(r.diverged_step[i], stuck[i]),
                "diverged_step": int(r.diverged_step[i]) if r.diverged_step[i] >= 0 else None,
                "loss_initial": r.loss_initial[i],
                "loss_final": r.loss_final[i],
                "escape_step": int(r.escape_step[i]) if escaped else None,
                "escape_time": float(r.escape_step[i] * r.lr) if escaped else None,
                **at_escape,
                "final_stage_entry_time": float(fs * r.lr) if fs >= 0 else None,
                **plateau_numbers(r, i, z),
                **_state_numbers(
                    [np.asarray(w[i], dtype=float) for w in r.escape_params] if escaped else None,
                    z,
                    "escape",
                ),
                **{f"rd_layer{k + 1}_end": float(v) for k, v in enumerate(rd_end[i])},
                **{f"rd_layer{k + 1}_max": float(v) for k, v in enumerate(rd_max[i])},
                **_fast_forward_numbers(run, i),
                **_stage_numbers(train_stages(run, i)),
                **regime_numbers(run, i),
            }
        )
    return out


def regime_numbers(run: TrainRun, i: int) -> dict:
    """Member ``i``'s lazy-vs-rich measures from its first to its last snapshot
    (:mod:`condensation.core.regime_measures`): the tangent-kernel distance, the
    activation-pattern distance, and the balancedness drift per pair of layers over
    every snapshot."""
    r = run.result
    first = [np.asarray(w[i, 0], dtype=float) for w in r.snapshots]
    last = [np.asarray(w[i, -1], dtype=float) for w in r.snapshots]
    x = np.asarray(run.data.x, dtype=float)
    kd = kernel_distance(last, first, x, run.spec.activation.fn)
    norms = r.measures["layer_norms"][i] if r.measures else None
    drift = balance_drift(norms) if norms is not None else None
    return {
        "kernel_distance": kd,
        "pattern_distance": pattern_distance(last, first, x, run.spec.activation.fn),
        "balance_drift": None if drift is None else [float(v) for v in drift],
    }


def _stage_numbers(stages: list[dict]) -> dict:
    """``n_stages`` and ``stages`` (THEORY §10; :mod:`condensation.commands.stages`)."""
    return {"n_stages": len(stages), "stages": stages}


def _fast_forward_numbers(run: TrainRun, i: int) -> dict:
    """Member ``i``'s hand-off (``train.fast_forward``): ``{"fast_forward": {...}}``."""
    if run.plan is None:
        return {}
    r = run.result
    esc = int(r.escape_step[i]) if r.escape_step[i] >= 0 else None
    out = run.plan.members[i].summary(r.steps, esc)
    k2 = run.config.model.output_scale**2  # the plan ran in the time of g: t kappa^2
    for key in ("handoff_time", "effective_t_star"):
        if out.get(key) is not None and k2 != 1.0:
            out[key] = out[key] / k2
    return {"fast_forward": out}


def never_moved(snapshots, scales, depth: int, dtype: str) -> np.ndarray:
    """(E,) True where a member's gradients underflow (``eps^(depth-1)`` below the
    dtype's smallest normal number) and its parameters never changed from the first
    snapshot to the last: underflow to zero, not a trained network.

    Args:
        snapshots: per layer, (E, K, ...) parameter snapshots.
        scales: the members' init scales (None: loaded from ``init.path``).
        depth: the network's depth.
        dtype: the training dtype.

    Returns:
        (E,) bool.
    """
    tiny = float(inputs.dtype_limits(dtype).smallest_normal)
    risky = np.array([s is not None and s ** (depth - 1) < tiny for s in scales])
    same = np.all(
        np.stack(
            [np.all(w[:, -1] == w[:, 0], axis=tuple(range(1, w.ndim - 1))) for w in snapshots]
        ),
        axis=0,
    )
    return risky & same


def member_status(diverged_step: int, stuck: bool) -> str:
    """``diverged`` (loss or parameters became non-finite: overflow), ``underflow``
    (see :func:`never_moved`) or ``ok``.

    Args:
        diverged_step: the step it diverged at, -1 if it did not.
        stuck: :func:`never_moved` for it.

    Returns:
        The status string.
    """
    if diverged_step >= 0:
        return "diverged"
    return "underflow" if stuck else "ok"


def optimizer_summary(opt: Optimizer) -> dict:
    """The optimizer, its settings, and what the effective prediction is for it.

    Args:
        opt: the run's optimizer.

    Returns:
        The ``optimizer`` (or ``comparison``) entry of a summary.
    """
    return {
        **opt.settings(),
        "loss_measured_on": "full batch",
        "effective_prediction": opt.theory_reach,
    }


def summary(run: TrainRun) -> dict:
    """The ``summary.json`` of a train run.

    Args:
        run: the train run.

    Returns:
        The summary dict (``kind = "train"``), members included.
    """
    cfg, d = run.config, run.data
    members = member_summaries(run)
    return {
        "kind": "train",
        "dataset": d.name,
        "n": int(d.x.shape[0]),
        "d_in": d.d_in,
        "z": d.z,
        "z_norm": float(np.linalg.norm(d.z)),
        "depth": run.spec.depth,
        "widths": list(run.spec.widths),
        "activation": run.spec.activation.name,
        "output_scale": cfg.model.output_scale,
        "layer_scales": list(run.ensemble.layer_scales) if run.ensemble.layer_scales else None,
        "antisymmetric": cfg.init.antisymmetric,
        "balance": cfg.init.balance,
        "lr": cfg.train.lr,
        "steps": cfg.train.steps,
        "dtype": cfg.train.dtype,
        "optimizer": optimizer_summary(optimizer_of(cfg, d)),
        "plateau_drop": cfg.train.plateau_drop,
        "steps_auto": run.steps_auto,
        "fast_forward": cfg.train.fast_forward,
        "handoff": cfg.train.handoff if cfg.train.fast_forward else None,
        "notes": [*run.notes, *no_stage_notes(members)],
        "save": cfg.train.save,
        "stored_snapshots": [len(run.result.layer_steps(k)) for k in range(run.spec.depth)],
        "members": members,
    }
