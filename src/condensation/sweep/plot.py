"""A metric over an axis from a sweep's table, every other axis accounted for.

The figure's roles (x, colour, replicates, panels, fixed) are those of
:func:`condensation.sweep.facets.layout`; its heading says them.  Each point is
the mean of the members that have a value of the metric; a member without one
(``escape_time`` of a member that did not escape within its horizon, any metric
of a failed or not-run cell) is counted, never dropped silently: a point that
lacks some of its members is drawn hollow, each panel says how many members
lack a value, and :attr:`SweepPlot.notes` (printed by the CLI) says it too.

Axes are logarithmic when asked (``logx`` / ``logy`` True), linear when refused
(False) and, by default, when every value is positive and they span a decade or
more.  With both axes logarithmic the legend gives each line's fitted log-log
slope (least squares over its points).
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import textwrap
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from condensation.errors import InputError
from condensation.report import figures
from condensation.sweep.facets import check_log, label, layout, ordered, value_of
from condensation.sweep.table import FAILED, NOT_RUN, read_table

ESCAPE_METRICS = ("escape_time", "escape_step")  # no value: did not escape in its horizon


@dataclass(frozen=True)
class Line:
    """One drawn line: its panel and colour, its points and the members behind them."""

    panel: str  # the panel's title ("" with one panel)
    hue: str | None  # the colour's value as the legend writes it
    x: tuple  # the points' x (numbers, or category positions)
    mean: tuple[float, ...]  # the mean over the members with a value (NaN: none has one)
    members: tuple[int, ...]  # members at each point
    missing: tuple[int, ...]  # of which without a value of the metric
    slope: float | None  # fitted log-log slope (both axes log, >= 2 points), else None


@dataclass(frozen=True)
class SweepPlot:
    """What :func:`plot_sweep` drew: the file, the lines, the axes' scales, the notes."""

    path: Path | None
    lines: tuple[Line, ...]
    panels: tuple[str, ...]
    xscale: str
    yscale: str
    missing: int  # members without a value of the metric
    notes: tuple[str, ...]  # one-line notes (the CLI prints them)


def _numbers(values) -> np.ndarray | None:
    try:
        return np.array([np.nan if v is None else float(v) for v in values])
    except (TypeError, ValueError):
        return None


def _log_by_default(v: np.ndarray) -> bool:
    v = v[np.isfinite(v)]
    return v.size > 1 and bool(np.all(v > 0)) and v.max() / v.min() >= 10


def _slope(x: np.ndarray, m: np.ndarray) -> float | None:
    ok = np.isfinite(x) & np.isfinite(m) & (x > 0) & (m > 0)
    if np.unique(x[ok]).size < 2:
        return None
    return float(np.polyfit(np.log(x[ok]), np.log(m[ok]), 1)[0])


def _check_columns(cols: list[str], x: str, y: str, hue: str | None) -> None:
    for opt, name in (("--plot", x), ("--y", y), ("--hue", hue)):
        if name is not None and name not in cols:
            raise InputError(opt, name, "not a column of results", f"use one of: {', '.join(cols)}")


def sweep_figure(
    rows: list[dict],
    x: str,
    y: str,
    hue: str | None = None,
    *,
    logx: bool | None = None,
    logy: bool | None = None,
):
    """The figure of ``y`` over ``x`` from a sweep's table rows (open: the caller
    saves or closes it).

    Args:
        rows: the table's rows (:func:`condensation.sweep.table.read_table`), whose
            columns before ``cell`` are the sweep's axes.
        x, y, hue: the axis, the metric and the colour axis.
        logx, logy: force a log (True) or linear (False) axis; None: log where the
            values are positive and span a decade or more.

    Returns:
        ``(figure, SweepPlot)`` (the :class:`SweepPlot`'s ``path`` is None).
    """
    cols = list(rows[0]) if rows else []
    _check_columns(cols, x, y, hue)
    axis_cols = cols[: cols.index("cell")] if "cell" in cols else [c for c in (x, hue) if c]
    values = {a: ordered(r[a] for r in rows) for a in axis_cols}
    for extra in (x, hue):
        if extra is not None and extra not in values:
            values[extra] = ordered(r[extra] for r in rows)
    lay = layout(values, x, y, hue)
    ys = _numbers([r[y] for r in rows])
    if ys is None:
        raise InputError("--y", y, "not a numeric column", "choose a numeric summary field")
    xs = _numbers([value_of(r[x]) for r in rows])
    categories = None if xs is not None else values[x]
    if categories is not None:
        if logx:
            check_log("--logx", x, categories)
        keys = [label(v) for v in categories]
        xs = np.array([keys.index(label(r[x])) for r in rows], float)
    elif logx:
        check_log("--logx", x, values[x])
    log_x = categories is None and (logx if logx is not None else _log_by_default(xs))
    notes: list[str] = []
    shown = ys  # what is drawn and averaged: without values <= 0 on a forced log axis
    if logy:
        bad = int(np.sum(np.isfinite(ys) & (ys <= 0)))
        if bad:
            notes.append(f"{bad} values of {y} <= 0 are not drawn on the log y axis")
            shown = np.where(ys > 0, ys, np.nan)
    log_y = logy if logy is not None else _log_by_default(shown)

    combos = list(itertools.product(*(values[a] for a in lay.panels)))
    titles = [", ".join(f"{a} = {label(v)}" for a, v in zip(lay.panels, c)) for c in combos]
    hues = values[hue] if hue else [None]
    colours = _colours(len(hues))
    ncols = min(len(combos), 3)
    nrows = math.ceil(len(combos) / ncols)
    heading = lay.heading({a: len(v) for a, v in values.items()})
    if not np.all(np.isfinite(ys)):
        heading.append(_hollow_text(y))
    heading = [w for h in heading for w in textwrap.wrap(h, 62 * ncols)]
    fig, axs = figures.subplots(
        nrows,
        ncols,
        figsize=(4.6 * ncols + 1.0, 3.4 * nrows + 0.35 * len(heading) + 0.3),
        sharex=True,
        sharey=True,
        squeeze=False,
    )
    lines: list[Line] = []
    total_missing = 0
    why = Counter(r.get("status") or "ok" for r, v in zip(rows, ys) if not np.isfinite(v))
    for k, (combo, title) in enumerate(zip(combos, titles)):
        ax = axs[k // ncols][k % ncols]
        want = [label(v) for v in combo]
        in_panel = [i for i, r in enumerate(rows) if [label(r[a]) for a in lay.panels] == want]
        missing_here = 0
        for j, (h, colour) in enumerate(zip(hues, colours)):
            sel = [i for i in in_panel if h is None or label(rows[i][hue]) == label(h)]
            if not sel:
                continue
            name = None if h is None else label(h)
            line = _draw_line(
                ax, xs[sel], ys[sel], shown[sel], colour, title, name, log_x and log_y, j
            )
            lines.append(line)
            missing_here += sum(line.missing)
        total_missing += missing_here
        ax.set_title(
            "\n".join(t for t in (title, _missing_text(missing_here, len(in_panel), y)) if t),
            fontsize=8,
        )
        if ax.get_legend_handles_labels()[1]:
            ax.legend(fontsize=7, title=hue, title_fontsize=7)
    for k in range(len(combos), nrows * ncols):  # the grid's unused places
        axs[k // ncols][k % ncols].set_visible(False)
    for ax in axs.flat:
        if log_x:
            ax.set_xscale("log")
        if log_y:
            ax.set_yscale("log")
    for ax in axs[-1]:
        ax.set_xlabel(x)
    for row in axs:
        row[0].set_ylabel(y)
    if categories is not None:
        axs[-1][0].set_xticks(range(len(categories)), [label(v) for v in categories], fontsize=7)
    if total_missing:
        notes.append(_missing_note(total_missing, len(rows), why, y, lines))
    fig.suptitle("\n".join(heading), fontsize=9)
    info = SweepPlot(
        None,
        tuple(lines),
        tuple(titles),
        "log" if log_x else "linear",
        "log" if log_y else "linear",
        total_missing,
        tuple(notes),
    )
    return fig, info


def _colours(n: int) -> list:
    import matplotlib

    cmap = matplotlib.colormaps["tab10" if n <= 10 else "viridis"]
    return [cmap(i if n <= 10 else i / max(n - 1, 1)) for i in range(n)]


def _draw_line(ax, gx, gy, shown, colour, panel, hue, loglog: bool, j: int) -> Line:
    """The members as dots, the mean per x of those drawn (``shown``) as a line, hollow
    where some are not; at the top of the panel, a triangle and the count where members
    lack a value of ``gy`` (``j``: the line's place among the colours, so that counts
    do not overlap)."""
    ux = np.unique(gx)
    n = [int(np.sum(gx == u)) for u in ux]
    have = [shown[(gx == u) & np.isfinite(shown)] for u in ux]
    mean = np.array([v.mean() if v.size else np.nan for v in have])
    missing = [int(np.sum((gx == u) & ~np.isfinite(gy))) for u in ux]
    slope = _slope(ux, mean) if loglog else None
    text = hue
    if slope is not None:
        text = f"{hue}: slope {slope:.2f}" if hue is not None else f"slope {slope:.2f}"
    ax.plot(ux, mean, "-", color=colour, label=text)
    full = np.array([v.size for v in have]) == np.array(n)
    ax.plot(ux[full], mean[full], "o", color=colour)
    ax.plot(ux[~full], mean[~full], "o", color=colour, markerfacecolor="none")
    ax.plot(gx, shown, ".", color=colour, alpha=0.4)
    from matplotlib.transforms import blended_transform_factory

    top = blended_transform_factory(ax.transData, ax.transAxes)  # x: data, y: panel
    for u, m in zip(ux, missing):
        if m:
            h = 0.96 - 0.07 * (j % 8)
            ax.plot([u], [h], "v", color=colour, transform=top)
            ax.annotate(
                str(m), (u, h), xycoords=top, xytext=(5, -3), textcoords="offset points",
                fontsize=7, color=colour,
            )  # fmt: skip
    return Line(
        panel, hue, tuple(ux.tolist()), tuple(mean.tolist()), tuple(n), tuple(missing), slope
    )


def _why(why: Counter, y: str) -> str:
    """``2 did not escape within train.steps, 1 failed``: the members without ``y`` by status."""
    ok = "did not escape within train.steps" if y in ESCAPE_METRICS else "ran but have none"
    words = {"ok": ok, FAILED: "in failed cells", NOT_RUN: "in cells not run"}
    order = sorted(why, key=lambda s: (s != "ok", s))
    return ", ".join(f"{why[s]} {words.get(s, s)}" for s in order)


def _missing_text(k: int, n: int, y: str) -> str:
    return f"{k} of {n} members without {y}" if k else ""


def _hollow_text(y: str) -> str:
    return f"\u25bc n at the top: n members without {y}; hollow point: mean of the others"


def _missing_note(k: int, n: int, why: Counter, y: str, lines: list[Line]) -> str:
    where = [
        f"{ln.panel + ', ' if ln.panel else ''}{ln.hue + ' ' if ln.hue else ''}"
        f"at {label(xv)}: {m}"
        for ln in lines
        for xv, m in zip(ln.x, ln.missing)
        if m
    ]
    shown = "; ".join(where[:6]) + ("; ..." if len(where) > 6 else "")
    return f"{k} of {n} members have no {y} ({_why(why, y)}); not averaged: {shown}"


def plot_sweep(
    out: Path,
    x: str,
    y: str,
    hue: str | None = None,
    *,
    logx: bool | None = None,
    logy: bool | None = None,
) -> SweepPlot:
    """``out/figures/<y>_vs_<x>.png`` from the sweep's table (:func:`sweep_figure`).

    Args:
        out: the sweep directory.
        x, y, hue: the ``--plot`` axis, the ``--y`` metric, the ``--hue`` axis.
        logx, logy: force a log (True) or linear (False) axis; None: automatic.

    Returns:
        The :class:`SweepPlot` (its ``path`` the file written).
    """
    out = Path(out)
    fig, info = sweep_figure(read_table(out).to_pylist(), x, y, hue, logx=logx, logy=logy)
    path = out / "figures" / f"{y}_vs_{x}.png".replace("/", "_")
    path.parent.mkdir(exist_ok=True)
    figures.save(fig, path)
    return dataclasses.replace(info, path=path)
