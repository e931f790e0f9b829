"""``two-vs-three-layer``: exponential escape against finite-time blow-up."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from condensation.commands.train import prepare
from condensation.config.network import config_from_dict
from condensation.effective.blowup import solve_polar
from condensation.effective.system import build_system
from condensation.experiments import Figure, Progress, data_section, require_positive
from condensation.report import figures
from condensation.store.rundir import save_arrays
from condensation.training.network import snapshot_steps, train

NAME = "two-vs-three-layer"
TITLE = "Two layers grow exponentially; three layers blow up in finite time"
SECTION = "effective"
STORY = """
From the same data and initial scale, the effective dynamics of a two-layer
network is linear: its weights grow like exp(|z| t) and never blow up, so the
plateau lasts about log(1/eps)/|z|. The three-layer effective dynamics is
quadratic: the norm stays near its initial value for a time of order 1/eps and
then diverges at a finite T*, with rho ~ (T* - t)^-2 and E ~ (T* - t)^-3. The GD
loss of each network leaves its plateau where its effective dynamics says.
"""

DATA_DEFAULT = {"dataset": "teacher"}  # data.* overrides it (e.g. data.path)
DEFAULTS = {"eps": 1e-3, "width": 50, "seed": 0, "lr": 0.05}
QUICK: dict = {}
SECONDS = (10, 44)  # quick: CPU s cold, one device (bench_reproduce 2026-12-05); default: earlier

FIGURES = (
    Figure(
        "figures/growth.png",
        "Effective dynamics: log of the norm growth vs time, two layers (left: a straight "
        "line of slope |z|) and three layers (right: finite-time blow-up at T*, dotted).",
        (
            "z_norm",
            "two_layer_growth_rate",
            "two_layer_time_to_1e6_norm",
            "three_layer_T_star",
            "three_layer_T_star_rel_error",
        ),
    ),
    Figure(
        "figures/gd_losses.png",
        "GD loss of the two- and three-layer networks from the same initial scale, with "
        "the effective predictions marked: T* (three layers) and the time at which the "
        "effective output would reach the targets' size (two layers).",
        (
            "two_layer_gd_escape_time",
            "two_layer_effective_escape_estimate",
            "three_layer_gd_escape_time",
            "three_layer_gd_vs_T_star_rel_diff",
        ),
    ),
)


def run(params: dict, out_dir: Path, progress: Progress) -> dict:
    p = params
    require_positive(p, ("eps", "width", "lr"))
    out: dict = {}
    results = {}
    for depth in (2, 3):
        progress(f"depth {depth}", depth - 2, 2)
        cfg = config_from_dict(
            {
                "data": data_section(p, DATA_DEFAULT),
                "model": {"depth": depth, "widths": [p["width"]] * (depth - 1)},
                "init": {"scale": p["eps"], "seed": p["seed"]},
                "train": {"lr": p["lr"]},
            }
        )
        data, spec, ens = prepare(cfg)
        member = [w[0] for w in ens.params]
        # no per-step diagnostics: only T*, the growth and the time grid are used here, and
        # the solve is bit-for-bit the same without them (a smaller program to compile)
        system = build_system(member, data.z, activation=spec.activation)
        sol = solve_polar(system.problem(), diag=None)
        z_norm = float(np.linalg.norm(data.z))
        if depth == 2:
            # output ~ |a||c| e^(2|z|t) reaches rms(y): the effective escape estimate
            f0 = abs(float(member[1][0] @ (member[0] @ data.z)))
            t_pred = np.log(np.sqrt(np.mean(data.y**2)) / max(f0, 1e-300)) / (2 * z_norm)
            horizon = 2.0 * max(t_pred, sol.time_to_norm)
        else:
            t_pred = sol.T_star
            horizon = 1.4 * sol.T_star
        steps = int(np.ceil(horizon / p["lr"]))
        gd = train(
            ens.params,
            data.x,
            data.y,
            act=spec.activation.fn,
            lr=p["lr"],
            steps=steps,
            snapshots=snapshot_steps(steps, 30, 200),
            track_final_stage=False,
        )
        results[depth] = (sol, gd, t_pred)
        save_arrays(
            out_dir / "arrays" / f"depth{depth}.npz",
            t=sol.steps["t"],
            log_growth=sol.steps["log_growth"],
            gd_times=gd.snapshot_times,
            gd_loss=gd.snapshot_loss[0],
        )
        esc = float(gd.escape_time[0])
        if depth == 2:
            out.update(
                two_layer_growth_rate=sol.growth_rate,
                z_norm=z_norm,
                two_layer_time_to_1e6_norm=sol.time_to_norm,
                two_layer_gd_escape_time=esc,
                two_layer_effective_escape_estimate=t_pred,
            )
        else:
            out.update(
                three_layer_T_star=sol.T_star,
                three_layer_T_star_rel_error=sol.T_star_rel_error,
                three_layer_gd_escape_time=esc,
                three_layer_gd_vs_T_star_rel_diff=(esc - sol.T_star) / sol.T_star,
            )
    _plot(out_dir / "figures", results, out["z_norm"])
    progress("done", 2, 2)
    return out


def _plot(fig_dir, results, z_norm):
    fig, axs = figures.subplots(1, 2, figsize=(10, 4))
    sol2, _, _ = results[2]
    sol3, _, _ = results[3]
    st2, st3 = sol2.steps, sol3.steps
    axs[0].plot(st2["t"], st2["log_growth"], label="effective")
    axs[0].plot(st2["t"], z_norm * st2["t"], "k:", lw=0.8, label=f"slope |z| = {z_norm:.3g}")
    axs[0].set_title("two layers: linear, exponential growth", fontsize=9)
    ok = st3["log_growth"] < 40
    axs[1].plot(st3["t"][ok], st3["log_growth"][ok], color="C1", label="effective")
    axs[1].axvline(sol3.T_star, color="C1", ls=":", label=f"T* = {sol3.T_star:.4g}")
    axs[1].set_xlim(0, 1.1 * sol3.T_star)
    axs[1].set_title("three layers: quadratic, finite-time blow-up", fontsize=9)
    for ax in axs:
        ax.set_xlabel("time t")
        ax.set_ylabel("log(|theta| / |theta_0|)")
        ax.legend(fontsize=7)
    figures.save(fig, fig_dir / "growth.png")

    fig, axs = figures.subplots(1, 2, figsize=(10, 4))
    for ax, depth in zip(axs, (2, 3)):
        _, gd, t_pred = results[depth]
        figures.loss_curve(ax, gd.snapshot_times, gd.snapshot_loss[0], escape=gd.escape_time[0])
        ax.axvline(t_pred, color="k", ls=":", lw=1)
        ax.set_title(f"{depth} layers: GD loss (dashed: escape, dotted: effective)", fontsize=9)
    figures.save(fig, fig_dir / "gd_losses.png")
