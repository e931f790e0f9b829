"""The figures of an effective run: growth, blow-up, energy ratio, drift, vs training."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from condensation.commands.prepare import optimizer_of
from condensation.effective.theory import energy_ratio, energy_ratio_limit
from condensation.models import member_label
from condensation.report import figures

if TYPE_CHECKING:
    from condensation.commands.effective import EffectiveRun


def plot_effective_run(run: EffectiveRun, s: dict, fig_dir: Path) -> None:
    """Write the figures of an effective run: growth (depth 2), norms toward the
    blow-up, the energy ratio (depth 3), invariant drift, and the comparison with
    the training (``compare_gd``).

    Args:
        run: the effective run.
        s: its summary.
        fig_dir: the existing directory to write into.
    """
    sols = [(i, sol) for i, sol in enumerate(run.solutions) if sol.steps][:8]
    if not sols:
        return
    z_norm = run.systems[0].z_norm
    label = [
        member_label(m["seed"], m["scale"], i, run.config.init.path)
        for i, m in enumerate(s["members"])
    ]
    if run.spec.depth == 2:
        fig, ax = figures.subplots(figsize=(6, 4))
        for i, sol in sols:
            ax.plot(sol.steps["t"], sol.steps["log_growth"], label=label[i])
        t = sols[0][1].steps["t"]
        ax.plot(t, z_norm * t, "k:", label=f"slope |z| = {z_norm:.3g}")
        ax.set_xlabel("time t")
        ax.set_ylabel("log(|theta| / |theta_0|)")
        ax.set_title("two layers: exponential growth, no finite-time blow-up", fontsize=9)
        ax.legend(fontsize=7)
        figures.save(fig, fig_dir / "growth.png")
        return
    blown = [(i, sol) for i, sol in sols if sol.blew_up]
    if blown:
        fig, axs = figures.subplots(1, 2, figsize=(10, 4))
        k = run.spec.depth - 1
        for i, sol in blown:
            st = sol.steps
            rem = sol.T_star - st["t"]
            ok = rem > sol.T_star * 1e-13
            axs[0].loglog(rem[ok], st["rho"][ok], label=label[i])
            axs[1].loglog(rem[ok][st["E"][ok] > 0], st["E"][ok][st["E"][ok] > 0])
        for ax, p, name in ((axs[0], 2 / (k - 1), "rho"), (axs[1], (k + 1) / (k - 1), "E")):
            x = np.array(ax.get_xlim())
            y0 = ax.get_lines()[0].get_ydata()[-1] if ax.get_lines() else 1.0
            x0 = ax.get_lines()[0].get_xdata()[-1] if ax.get_lines() else 1.0
            ax.loglog(x, y0 * (x / x0) ** (-p), "k:", label=f"slope -{p:g} (type I)")
            ax.set_xlabel("T* - t")
            ax.set_ylabel(name)
            ax.legend(fontsize=7)
        axs[0].set_title("norm growth toward the blow-up", fontsize=9)
        figures.save(fig, fig_dir / "norms_loglog.png")
    if run.spec.depth == 3:
        fig, ax = figures.subplots(figsize=(6, 4))
        for i, sol in sols:
            ax.plot(sol.steps["t"], energy_ratio(sol.steps), label=label[i])
        ax.axhline(energy_ratio_limit(z_norm), color="k", ls=":", label="|z| 3^(-3/2)")
        ax.set_xlabel("time t")
        ax.set_ylabel("E / rho^(3/2)")
        ax.set_title("non-decreasing, tends to its bound at blow-up", fontsize=9)
        ax.legend(fontsize=7)
        figures.save(fig, fig_dir / "energy_ratio.png")
    drifting = [(i, sol) for i, sol in sols if "law_drift" in sol.steps]  # spectral: built in
    if drifting:
        fig, ax = figures.subplots(figsize=(6, 4))
        for i, sol in drifting:
            ax.semilogy(sol.steps["t"], np.maximum(sol.steps["law_drift"], 1e-18), label=label[i])
        ax.set_xlabel("time t")
        ax.set_ylabel("relative drift of conservation laws")
        ax.legend(fontsize=7)
        figures.save(fig, fig_dir / "invariant_drift.png")
    if run.gd is not None:
        r = run.gd.result
        fig, axs = figures.subplots(1, 2, figsize=(10, 4))
        for i, sol in sols[:4]:
            rho_gd = sum(np.sum(w[i] ** 2, axis=(-2, -1)) for w in r.snapshots)
            (line,) = axs[0].semilogy(r.snapshot_times, rho_gd, label=f"trained, {label[i]}")
            axs[0].semilogy(
                sol.steps["t"], sol.steps["rho"], ls="--", color=line.get_color(), label="effective"
            )
            axs[1].plot(r.snapshot_times, r.snapshot_loss[i], color=line.get_color())
            if sol.blew_up:
                for ax in axs:
                    ax.axvline(sol.T_star, color=line.get_color(), ls=":", lw=0.8)
        axs[0].set_ylim(
            top=10 * max(np.max(sum(np.sum(w**2, axis=(-2, -1)) for w in r.snapshots)), 1)
        )
        axs[0].set_ylabel("rho = sum of squared weights")
        axs[1].set_yscale("log")
        axs[1].set_ylabel("GD loss")
        for ax in axs:
            ax.set_xlabel("time t")
        axs[0].legend(fontsize=7)
        opt = optimizer_of(run.config, run.data)
        title = f"{opt.name} (solid) vs effective (dashed); dotted: T*"
        if not opt.effective_is_theorem:
            title += f"\n(effective prediction is {opt.theory_reach.split(':')[0]} for {opt.name})"
        axs[0].set_title(title, fontsize=9)
        figures.save(fig, fig_dir / "compare_gd.png")
