"""``condensation-three-layer``: the plateau, condensation during it, and the
final-stage entry just before the escape, on the default GD example."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from condensation.commands.train import member_summaries, run_training
from condensation.config.network import config_from_dict
from condensation.core.metrics import abs_cos_to, snapshot_metrics
from condensation.experiments import Figure, Progress, data_section
from condensation.report import figures
from condensation.store.rundir import save_arrays

NAME = "condensation-three-layer"
TITLE = "A three-layer network condenses during its loss plateau"
SECTION = "plateau"
STORY = """
A three-layer tanh network (widths 50/50) is trained by full-batch gradient
descent on the default teacher data from N(0, eps^2) weights. The loss stays
flat for a long time (the plateau, of length about C/eps), then drops. During
the plateau the first-layer weights b_j turn towards +-z = mean(y x): the
eigenvector-sorted cosine matrices go from noise to two opposite blocks, and
the middle layer W becomes close to rank one. The final-stage condition of
THEORY section 5 (s_j v_j > 0 for every neuron, sign-corrected columns of W
pairwise at most 90 degrees apart) is checked at every GD step; it is first
met close to the escape (the step at which the loss has halved), about 1% of
the escape time before it on the default example. After the escape the network
fits the rest of the target and part of the alignment is undone: compare the
numbers at the escape with the final ones, and the last heatmap columns.
"""


def DATA_DEFAULT(p: dict) -> dict:  # noqa: N802 (the protocol's name)
    """The teacher set of ``n`` points in ``d`` dimensions (data.* overrides it)."""
    return {"dataset": "teacher", "n": p["n"], "d": p["d"], "seed": p["data_seed"]}


DEFAULTS = {
    "scale": 1e-3,  # init eps
    "seed": 0,  # init seed
    "widths": [50, 50],
    "activation": "tanh",
    "lr": 0.05,
    "steps": 12000,
    "linear_snapshots": 400,  # equally spaced snapshots (plus 60 log-spaced)
    "data_seed": 0,
    "n": 100,
    "d": 5,
}
QUICK = {"scale": 3e-3, "steps": 4000, "linear_snapshots": 200}
SECONDS = (6, 23)  # quick: CPU s cold, one device (bench_reproduce 2026-12-05); default: earlier

FIGURES = (
    Figure(
        "figures/loss.png",
        "Loss vs time t = step x lr (log scale). Left: the whole run, with the plateau "
        "shaded; right: zoom around the escape. Dashed: escape (loss halved); dotted: "
        "first GD step in the final-stage set.",
        (
            "loss_initial",
            "loss_at_half_escape_over_initial",
            "escape_time",
            "final_stage_entry_time",
            "final_stage_entry_before_escape_relative",
            "loss_final",
        ),
    ),
    Figure(
        "figures/cosine_heatmaps.png",
        "Cosine similarity between the input weight vectors of the neurons, rows sorted "
        "by the leading eigenvector, at several times across the plateau and after it. "
        "Top: first layer (rows b_j of B); bottom: middle layer (rows of W). Red +1, blue -1.",
        (
            "n_clusters_at_escape",
            "w_sigma_ratio_at_escape",
            "n_clusters_final",
            "w_sigma_ratio_final",
        ),
    ),
    Figure(
        "figures/alignment.png",
        "Alignment of the first layer with z over time: median and minimum of "
        "|cos(b_j, z)|, the fraction above 0.95, and sigma2/sigma1 of W (rank one -> 0).",
        (
            "median_abs_cos_at_escape",
            "frac_abs_cos_above_0_95_at_escape",
            "min_abs_cos_at_escape",
            "median_abs_cos_final",
            "min_abs_cos_final",
        ),
    ),
)


def _config(p: dict):
    return config_from_dict(
        {
            "data": data_section(p, DATA_DEFAULT(p)),
            "model": {"depth": 3, "widths": p["widths"], "activation": p["activation"]},
            "init": {"scale": p["scale"], "seed": p["seed"]},
            "train": {
                "lr": p["lr"],
                "steps": p["steps"],
                "linear_snapshots": p["linear_snapshots"],
            },
        }
    )


def _nearest(t: np.ndarray, value: float) -> int:
    return int(np.argmin(np.abs(t - value)))


def run(params: dict, out_dir: Path, progress: Progress) -> dict:
    cfg = _config(params)
    steps = cfg.train.steps
    # every snapshot of every layer: the figures and trajectory.npz use them all
    run_ = run_training(cfg, progress=lambda done: progress("GD steps", done, steps), save="full")
    r, z = run_.result, run_.data.z
    m = member_summaries(run_)[0]
    t = r.snapshot_times
    loss = r.snapshot_loss[0]
    snaps = [w[:1] for w in r.snapshots]  # member 0
    met = {k: v[0] for k, v in snapshot_metrics(snaps, z).items()}
    cos = abs_cos_to(snaps[0][0], z)  # (K, m1)
    met["min_abs_cos"] = cos.min(axis=-1)
    t_esc = m["escape_time"]
    t_fs = m["final_stage_entry_time"]
    esc = t_esc if t_esc is not None else float("nan")
    fs = t_fs if t_fs is not None else float("nan")

    save_arrays(
        out_dir / "arrays" / "trajectory.npz",
        times=t,
        loss=loss,
        **{f"W{k + 1}": w[0] for k, w in enumerate(snaps)},
        escape_time=np.float64(esc),
        final_stage_entry_time=np.float64(fs),
        z=z,
    )
    save_arrays(out_dir / "arrays" / "metrics.npz", times=t, **met)

    esc_params = [np.asarray(w[0], dtype=float) for w in r.escape_params]
    cos_esc = abs_cos_to(esc_params[0], z)
    ref = esc if np.isfinite(esc) else t[-1]
    _plot_loss(out_dir / "figures" / "loss.png", t, loss, esc, fs)
    _plot_heatmaps(out_dir / "figures" / "cosine_heatmaps.png", t, snaps, ref)
    _plot_alignment(out_dir / "figures" / "alignment.png", t, met, esc, fs)

    return {
        "scale": cfg.scales[0],
        "lr": cfg.train.lr,
        "z_norm": float(np.linalg.norm(z)),
        "loss_initial": float(loss[0]),
        "loss_at_half_escape_over_initial": float(loss[_nearest(t, 0.5 * ref)] / loss[0]),
        "escape_time": t_esc,
        "final_stage_entry_time": t_fs,
        "final_stage_entry_before_escape_relative": (esc - fs) / esc,
        "escape_time_times_scale": esc * cfg.scales[0],
        "loss_final": float(loss[-1]),
        "median_abs_cos_at_escape": m["median_abs_cos"],
        "min_abs_cos_at_escape": float(cos_esc.min()) if t_esc is not None else None,
        "frac_abs_cos_above_0_95_at_escape": m["frac_abs_cos_above_0_95"],
        "n_clusters_at_escape": m["n_clusters"],
        "w_sigma_ratio_at_escape": m["w_sigma_ratio"],
        "median_abs_cos_final": float(met["median_abs_cos"][-1]),
        "min_abs_cos_final": float(met["min_abs_cos"][-1]),
        "frac_abs_cos_above_0_95_final": float(met["frac_abs_cos_above_0_95"][-1]),
        "n_clusters_final": int(met["n_clusters"][-1]),
        "w_sigma_ratio_final": float(met["w_sigma_ratio"][-1]),
    }


def _marks(ax, esc: float, fs: float) -> None:
    if np.isfinite(esc):
        ax.axvline(esc, ls="--", color="C3", lw=1, label=f"escape t = {esc:.4g}")
    if np.isfinite(fs):
        ax.axvline(fs, ls=":", color="k", lw=1.2, label=f"final-stage entry t = {fs:.4g}")


def _plot_loss(path: Path, t, loss, esc: float, fs: float) -> None:
    fig, axs = figures.subplots(1, 2, figsize=(10, 3.8))
    for ax in axs:
        figures.loss_curve(ax, t, loss, color="C0")
        _marks(ax, esc, fs)
    if np.isfinite(esc):
        axs[0].axvspan(0, esc, color="0.9", zorder=0, label="plateau")
        lo = min(0.9 * esc, fs if np.isfinite(fs) else esc)
        hi = min(1.1 * esc, t[-1])
        sel = (t >= lo) & (t <= hi)
        axs[1].set_xlim(lo, hi)
        if sel.any():
            axs[1].set_ylim(0.8 * loss[sel].min(), 1.25 * loss[sel].max())
        axs[1].set_title("around the escape", fontsize=9)
    axs[0].set_title("whole run", fontsize=9)
    if axs[0].get_legend_handles_labels()[0]:  # nothing to label when it never escaped
        axs[0].legend(fontsize=7, loc="lower left")
    figures.save(fig, path)


def _plot_heatmaps(path: Path, t, snaps, ref: float) -> None:
    wanted = [0.0, 0.5 * ref, 0.9 * ref, 0.98 * ref, ref, 1.2 * ref, t[-1]]
    idx = sorted({_nearest(t, w) for w in wanted if w <= t[-1]})
    fig, axs = figures.subplots(2, len(idx), figsize=(2.0 * len(idx), 4.4), squeeze=False)
    for row, (layer, label) in enumerate(((0, "B"), (1, "W"))):
        for col, j in enumerate(idx):
            frac = t[j] / ref if ref > 0 else float("nan")
            im = figures.cosine_heatmap(
                axs[row, col],
                snaps[layer][0, j],
                title=f"{label}, t={t[j]:.4g}\n({frac:.2f} x t_esc)",
            )
    fig.colorbar(im, ax=axs, shrink=0.7, pad=0.02)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    figures.plt.close(fig)


def _plot_alignment(path: Path, t, met: dict, esc: float, fs: float) -> None:
    fig, axs = figures.subplots(1, 2, figsize=(10, 3.6))
    ax = axs[0]
    ax.plot(t, met["median_abs_cos"], label="median |cos(b_j, z)|")
    ax.plot(t, met["min_abs_cos"], label="min |cos(b_j, z)|")
    ax.plot(t, met["frac_abs_cos_above_0_95"], label="fraction |cos| > 0.95")
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("time t")
    _marks(ax, esc, fs)
    ax.legend(fontsize=7, loc="center left")
    ax = axs[1]
    ax.semilogy(t, np.maximum(met["w_sigma_ratio"], 1e-16), color="C4", label="sigma2/sigma1 of W")
    ax.set_xlabel("time t")
    ax2 = ax.twinx()
    ax2.plot(t, met["n_clusters"], color="C2", lw=0.9, label="orientation clusters of B")
    ax2.set_ylabel("clusters (90% of neurons)", fontsize=8)
    _marks(ax, esc, fs)
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    ax.legend(h1 + h2, l1 + l2, fontsize=7, loc="center left")
    figures.save(fig, path)
