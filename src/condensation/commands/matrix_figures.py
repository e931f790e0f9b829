"""The figures of a matrix run: loss and test error, singular values, alignment."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from condensation import matrix as mx
from condensation.commands.matrix_summary import N_REPORT
from condensation.commands.stages import shade_stages
from condensation.report import figures

if TYPE_CHECKING:
    from condensation.commands.matrix import MatrixRun


def plot_matrix_run(run: MatrixRun, s: dict, fig_dir: Path) -> None:
    """Write ``loss.png``, ``singular_values.png`` and ``alignment.png``.

    Args:
        run: the matrix run.
        s: its summary.
        fig_dir: the existing directory to write into.
    """
    r = run.result
    t = r.snapshot_times
    members = s["members"]
    show = range(min(run.ensemble.size, 6))
    labels = [f"seed {m['seed']}, eps {m['scale']:.1e}" for m in members]

    fig, axs = figures.subplots(1, 2, figsize=(10, 3.8))
    for i in show:
        (line,) = axs[0].plot(t, r.series["loss"][i], label=labels[i])
        if members[i]["T_star_effective"] is not None:
            axs[0].axvline(members[i]["T_star_effective"], color=line.get_color(), ls="--", lw=0.8)
        axs[1].plot(t, r.series["test_rmse"][i], color=line.get_color())
    axs[0].set_yscale("log")
    axs[0].set_ylabel("train loss 1/2 |P(X - M)|^2")
    n_stages = shade_stages(axs[0], t, r.series["loss"][0])
    axs[0].set_title(
        "dashed: effective T*" + (f"; grey: the drops of {labels[0]}" if n_stages else ""),
        fontsize=9,
    )
    if np.any(r.series["test_rmse"][list(show)] > 0):
        axs[1].set_yscale("log")
    else:  # every entry observed: no test entries, the RMSE is 0 throughout
        axs[1].set_title("every entry is observed: no test error", fontsize=9)
    axs[1].set_ylabel("test RMSE (unobserved entries)")
    if s.get("nuclear_norm_baseline"):
        axs[1].axhline(s["nuclear_norm_baseline"]["test_rmse"], color="k", ls=":", lw=1)
        axs[1].set_title("dotted: min nuclear norm", fontsize=9)
    for a in axs:
        a.set_xlabel("time t = step x lr")
    axs[0].legend(fontsize=7)
    figures.save(fig, fig_dir / "loss.png")

    fig, axs = figures.subplots(1, 2, figsize=(10, 3.8))
    k = min(N_REPORT, r.tracked_singular_values.shape[2])
    tr = np.abs(r.tracked_singular_values[0, :, :k])
    predicted = members[0].get("half_times_closed_form") or []
    for j in range(k):
        (line,) = axs[0].plot(t, np.maximum(tr[:, j], 1e-300), label=f"sigma_{j + 1}")
        if j < len(predicted) and predicted[j] is not None:  # THEORY §10's closed form
            axs[0].axvline(predicted[j], color=line.get_color(), ls="--", lw=0.8)
    if predicted:
        axs[0].set_xlabel("time t = step x lr (dashed: closed-form half-times)")
    axs[0].set_yscale("log")
    axs[0].set_ylabel("|u_k(T)^T X(t) v_k(T)|")
    axs[0].set_title(f"singular values in identity ({labels[0]})", fontsize=9)
    axs[0].legend(fontsize=6, ncol=2)
    for i in show:
        axs[1].plot(t, r.series["effective_rank"][i], label=labels[i])
    axs[1].axhline(mx.PLATEAU_RANK, color="k", ls=":", lw=0.8)
    axs[1].set_yscale("log")
    axs[1].set_ylabel("effective rank exp H(sigma/sum sigma)")
    for a in axs:
        if not a.get_xlabel():
            a.set_xlabel("time t = step x lr")
    figures.save(fig, fig_dir / "singular_values.png")

    fig, ax = figures.subplots(figsize=(5, 3.5))
    for i in show:
        ax.plot(t, r.series["median_abs_cos_v1"][i], label=labels[i])
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("time t = step x lr")
    ax.set_ylabel("median |cos(row of W1, v1)|")
    ax.legend(fontsize=7)
    figures.save(fig, fig_dir / "alignment.png")
