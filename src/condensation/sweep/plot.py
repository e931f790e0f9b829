"""A metric over an axis from a sweep's table (log axes where values span decades)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from condensation.errors import InputError
from condensation.report import figures
from condensation.sweep.table import read_table


def _numbers(values) -> np.ndarray | None:
    try:
        return np.array([np.nan if v is None else float(v) for v in values])
    except (TypeError, ValueError):
        return None


def _spans_decades(v: np.ndarray) -> bool:
    v = v[np.isfinite(v)]
    return v.size > 1 and np.all(v > 0) and v.max() / v.min() >= 100


def plot_sweep(out: Path, x: str, y: str, hue: str | None = None) -> Path:
    """``out/figures/<y>_vs_<x>.png``: mean of ``y`` per ``x`` (and hue), members as dots."""
    t = read_table(out).to_pylist()
    cols = list(t[0]) if t else []
    for opt, name in (("--plot", x), ("--y", y), ("--hue", hue)):
        if name is not None and name not in cols:
            raise InputError(opt, name, "not a column of results", f"use one of: {', '.join(cols)}")
    xs = _numbers([r[x] for r in t])
    ys = _numbers([r[y] for r in t])
    if ys is None:
        raise InputError("--y", y, "not a numeric column", "choose a numeric summary field")
    groups = sorted({json.dumps(r[hue]) for r in t}) if hue else ["null"]
    fig, ax = figures.subplots(figsize=(6, 4))
    labels = sorted({r[x] for r in t}, key=str) if xs is None else None
    for g in groups:
        sel = [i for i, r in enumerate(t) if not hue or json.dumps(r[hue]) == g]
        gx = xs[sel] if xs is not None else np.array([labels.index(t[i][x]) for i in sel], float)
        gy = ys[sel]
        ux = np.unique(gx)
        means = [
            np.nanmean(gy[gx == u]) if np.any(np.isfinite(gy[gx == u])) else np.nan for u in ux
        ]
        (line,) = ax.plot(ux, means, marker="o", label=f"{hue} = {json.loads(g)}" if hue else y)
        ax.plot(gx, gy, ".", color=line.get_color(), alpha=0.4)
    if xs is not None and _spans_decades(xs):
        ax.set_xscale("log")
    if _spans_decades(ys):
        ax.set_yscale("log")
    if labels is not None:
        ax.set_xticks(range(len(labels)), [str(v) for v in labels], fontsize=7)
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    if hue:
        ax.legend(fontsize=7)
    ax.set_title(f"{y} over {x} (line: mean over members)", fontsize=9)
    path = out / "figures" / f"{y}_vs_{x}.png".replace("/", "_")
    path.parent.mkdir(exist_ok=True)
    figures.save(fig, path)
    return path
