"""The figures of a train run: loss, alignment with z, cosine heatmaps."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from condensation.commands.stages import shade_stages
from condensation.models import member_label
from condensation.report import figures
from condensation.training.network import TrainResult

if TYPE_CHECKING:
    from condensation.commands.train import TrainRun


def snapshot_positions(r: TrainResult, k: int) -> np.ndarray:
    """Where each snapshot is among layer ``k``'s stored snapshots.

    Args:
        r: the training's result.
        k: the layer (0-based).

    Returns:
        (K,) position of each snapshot in layer ``k``'s stored snapshots, -1 if not stored.
    """
    pos = np.full(len(r.snapshot_steps), -1)
    idx = r.snapshot_index[k] if r.snapshot_index is not None else None
    idx = np.arange(len(pos)) if idx is None else idx
    pos[idx] = np.arange(len(idx))
    return pos


def _heatmap_states(r: TrainResult, member: int, layers: list[int]) -> list[tuple[float, list]]:
    """``(t, [W_layer of member])`` nearest to 0, 50%, 90%, 100% of the escape time
    and the end, among the snapshots where every layer in ``layers`` is stored and
    the recorded escape and plateau-exit states."""
    t = r.snapshot_times
    pos = [snapshot_positions(r, k) for k in layers]
    both = np.flatnonzero(np.all([p >= 0 for p in pos], axis=0))
    cands = [
        (float(t[j]), [r.snapshots[k][member, p[j]] for k, p in zip(layers, pos)]) for j in both
    ]
    for step, params in (
        (r.escape_step, r.escape_params),
        (r.plateau_exit_step, r.plateau_exit_params),
    ):
        if step is not None and step[member] >= 0:
            cands.append((float(step[member] * r.lr), [params[k][member] for k in layers]))
    cand_t = np.array([c[0] for c in cands])
    t_esc = r.escape_time[member]
    ref = t_esc if np.isfinite(t_esc) else t[-1]
    want = [0.0, 0.5 * ref, 0.9 * ref, ref, t[-1]]
    chosen = {int(np.argmin(np.abs(cand_t - w))) for w in want}
    return sorted((cands[i] for i in chosen), key=lambda c: c[0])


def plot_train_run(run: TrainRun, met: dict, fig_dir: Path) -> None:
    """Write ``loss.png``, ``alignment.png`` and ``cosine_heatmaps.png``.

    Args:
        run: the train run.
        met: its per-snapshot metrics (:func:`condensation.commands.train.run_metrics`).
        fig_dir: the existing directory to write into.
    """
    r = run.result
    t = r.snapshot_times
    labels = [
        member_label(s, e, i, run.config.init.path)
        for i, (s, e) in enumerate(zip(run.ensemble.seeds, run.ensemble.scales))
    ]
    show = range(min(run.ensemble.size, 8))

    fig, ax = figures.subplots(figsize=(6, 4))
    for i in show:
        fs = r.final_stage_step[i] * r.lr if r.final_stage_step[i] >= 0 else None
        arts = figures.loss_curve(
            ax, t, r.snapshot_loss[i], label=labels[i], escape=r.escape_time[i], final_stage=fs
        )
        if np.isfinite(r.plateau_exit_time[i]):
            ax.axvline(r.plateau_exit_time[i], ls="-.", color=arts[0].get_color(), lw=0.8)
    n_stages = shade_stages(ax, t, r.snapshot_loss[0])
    ax.set_title(
        "loss (dash-dot: plateau exit, dashed: escape, dotted: final-stage entry)"
        + (f"\ngrey: the {n_stages} drop(s) of {labels[0]}" if n_stages else ""),
        fontsize=9,
    )
    ax.legend(fontsize=7)
    figures.save(fig, fig_dir / "loss.png")

    fig, axs = figures.subplots(1, 2, figsize=(9, 3.5))
    for i in show:
        (line,) = axs[0].plot(t, met["median_abs_cos"][i], label=labels[i])
        axs[1].plot(t, met["frac_abs_cos_above_0_95"][i], color=line.get_color())
        for a in axs:
            if np.isfinite(r.plateau_exit_time[i]):
                a.axvline(r.plateau_exit_time[i], ls="-.", color=line.get_color(), lw=0.8)
            if np.isfinite(r.escape_time[i]):
                a.axvline(r.escape_time[i], ls="--", color=line.get_color(), lw=0.8)
        axs[0].plot(
            [r.peak_median_abs_cos_step[i] * r.lr], [r.peak_median_abs_cos[i]], "v",
            color=line.get_color(), ms=5,
        )  # fmt: skip
    axs[0].set_title("dash-dot: plateau exit, dashed: escape, triangle: peak", fontsize=8)
    axs[0].set_ylabel("median |cos(b_j, z)|")
    axs[1].set_ylabel("fraction |cos(b_j, z)| > 0.95")
    for a in axs:
        a.set_xlabel("time t")
        a.set_ylim(0, 1.02)
    axs[0].legend(fontsize=7)
    figures.save(fig, fig_dir / "alignment.png")

    ok = np.flatnonzero(r.diverged_step < 0)
    shown = int(ok[0]) if ok.size else 0  # heatmaps of the first member that did not diverge
    layers = [0, 1] if run.spec.depth >= 3 else [0]
    states = _heatmap_states(r, shown, layers)
    fig, axs = figures.subplots(
        len(layers), len(states), figsize=(2.2 * len(states), 2.3 * len(layers)), squeeze=False
    )
    for row, layer in enumerate(layers):
        for col, (tj, ws) in enumerate(states):
            name = "B rows b_j" if layer == 0 else "W rows"  # input weights of each neuron
            figures.cosine_heatmap(axs[row, col], ws[row], title=f"{name}, t={tj:.4g}")
    figures.save(fig, fig_dir / "cosine_heatmaps.png")
