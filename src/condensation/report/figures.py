"""Plot primitives: each draws on the Axes it is given and returns the artists.

Figures are made with the Agg backend; nothing here computes results.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from condensation.core.metrics import cosine_matrix, eigen_order  # noqa: E402


def loss_curve(ax, times, loss, *, label=None, escape=None, final_stage=None, color=None):
    """Loss vs time (log y); optional vertical marks at escape and final-stage entry."""
    (line,) = ax.plot(drawable(times), drawable(loss), label=label, color=color)
    arts = [line]
    if escape is not None and np.isfinite(escape) and abs(escape) <= PLOT_LIMIT:
        arts.append(ax.axvline(escape, ls="--", color=line.get_color(), lw=0.8))
    if final_stage is not None and np.isfinite(final_stage) and abs(final_stage) <= PLOT_LIMIT:
        arts.append(ax.axvline(final_stage, ls=":", color="k", lw=0.8))
    ax.set_yscale("log")
    ax.set_xlabel("time t = step x lr")
    ax.set_ylabel("loss R")
    return arts


def cosine_heatmap(ax, rows, *, title=None):
    """Eigenvector-sorted cosine-similarity matrix of the rows of a weight matrix."""
    cos = np.nan_to_num(cosine_matrix(np.asarray(rows)), nan=0.0, posinf=0.0, neginf=0.0)
    order = eigen_order(cos)
    im = ax.imshow(cos[np.ix_(order, order)], vmin=-1, vmax=1, cmap="RdBu_r")
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=9)
    return im


PLOT_LIMIT = 1e200  # values beyond this magnitude (or non-finite) are not drawn


def drawable(values) -> np.ndarray:
    """``values`` as floats with NaN where a value is non-finite or beyond
    :data:`PLOT_LIMIT` in magnitude: such points are left out of a figure (a gap)
    instead of breaking the axis limits or a log-axis locator."""
    v = np.array(values, dtype=float, copy=True)
    with np.errstate(invalid="ignore"):
        v[~(np.abs(v) <= PLOT_LIMIT)] = np.nan
    return v


def sanitize(fig) -> None:
    """Leave out every undrawable point of every line and scatter of ``fig`` (see
    :func:`drawable`), then recompute the limits of the axes that changed; an axis
    with nothing drawable left is reset to linear scale so its locator has limits."""
    for ax in fig.axes:
        changed = False
        for line in ax.get_lines():
            x, y = np.asarray(line.get_xdata(), float), np.asarray(line.get_ydata(), float)
            xs, ys = drawable(x), drawable(y)
            if not (
                np.array_equal(x, xs, equal_nan=True) and np.array_equal(y, ys, equal_nan=True)
            ):
                line.set_data(xs, ys)
                changed = True
        for coll in ax.collections:
            off = np.asarray(coll.get_offsets(), float)
            if off.size and not np.all(np.abs(off) <= PLOT_LIMIT):
                coll.set_offsets(np.where(np.abs(off) <= PLOT_LIMIT, off, np.nan))
                changed = True
        if changed:
            ax.relim()
            ax.autoscale_view()
        for axis, get in (("y", ax.get_ylim), ("x", ax.get_xlim)):
            lo, hi = get()
            scale = ax.get_yscale() if axis == "y" else ax.get_xscale()
            if not (np.isfinite(lo) and np.isfinite(hi)) or (
                scale == "log" and not (lo > 0 and hi > 0 and hi / lo < 1e300)
            ):
                (ax.set_yscale if axis == "y" else ax.set_xscale)("linear")


def save(fig, path: Path) -> None:
    """Write ``fig`` (undrawable points left out, see :func:`sanitize`) and close it."""
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        sanitize(fig)
        fig.tight_layout()
        fig.savefig(path, dpi=110)
    plt.close(fig)


def subplots(nrows=1, ncols=1, **kw):
    return plt.subplots(nrows, ncols, **kw)
