"""The figures of the deeper-networks experiment
(:mod:`condensation.experiments.deeper_networks`): escape time against eps per
depth, first-layer condensation, and the depth-L sign conditions."""

from __future__ import annotations

import numpy as np
from matplotlib.patches import Patch

from condensation.report import figures


def plot_escape(path, per_depth, head) -> None:
    fig, axs = figures.subplots(1, len(per_depth), figsize=(4.6 * len(per_depth), 3.8))
    axs = np.atleast_1d(axs)
    for ax, (depth, (a, _)) in zip(axs, per_depth.items()):
        key = f"d{depth}"
        for j in range(a["wide_T_star"].shape[0]):
            ax.loglog(a["wide_eps"], a["wide_T_star"][j], "-", color=f"C{j}", lw=1,
                      label=f"effective T*, slope {head[f'{key}_effective_slope']:.4f}"
                      if j == 0 else None)  # fmt: skip
            ax.loglog(a["gd_eps"][j], a["gd_escape_time"][j], "o", color=f"C{j}", ms=4,
                      label=f"GD escape, slope {head[f'{key}_gd_slope']:.3f}"
                      if j == 0 else None)  # fmt: skip
        ge, gt = a["gd_eps"].ravel(), a["gd_escape_time"].ravel()
        ok = np.isfinite(gt)
        if ok.any():
            e0, t0 = np.exp(np.mean(np.log(ge[ok]))), np.exp(np.mean(np.log(gt[ok])))
            xs = a["wide_eps"]
            ax.loglog(xs, t0 * (xs / e0) ** (-(depth - 2)), "--", color="0.5", lw=0.8,
                      label=f"slope -{depth - 2}")  # fmt: skip
        ax.set_title(f"depth {depth}", fontsize=9)
        ax.set_xlabel("eps")
        ax.set_ylabel("escape time")
        ax.legend(fontsize=7)
    figures.save(fig, path)


def plot_condensation(path, per_depth, head) -> None:
    fig, axs = figures.subplots(1, 2, figsize=(12, 3.8))
    ax = axs[0]
    labels = ("GD plateau exit", "GD escape", "GD peak", "GD top dir. (escape)",
              "effective, last step")  # fmt: skip
    names = ("gd_median_abs_cos_at_plateau_exit", "gd_median_abs_cos_at_escape",
             "gd_peak_median_abs_cos", "gd_top_direction_alignment_at_escape",
             "effective_median_abs_cos_final")  # fmt: skip
    width = 0.8 / len(names)
    for j, (lab, name) in enumerate(zip(labels, names)):
        vals = [head[f"d{d}_{name}"] for d in per_depth]
        xs = np.arange(len(per_depth)) + (j - (len(names) - 1) / 2) * width
        ax.bar(xs, vals, width, label=lab, color=f"C{j}")
    ax.set_xticks(np.arange(len(per_depth)), [f"depth {d}" for d in per_depth])
    ax.set_ylabel("median |cos| (over GD members / trajectories)")
    ax.set_ylim(0, 1.05)
    ax.legend(fontsize=7, loc="lower right")
    ax = axs[1]  # per GD member against its eps: condensation grows as eps shrinks
    for j, (depth, (a, _)) in enumerate(per_depth.items()):
        eps = a["gd_eps"].ravel()
        ax.semilogx(eps, a["gd_median_abs_cos_at_escape"], "o", color=f"C{j}",
                    label=f"depth {depth}, escape")  # fmt: skip
        ax.semilogx(eps, a["gd_median_abs_cos_at_plateau_exit"], "x", color=f"C{j}",
                    label=f"depth {depth}, plateau exit")  # fmt: skip
    ax.set_xlabel("eps (GD)")
    ax.set_ylabel("median |cos(W1 rows, z)|")
    ax.legend(fontsize=7)
    figures.save(fig, path)


def plot_signs(path, per_depth) -> None:
    fig, axs = figures.subplots(1, 2, figsize=(11, 3.8))
    for j, (depth, (_, c)) in enumerate(per_depth.items()):
        if c["inside"].size:
            axs[0].semilogx(c["q"], c["inside"].mean(axis=0), "-", color=f"C{j}",
                            label=f"depth {depth}")  # fmt: skip
    axs[0].invert_xaxis()
    axs[0].set_xlabel("(T* - t) / T*")
    axs[0].set_ylabel("fraction inside the full set")
    axs[0].legend(fontsize=7)
    ticks, names = [], []
    x = 0.0
    for depth, (_, c) in per_depth.items():
        for name, st in c["stats"].items():
            axs[1].bar(x - 0.2, st["entered"], 0.4, color="C0")
            axs[1].bar(x + 0.2, st["exits"], 0.4, color="C3")
            axs[1].text(x + 0.2, st["exits"], str(st["exits"]), ha="center", va="bottom",
                        fontsize=6)  # fmt: skip
            ticks.append(x)
            names.append(f"L{depth} {name}")
            x += 1.0
        x += 0.5
    axs[1].set_xticks(ticks, names, rotation=60, fontsize=6)
    axs[1].legend(handles=[Patch(color="C0", label="entered"),
                           Patch(color="C3", label="left again (exits)")], fontsize=7)  # fmt: skip
    figures.save(fig, path)
