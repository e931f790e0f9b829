"""``escape-scaling``: GD escape time vs init scale eps, two layers vs three.

Both depths run with fast-forward (:mod:`condensation.training.fastforward`): the
effective dynamics up to the hand-off (tolerance ``handoff``), then GD, so a
plateau of ~1/eps costs the same at eps = 1e-8 as at 1e-2.  Depth 3: each scale
runs on its own horizon, its predicted T* plus room after the escape
(:func:`condensation.training.fastforward.auto_steps`, unless ``three_layer_steps`` is
given), one compiled program for all of them.  Depth 2: all scales in one
ensemble call up to ``margin x (log(1/eps_min) + 3)/|z|``.

Depth 4: :func:`effective_depth4_prediction` gives the blow-up times of the
effective four-layer dynamics (``∝ eps^-2``), saved, drawn on the log-log panel
and reported as ``four_layer_effective_slope``.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from condensation.commands.train import prepare
from condensation.config.network import config_from_dict
from condensation.data import Dataset
from condensation.effective.predictions import predicted_t_star
from condensation.errors import InputError, NumericalError
from condensation.experiments import (
    Figure,
    Progress,
    data_section,
    require_eps_range,
    require_positive,
)
from condensation.report import figures
from condensation.store.rundir import save_arrays
from condensation.training.fastforward import auto_steps, fast_forward_train
from condensation.training.network import snapshot_steps

NAME = "escape-scaling"
TITLE = "Escape time vs initial scale: log(1/eps) for two layers, 1/eps for three"
SECTION = "scaling"
STORY = """
How long the plateau lasts depends on the depth. For two layers the effective
dynamics is linear, the weights grow like eps exp(|z| t), and the escape time is
about log(1/eps)/|z|: each decade of smaller eps adds ln(10)/|z| to it. For three
layers the effective dynamics is quadratic and blows up at a time proportional
to 1/eps, so the escape time follows a power law with slope -1 on log-log axes
(depth L: eps^-(L-2)). Both are measured here by full-batch GD on the default
teacher data, fast-forwarded through the plateau (the effective dynamics up to
the hand-off, then GD), down to eps = 1e-8; the escape step is the first step
at which the loss has halved.
"""


def DATA_DEFAULT(p: dict) -> dict:  # noqa: N802 (the protocol's name)
    """The teacher set drawn from ``data_seed`` (data.* overrides it)."""
    return {"dataset": "teacher", "seed": p["data_seed"]}


DEFAULTS = {
    "eps_min": 1e-8,  # six decades: fast-forward makes the plateau's length free
    "eps_max": 1e-2,
    "n_eps": 7,
    "seed": 0,
    "width": 50,  # every hidden layer
    "activation": "tanh",
    "data_seed": 0,
    "three_layer_lr": 0.2,  # plateau Hessian is O(eps): large steps are accurate there
    "three_layer_steps": 0,  # 0: per scale, its predicted T* plus room (fastforward.auto_steps)
    "two_layer_lr": 0.01,  # GD growth rate ln(1 + lr|z|)/lr is within 0.3% of |z|
    "two_layer_steps": 0,  # 0: margin x (log(1/eps_min) + 3)/|z|/lr
    "margin": 1.3,
    "handoff": 1e-2,  # fast-forward tolerance (train.handoff)
}
QUICK = {"eps_min": 1e-6, "n_eps": 3}
SECONDS = (27, 90)  # quick: CPU s cold, one device (bench_reproduce 2026-12-05); default: earlier

FIGURES = (
    Figure(
        "figures/escape_vs_eps.png",
        "Left: GD escape time vs eps on log-log axes, with the fitted power law for "
        "depth 3 (grey dashes: slope -1 through the geometric mean). Right: two-layer "
        "escape time vs log10(eps), fitted line and the predicted slope ln(10)/|z|.",
        (
            "three_layer_slope",
            "three_layer_escape_time_times_eps_mean",
            "two_layer_increase_per_decade",
            "two_layer_predicted_increase_per_decade",
            "two_layer_increase_relative_error",
            "four_layer_effective_slope",
        ),
    ),
    Figure(
        "figures/loss_curves.png",
        "Loss curves for every eps (log time axis), three layers (left) and two "
        "layers (right): the effective dynamics up to the hand-off, GD after it; dashes "
        "mark the escapes.",
        (
            "z_norm",
            "three_layer_lr",
            "three_layer_steps",
            "two_layer_lr",
            "two_layer_steps",
            "handoff",
            "three_layer_gradient_evaluations",
        ),
    ),
)


def effective_depth4_prediction(
    eps: np.ndarray, data: Dataset, params: dict
) -> tuple[np.ndarray, np.ndarray] | None:
    """Predicted escape times of a four-layer network: the blow-up time T* of its
    effective dynamics (full form, degree 3), for the same teacher data and init
    seed, every eps in one batched solve.  By homogeneity ``T* ∝ eps^-2``."""
    from condensation.effective.predictions import blowups, effective_systems

    _, spec, ens = _prepare(params, 4, eps, 1.0)
    sols = blowups(effective_systems(ens.params, data.z, spec.activation))
    if not all(s.blew_up for s in sols):
        return None
    return np.asarray(eps, dtype=float), np.array([s.T_star for s in sols])


def _check(p: dict) -> None:
    require_eps_range(p)
    require_positive(p, ("three_layer_lr", "two_layer_lr", "margin", "width"))
    if not 0 < p["handoff"] < 1:
        raise InputError("handoff", p["handoff"], "must be in (0, 1)", "give e.g. handoff = 0.01")
    for k in ("three_layer_steps", "two_layer_steps"):
        if p[k] < 0:
            raise InputError(k, p[k], "must be >= 0 (0 = automatic)", f"give {k} >= 0")


def _prepare(p: dict, depth: int, eps: np.ndarray, lr: float):
    cfg = config_from_dict(
        {
            "data": data_section(p, DATA_DEFAULT(p)),
            "model": {
                "depth": depth,
                "widths": [p["width"]] * (depth - 1),
                "activation": p["activation"],
            },
            "init": {"scales": [float(e) for e in eps], "seed": p["seed"]},
            "train": {"lr": lr},
        }
    )
    return prepare(cfg)


def _train(params, data: Dataset, spec, lr: float, steps: int, delta: float, report=None):
    """Fast-forward then GD; returns ``(TrainResult, Plan)``."""
    return fast_forward_train(
        params,
        data.x,
        data.y,
        activation=spec.activation,
        lr=lr,
        steps=steps,
        snapshots=snapshot_steps(steps, 30, 60),
        delta=delta,
        track_final_stage=False,
        progress=report,
    )


def _member(ens, i: int) -> list[np.ndarray]:
    return [w[i : i + 1] for w in ens.params]


def _three_layer(p: dict, data, spec, ens, progress: Progress):
    """Each scale on its own horizon (one compiled GD program for all): escape
    times, loss curves, horizons and GD steps actually computed."""
    lr = p["three_layer_lr"]
    z_norm = float(np.linalg.norm(data.z))
    # one member at a time, as the plans below solve them: one compiled program
    act = spec.activation
    t_stars = [predicted_t_star(_member(ens, i), data.z, act)[0] for i in range(ens.size)]
    t_esc, curves, horizons, grads = [], [], [], 0
    for i in range(ens.size):
        steps = p["three_layer_steps"] or auto_steps([t_stars[i]], z_norm, lr)
        if steps is None:
            raise NumericalError(
                f"the depth-3 effective dynamics at eps = {ens.scales[i]:g} does not blow up; "
                "set three_layer_steps explicitly"
            )
        progress("depth 3: fast-forward + GD", i, ens.size)
        r, plan = _train(_member(ens, i), data, spec, lr, steps, p["handoff"])
        t_esc.append(float(r.escape_time[0]))
        curves.append((r.snapshot_times, r.snapshot_loss[0], float(r.escape_time[0])))
        horizons.append(steps)
        grads += steps - plan.members[0].handoff_step
        if r.diverged_step[0] >= 0:
            raise NumericalError(f"depth-3 GD diverged at eps = {ens.scales[i]:g}")
    progress("depth 3: fast-forward + GD", ens.size, ens.size)
    return np.array(t_esc), curves, horizons, grads, t_stars


def run(params: dict, out_dir: Path, progress: Progress) -> dict:
    p = params
    _check(p)
    eps = np.geomspace(p["eps_min"], p["eps_max"], p["n_eps"])

    # ---- depth 3: every scale on its own horizon -------------------------
    data3, spec3, ens3 = _prepare(p, 3, eps, p["three_layer_lr"])
    z_norm = float(np.linalg.norm(data3.z))
    t3, curves3, horizons3, grads3, t_stars3 = _three_layer(p, data3, spec3, ens3, progress)

    # ---- depth 2: all scales in one ensemble call --------------------------
    data2, spec2, ens2 = _prepare(p, 2, eps, p["two_layer_lr"])
    steps2 = p["two_layer_steps"] or math.ceil(
        p["margin"] * (math.log(1 / p["eps_min"]) + 3) / z_norm / p["two_layer_lr"]
    )
    r2, _ = _train(
        ens2.params,
        data2,
        spec2,
        p["two_layer_lr"],
        steps2,
        p["handoff"],
        lambda d: progress("depth 2: GD steps", d, steps2),
    )
    t2 = r2.escape_time
    curves2 = [(r2.snapshot_times, r2.snapshot_loss[i], float(t2[i])) for i in range(len(eps))]

    # ---- fits ---------------------------------------------------------------
    ok3, ok2 = np.isfinite(t3), np.isfinite(t2)
    slope3, icpt3 = (
        np.polyfit(np.log(eps[ok3]), np.log(t3[ok3]), 1) if ok3.sum() >= 2 else (np.nan, np.nan)
    )
    slope2, icpt2 = (
        np.polyfit(np.log10(eps[ok2]), t2[ok2], 1) if ok2.sum() >= 2 else (np.nan, np.nan)
    )
    inc2 = -float(slope2)
    pred2 = math.log(10) / z_norm

    depth4 = effective_depth4_prediction(eps, data3, p)
    slope4 = float("nan")
    if depth4 is not None:
        e4, t4 = (np.asarray(a, dtype=float) for a in depth4)
        ok4 = np.isfinite(t4) & (t4 > 0)
        if ok4.sum() >= 2:
            slope4 = float(np.polyfit(np.log(e4[ok4]), np.log(t4[ok4]), 1)[0])
        save_arrays(out_dir / "arrays" / "depth4_effective.npz", eps=e4, t_star=t4)

    save_arrays(
        out_dir / "arrays" / "escape_times.npz",
        eps=eps,
        three_layer_escape_time=t3,
        two_layer_escape_time=t2,
        three_layer_fit=np.array([slope3, icpt3]),
        two_layer_fit=np.array([slope2, icpt2]),
        z_norm=np.float64(z_norm),
    )
    k3 = max(len(c[0]) for c in curves3)  # each depth-3 scale has its own horizon: NaN-padded
    pad = np.full((len(eps), k3), np.nan)
    t3_grid, l3_grid = pad.copy(), pad.copy()
    for i, (tt, ll, _) in enumerate(curves3):
        t3_grid[i, : len(tt)], l3_grid[i, : len(ll)] = tt, ll
    save_arrays(
        out_dir / "arrays" / "loss_curves.npz",
        three_layer_times=t3_grid,
        three_layer_loss=l3_grid,
        two_layer_times=r2.snapshot_times,
        two_layer_loss=r2.snapshot_loss,
    )
    _plot_scaling(
        out_dir / "figures" / "escape_vs_eps.png",
        eps,
        t3,
        (slope3, icpt3),
        t2,
        (slope2, icpt2),
        pred2,
        depth4,
    )
    _plot_losses(out_dir / "figures" / "loss_curves.png", eps, curves3, curves2)

    head = {
        "eps_min": p["eps_min"],
        "eps_max": p["eps_max"],
        "n_eps": p["n_eps"],
        "z_norm": z_norm,
        "three_layer_slope": float(slope3),
        "three_layer_escape_time_at_eps_min": float(t3[0]),
        "three_layer_escape_time_at_eps_max": float(t3[-1]),
        "three_layer_escape_time_times_eps_mean": float(np.nanmean(t3 * eps)),
        "three_layer_t_star_times_eps_mean": float(
            np.mean([t * e for t, e in zip(t_stars3, eps) if t is not None])
        ),
        "three_layer_lr": p["three_layer_lr"],
        "three_layer_steps": int(max(horizons3)),
        "three_layer_gradient_evaluations": int(grads3),
        "three_layer_gradient_evaluations_plain_gd": int(sum(horizons3)),
        "three_layer_n_not_escaped": int((~ok3).sum()),
        "handoff": p["handoff"],
        "two_layer_increase_per_decade": inc2,
        "two_layer_predicted_increase_per_decade": pred2,
        "two_layer_increase_relative_error": inc2 / pred2 - 1.0,
        "two_layer_escape_time_at_eps_min": float(t2[0]),
        "two_layer_escape_time_at_eps_max": float(t2[-1]),
        "two_layer_lr": p["two_layer_lr"],
        "two_layer_steps": steps2,
        "two_layer_n_not_escaped": int((~ok2).sum()),
    }
    if depth4 is not None:
        head["four_layer_effective_slope"] = slope4
    return head


def _plot_scaling(path, eps, t3, fit3, t2, fit2, pred2, depth4) -> None:
    fig, axs = figures.subplots(1, 2, figsize=(10, 4))
    ax = axs[0]
    grid = np.geomspace(eps.min(), eps.max(), 50)
    ax.loglog(eps, t3, "o", color="C0", label="depth 3 (GD)")
    if np.isfinite(fit3[0]):
        ax.loglog(
            grid,
            np.exp(fit3[1]) * grid ** fit3[0],
            "-",
            color="C0",
            label=f"fit: slope {fit3[0]:.3f}",
        )
        ok = np.isfinite(t3)
        gm_e, gm_t = np.exp(np.mean(np.log(eps[ok]))), np.exp(np.mean(np.log(t3[ok])))
        ax.loglog(grid, gm_t * gm_e / grid, "--", color="0.5", lw=0.8, label="slope -1")
    ax.loglog(eps, t2, "s", color="C1", label="depth 2 (GD)")
    if depth4 is not None:
        e4, t4 = depth4
        ax.loglog(e4, t4, "^-", color="C2", label="depth 4 (effective T*)")
    ax.set_xlabel("init scale eps")
    ax.set_ylabel("escape time t (loss halved)")
    ax.legend(fontsize=8)
    ax = axs[1]
    ax.plot(np.log10(eps), t2, "s", color="C1", label="depth 2 (GD)")
    if np.isfinite(fit2[0]):
        xs = np.log10(grid)
        ax.plot(
            xs, fit2[0] * xs + fit2[1], "-", color="C1", label=f"fit: {-fit2[0]:.3f} per decade"
        )
        ok = np.isfinite(t2)
        x0, y0 = np.mean(np.log10(eps[ok])), np.mean(t2[ok])
        ax.plot(
            xs,
            y0 - pred2 * (xs - x0),
            "--",
            color="0.4",
            lw=0.9,
            label=f"ln(10)/|z| = {pred2:.3f} per decade",
        )
    ax.set_xlabel("log10 eps")
    ax.set_ylabel("escape time t")
    ax.legend(fontsize=8)
    figures.save(fig, path)


def _plot_losses(path, eps, curves3, curves2) -> None:
    """``curves``: per eps ``(times, loss, escape time)``."""
    fig, axs = figures.subplots(1, 2, figsize=(10, 3.8))
    for ax, curves, title in ((axs[0], curves3, "depth 3"), (axs[1], curves2, "depth 2")):
        for (t, loss, esc), e in zip(curves, eps):
            figures.loss_curve(ax, t[1:], loss[1:], label=f"eps {e:.2g}", escape=esc)
        ax.set_xscale("log")
        ax.set_title(title + " (fast-forward, then GD)", fontsize=9)
        ax.legend(fontsize=7)
    figures.save(fig, path)
