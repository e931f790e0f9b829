"""``escape-scaling``: GD escape time vs init scale eps, two layers vs three.

Each depth trains all its scales in one vmapped ensemble call.  Step counts
come from the expected escape time: ``log(1/eps)/|z|`` for depth 2, and
``C/eps`` for depth 3 with ``C`` measured by a short pilot run of the same
ensemble until the largest eps has escaped (unless ``three_layer_steps`` is given).

Depth 4: :func:`effective_depth4_prediction` gives the blow-up times of the
effective four-layer dynamics (``∝ eps^-2``), saved, drawn on the log-log panel
and reported as ``four_layer_effective_slope``.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from condensation.config import config_from_dict
from condensation.data import Dataset
from condensation.errors import InputError, NumericalError
from condensation.experiments import (
    Figure,
    Progress,
    data_section,
    require_eps_range,
    require_positive,
)
from condensation.report import figures
from condensation.runs.train import prepare
from condensation.store import save_arrays
from condensation.train import TrainResult, snapshot_steps, train

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
teacher data, every scale of one depth trained in one ensemble call; the escape
step is the first step at which the loss has halved.
"""

DATA = True  # accepts data.* (e.g. data.path: a user's own data set)
DEFAULTS = {
    "eps_min": 1e-4,
    "eps_max": 1e-2,
    "n_eps": 5,
    "seed": 0,
    "width": 50,  # every hidden layer
    "activation": "tanh",
    "data_seed": 0,
    "three_layer_lr": 0.2,  # plateau Hessian is O(eps): large steps are accurate there
    "three_layer_steps": 0,  # 0: margin x C/eps_min/lr, C from a pilot run (largest eps)
    "two_layer_lr": 0.01,  # GD growth rate ln(1 + lr|z|)/lr is within 0.3% of |z|
    "two_layer_steps": 0,  # 0: margin x (log(1/eps_min) + 3)/|z|/lr
    "margin": 1.3,
}
QUICK = {"eps_min": 1e-3, "n_eps": 3}
SECONDS = (40, 76)  # wall time of quick / default on one core (2026-12, measured)

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
        "GD loss curves for every eps (log time axis), three layers (left) and two "
        "layers (right); dashes mark the escapes.",
        ("z_norm", "three_layer_lr", "three_layer_steps", "two_layer_lr", "two_layer_steps"),
    ),
)


def effective_depth4_prediction(
    eps: np.ndarray, data: Dataset, params: dict
) -> tuple[np.ndarray, np.ndarray] | None:
    """Predicted escape times of a four-layer network: the blow-up time T* of its
    effective dynamics (full form, degree 3), for the same teacher data and init
    seed, every eps in one batched solve.  By homogeneity ``T* ∝ eps^-2``."""
    from condensation.effective import build_system, solve_batch

    _, spec, ens = _prepare(params, 4, eps, 1.0)
    systems = [
        build_system([w[i] for w in ens.params], data.z, activation=spec.activation)
        for i in range(ens.size)
    ]
    sols = solve_batch(systems)
    if not all(s.blew_up for s in sols):
        return None
    return np.asarray(eps, dtype=float), np.array([s.T_star for s in sols])


def _check(p: dict) -> None:
    require_eps_range(p)
    require_positive(p, ("three_layer_lr", "two_layer_lr", "margin", "width"))
    for k in ("three_layer_steps", "two_layer_steps"):
        if p[k] < 0:
            raise InputError(k, p[k], "must be >= 0 (0 = automatic)", f"give {k} >= 0")


def _prepare(p: dict, depth: int, eps: np.ndarray, lr: float):
    cfg = config_from_dict(
        {
            "data": data_section(p, {"dataset": "teacher", "seed": p["data_seed"]}),
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


def _train(params, data: Dataset, spec, lr: float, steps: int, report=None) -> TrainResult:
    return train(
        params,
        data.x,
        data.y,
        act=spec.activation.fn,
        lr=lr,
        steps=steps,
        snapshots=snapshot_steps(steps, 40, 120),
        track_final_stage=False,
        progress=report,
    )


def _three_layer_steps(p: dict, data, spec, ens, progress: Progress) -> tuple[int, float]:
    """Steps for depth 3 and the escape constant C = t_esc * eps of a pilot run.

    The pilot trains the whole ensemble (same shapes, so the compiled GD loop is
    reused by the main run) up to t = 2/eps_max, long enough for the member with
    the largest eps to escape (C is about 0.4 on the default data).
    """
    lr, eps_max = p["three_layer_lr"], float(ens.scales[-1])
    horizon = 2.0 / eps_max
    for _ in range(4):
        steps = math.ceil(horizon / lr)
        res = _train(
            ens.params, data, spec, lr, steps, lambda d, n=steps: progress("depth 3: pilot", d, n)
        )
        if res.escape_step[-1] >= 0:
            c = float(res.escape_time[-1]) * eps_max
            return math.ceil(p["margin"] * c / p["eps_min"] / lr), c
        horizon *= 4
    raise NumericalError(
        f"the depth-3 pilot run at eps = {eps_max:g} did not escape by t = {horizon / 4:g}; "
        "set three_layer_steps explicitly"
    )


def run(params: dict, out_dir: Path, progress: Progress) -> dict:
    p = params
    _check(p)
    eps = np.geomspace(p["eps_min"], p["eps_max"], p["n_eps"])

    # ---- depth 3: all scales in one ensemble call --------------------------
    data3, spec3, ens3 = _prepare(p, 3, eps, p["three_layer_lr"])
    z_norm = float(np.linalg.norm(data3.z))
    steps3, c_pilot = p["three_layer_steps"], float("nan")
    if steps3 == 0:
        steps3, c_pilot = _three_layer_steps(p, data3, spec3, ens3, progress)
    r3 = _train(
        ens3.params,
        data3,
        spec3,
        p["three_layer_lr"],
        steps3,
        lambda d: progress("depth 3: GD steps", d, steps3),
    )
    t3 = r3.escape_time

    # ---- depth 2 ------------------------------------------------------------
    data2, spec2, ens2 = _prepare(p, 2, eps, p["two_layer_lr"])
    steps2 = p["two_layer_steps"] or math.ceil(
        p["margin"] * (math.log(1 / p["eps_min"]) + 3) / z_norm / p["two_layer_lr"]
    )
    r2 = _train(
        ens2.params,
        data2,
        spec2,
        p["two_layer_lr"],
        steps2,
        lambda d: progress("depth 2: GD steps", d, steps2),
    )
    t2 = r2.escape_time

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
    save_arrays(
        out_dir / "arrays" / "loss_curves.npz",
        three_layer_times=r3.snapshot_times,
        three_layer_loss=r3.snapshot_loss,
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
    _plot_losses(out_dir / "figures" / "loss_curves.png", eps, r3, r2)

    head = {
        "eps_min": p["eps_min"],
        "eps_max": p["eps_max"],
        "n_eps": p["n_eps"],
        "z_norm": z_norm,
        "three_layer_slope": float(slope3),
        "three_layer_escape_time_at_eps_min": float(t3[0]),
        "three_layer_escape_time_at_eps_max": float(t3[-1]),
        "three_layer_escape_time_times_eps_mean": float(np.nanmean(t3 * eps)),
        "three_layer_pilot_escape_constant": c_pilot,
        "three_layer_lr": p["three_layer_lr"],
        "three_layer_steps": steps3,
        "three_layer_n_not_escaped": int((~ok3).sum()),
        "three_layer_n_diverged": int((r3.diverged_step >= 0).sum()),
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


def _plot_losses(path, eps, r3: TrainResult, r2: TrainResult) -> None:
    fig, axs = figures.subplots(1, 2, figsize=(10, 3.8))
    for ax, r, title in ((axs[0], r3, "depth 3"), (axs[1], r2, "depth 2")):
        t = r.snapshot_times
        for i, e in enumerate(eps):
            figures.loss_curve(
                ax, t[1:], r.snapshot_loss[i, 1:], label=f"eps {e:.2g}", escape=r.escape_time[i]
            )
        ax.set_xscale("log")
        ax.set_title(title, fontsize=9)
        ax.legend(fontsize=7)
    figures.save(fig, path)
