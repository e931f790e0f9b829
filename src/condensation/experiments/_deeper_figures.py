"""The figures of the deeper-networks experiment
(:mod:`condensation.experiments.deeper_networks`): escape time against eps per
depth, first-layer condensation, and the depth-L sign conditions."""

from __future__ import annotations

import numpy as np
from matplotlib.patches import Patch

from condensation.report import figures


def _dodge(x, j: int, n: int) -> np.ndarray:
    """``x`` (log axis) shifted sideways by a few percent for series ``j`` of ``n``."""
    return np.asarray(x) * 10.0 ** (0.025 * (j - (n - 1) / 2))


def plot_escape(path, per_depth, head) -> None:
    fig, axs = figures.subplots(1, len(per_depth), figsize=(figures.FIG_WIDTH, 4.0))
    axs = np.atleast_1d(axs)
    for ax, (depth, (a, _)) in zip(axs, per_depth.items()):
        key = f"d{depth}"
        n_seeds = a["wide_T_star"].shape[0]
        for j in range(n_seeds):
            ax.loglog(a["wide_eps"], a["wide_T_star"][j], "-", color=f"C{j}", lw=1,
                      label=f"effective T*, slope {head[f'{key}_effective_slope']:.4f}"
                      if j == 0 else None)  # fmt: skip
            ax.loglog(_dodge(a["gd_eps"][j], j, n_seeds), a["gd_escape_time"][j], "osD^v"[j % 5],
                      color=f"C{j}",
                      ms=8 - j % 3, mfc="none", mew=1.2,
                      label=f"GD escape, slope {head[f'{key}_gd_slope']:.3f}"
                      if j == 0 else None)  # fmt: skip
        ge, gt = a["gd_eps"].ravel(), a["gd_escape_time"].ravel()
        ok = np.isfinite(gt)
        if ok.any():
            e0, t0 = np.exp(np.mean(np.log(ge[ok]))), np.exp(np.mean(np.log(gt[ok])))
            xs = a["wide_eps"]
            ax.loglog(xs, t0 * (xs / e0) ** (-(depth - 2)), "--", color="0.5", lw=0.8,
                      label=f"slope -{depth - 2}")  # fmt: skip
        ax.set_title(f"depth {depth} (colour: seed)")
        ax.set_xlabel("eps")
        ax.set_ylabel("escape time")
        ax.legend(loc="upper right")
    figures.save(fig, path)


def plot_condensation(path, per_depth, head) -> None:
    fig, axs = figures.subplots(1, 2, figsize=(figures.FIG_WIDTH, 4.4))
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
    ax.set_ylabel("median |cos|\n(over GD members / trajectories)")
    ax.set_ylim(0, 1.55)  # the legend sits above the bars (|cos| <= 1)
    ax.set_yticks(np.linspace(0, 1, 6))
    ax.legend(loc="upper center", ncol=2, frameon=False)
    ax = axs[1]  # per GD member against its eps: condensation grows as eps shrinks
    n = len(per_depth)
    for j, (depth, (a, _)) in enumerate(per_depth.items()):
        eps = _dodge(a["gd_eps"].ravel(), j, n)
        ax.semilogx(eps, a["gd_median_abs_cos_at_escape"], "o", color=f"C{j}", mfc="none",
                    ms=7, label=f"depth {depth}, escape")  # fmt: skip
        ax.semilogx(eps, a["gd_median_abs_cos_at_plateau_exit"], "x", color=f"C{j}", ms=7,
                    label=f"depth {depth}, plateau exit")  # fmt: skip
    ax.set_xlabel("eps (GD; shifted a little per depth)")
    figures.value_ticks(ax, np.concatenate([np.ravel(a["gd_eps"]) for a, _ in per_depth.values()]))
    ax.set_ylabel("median |cos(W1 rows, z)|")
    lo = min(np.nanmin(np.concatenate([np.ravel(a[k]) for a, _ in per_depth.values()
                                       for k in ("gd_median_abs_cos_at_escape",
                                                 "gd_median_abs_cos_at_plateau_exit")])), 1.0)
    ax.set_ylim(lo - 0.05 * (1.0 - lo) - 0.01, 1.0 + 0.45 * (1.0 - lo) + 0.02)
    ax.legend(loc="upper center", ncol=2, frameon=False)
    figures.save(fig, path)


def plot_signs(path, per_depth) -> None:
    fig, axs = figures.subplots(
        1, 2, figsize=(figures.FIG_WIDTH, 4.2), gridspec_kw={"width_ratios": [1, 1.5]}
    )
    for j, (depth, (_, c)) in enumerate(per_depth.items()):
        if c["inside"].size:
            axs[0].semilogx(c["q"], c["inside"].mean(axis=0), ("-", "--", ":", "-.")[j % 4],
                            color=f"C{j}", lw=3.0 - 0.7 * (j % 3),
                            label=f"depth {depth}")  # fmt: skip
    axs[0].invert_xaxis()
    axs[0].set_xlabel("(T* - t) / T*")
    axs[0].set_ylabel("fraction inside the full set")
    axs[0].legend()
    ticks, names = [], []
    top = 1
    x = 0.0
    for depth, (_, c) in per_depth.items():
        for name, st in c["stats"].items():
            axs[1].bar(x - 0.2, st["entered"], 0.4, color="C0")
            axs[1].bar(x + 0.2, st["exits"], 0.4, color="C3")
            axs[1].text(x + 0.2, st["exits"], str(st["exits"]), ha="center", va="bottom")
            top = max(top, st["entered"], st["exits"])
            ticks.append(x)
            names.append(f"{name}\nL={depth}")
            x += 1.0
        x += 0.5
    axs[1].set_xticks(ticks, names)
    axs[1].set_ylim(0, 1.3 * top)
    axs[1].set_ylabel("trajectories")
    axs[1].legend(handles=[Patch(color="C0", label="entered"),
                           Patch(color="C3", label="left again (exits)")],
                  loc="upper center", ncol=2, frameon=False)  # fmt: skip
    figures.save(fig, path)
