"""Plot primitives: each draws on the Axes it is given and returns the artists.

Figures are made with the Agg backend; nothing here computes results.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from condensation.metrics import cosine_matrix, eigen_order  # noqa: E402


def loss_curve(ax, times, loss, *, label=None, escape=None, final_stage=None, color=None):
    """Loss vs time (log y); optional vertical marks at escape and final-stage entry."""
    (line,) = ax.plot(times, loss, label=label, color=color)
    arts = [line]
    if escape is not None and np.isfinite(escape):
        arts.append(ax.axvline(escape, ls="--", color=line.get_color(), lw=0.8))
    if final_stage is not None and np.isfinite(final_stage):
        arts.append(ax.axvline(final_stage, ls=":", color="k", lw=0.8))
    ax.set_yscale("log")
    ax.set_xlabel("time t = step x lr")
    ax.set_ylabel("loss R")
    return arts


def cosine_heatmap(ax, rows, *, title=None):
    """Eigenvector-sorted cosine-similarity matrix of the rows of a weight matrix."""
    cos = cosine_matrix(np.asarray(rows))
    order = eigen_order(cos)
    im = ax.imshow(cos[np.ix_(order, order)], vmin=-1, vmax=1, cmap="RdBu_r")
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=9)
    return im


def save(fig, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def subplots(nrows=1, ncols=1, **kw):
    return plt.subplots(nrows, ncols, **kw)
