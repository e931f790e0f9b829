"""Plot primitives: each draws on the Axes it is given and returns the artists.

Figures are made with the Agg backend; nothing here computes results.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.text import Text  # noqa: E402
from matplotlib.ticker import NullLocator  # noqa: E402

from condensation.core.metrics import cosine_matrix, row_order  # noqa: E402


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


HEATMAP_ROWS = 600  # a heatmap shows at most this many neurons (more than its pixels)


def cosine_heatmap(ax, rows, *, title=None):
    """Eigenvector-sorted cosine-similarity matrix of the rows of a weight matrix.

    Of more than :data:`HEATMAP_ROWS` rows, that many are shown, evenly spaced by
    index (the neurons of a layer are exchangeable: their indices carry no order),
    sorted among themselves: a panel is a few hundred pixels wide, so the full
    matrix would be resampled to about that anyway, and sorting a sample costs
    ``O(HEATMAP_ROWS^2 d)`` where the full matrix costs ``O(m^2 d)`` and an
    eigensolver over it (width 4000: 0.5 s against about 5 s a panel)."""
    rows = np.asarray(rows)
    if rows.shape[0] > HEATMAP_ROWS:
        rows = rows[np.round(np.linspace(0, rows.shape[0] - 1, HEATMAP_ROWS)).astype(np.int64)]
    order = row_order(rows)
    cos = np.nan_to_num(cosine_matrix(rows[order]), nan=0.0, posinf=0.0, neginf=0.0)
    im = ax.imshow(cos, vmin=-1, vmax=1, cmap="RdBu_r")
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=9)
    return im


def value_ticks(ax, values, max_ticks: int = 6) -> None:
    """x ticks at ``values`` (e.g. the eps a sweep ran at; at most ``max_ticks``,
    spread over them), labelled compactly, without minor ticks: on a log axis that
    spans less than a few decades the default minor labels overlap."""
    v = np.unique(np.asarray(values, float)[np.isfinite(np.asarray(values, float))])
    if v.size == 0:
        return
    if v.size > max_ticks:
        v = v[np.unique(np.round(np.linspace(0, v.size - 1, max_ticks)).astype(int))]
    ax.set_xticks(v, [f"{x:.2g}" for x in v])
    ax.xaxis.set_minor_locator(NullLocator())


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


FIG_WIDTH = 10.0  # inches: every figure has this width, so the report shows all at one scale
DPI = 110  # FIG_WIDTH x DPI = 1100 pixels, the width the report displays them at
MIN_FONT_PT = 8.0  # no text below this (12 px at DPI 110); smaller sizes are raised to it


def finish(fig):
    """Make ``fig`` ready to write, in place, and return it: undrawable points left
    out (:func:`sanitize`), the width set to :data:`FIG_WIDTH` (the height kept),
    every text raised to at least :data:`MIN_FONT_PT`, then laid out."""
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        sanitize(fig)
        height = fig.get_size_inches()[1]
        fig.set_size_inches(FIG_WIDTH, height)
        for text in _texts(fig):
            if text.get_fontsize() < MIN_FONT_PT:
                text.set_fontsize(MIN_FONT_PT)
        for ax in fig.axes:
            for axis in (ax.xaxis, ax.yaxis):
                ticks = axis.get_major_ticks()  # the style minor ticks share
                if ticks and ticks[0].label1.get_fontsize() < MIN_FONT_PT:
                    axis.set_tick_params(which="both", labelsize=MIN_FONT_PT)
        fig.tight_layout()
    return fig


def _texts(fig):
    """Every text of ``fig`` but the tick labels (walked without building ticks,
    which is slow on log axes): figure texts (the suptitle among them), axes texts
    and titles, axis labels, offset texts, legends."""
    legends = list(fig.legends)
    yield from fig.texts
    for ax in fig.axes:
        yield from (ax.xaxis.label, ax.yaxis.label)
        yield from (ax.xaxis.get_offset_text(), ax.yaxis.get_offset_text())
        yield from (c for c in ax.get_children() if isinstance(c, Text))  # texts, titles
        if ax.get_legend() is not None:
            legends.append(ax.get_legend())
    for leg in legends:
        yield from leg.get_texts()
        yield leg.get_title()


def save(fig, path: Path) -> None:
    """Write ``fig`` (:func:`finish`, at :data:`DPI`) and close it."""
    finish(fig)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        fig.savefig(path, dpi=DPI)
    plt.close(fig)


def subplots(nrows=1, ncols=1, **kw):
    return plt.subplots(nrows, ncols, **kw)
