"""The figures of the phase-diagram experiment (:mod:`condensation.experiments.phase_diagram`):
the regime map over the grid of init exponents and RD against width."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from condensation.core.regime import geo_mean
from condensation.report import figures

_LETTER = {"linear": "L", "condensed": "C", "critical": "c"}


def _grid(rows, p, key):
    """(x values, y values, Z[y, x]) of ``key`` over the grid's two axes."""
    if p["depth"] == 2:
        xs, ys, xk, yk = p["gammas"], p["gamma_primes"], "gamma", "gamma_prime"
    else:
        a, b = p["layer_axes"]
        xs, ys, xk, yk = p["exponents_a"], p["exponents_b"], f"g_layer{a}", f"g_layer{b}"
    z = np.full((len(ys), len(xs)), np.nan, dtype=object)
    for r in rows:
        z[ys.index(r[yk]), xs.index(r[xk])] = r[key]
    return xs, ys, z, xk, yk


def _edges(v):
    v = np.asarray(v, dtype=float)
    if v.size == 1:
        return np.array([v[0] - 0.5, v[0] + 0.5])
    mid = 0.5 * (v[1:] + v[:-1])
    return np.concatenate([[2 * v[0] - mid[0]], mid, [2 * v[-1] - mid[-1]]])


def plot_map(rows, p, path: Path) -> None:
    layers = [1] if p["depth"] == 2 else [1, 2, 3]
    fig, axs = figures.subplots(
        1, len(layers), figsize=(figures.FIG_WIDTH, 4.4), squeeze=False
    )
    for ax, k in zip(axs[0], layers):
        xs, ys, s, xk, yk = _grid(rows, p, f"rd_slope_layer{k}")
        _, _, reg, _, _ = _grid(rows, p, f"regime_layer{k}")
        vals = figures.drawable(s.astype(float))
        lim = max(float(np.nanmax(np.abs(vals))) if np.isfinite(vals).any() else 1.0, 0.2)
        mesh = ax.pcolormesh(_edges(xs), _edges(ys), vals, cmap="coolwarm", vmin=-lim, vmax=lim)
        fig.colorbar(mesh, ax=ax, label=f"S_{k} = d log RD_{k} / d log m")
        for i, y in enumerate(ys):
            for j, x in enumerate(xs):
                ax.text(x, y, _LETTER.get(reg[i, j], "x"), ha="center", va="center", fontsize=9)
        if p["depth"] == 2:
            # the theorems' boundaries are two rays from (1, 0): gamma = 1 for gamma' <= 0
            # (linear | condensed) and gamma' = gamma - 1 for gamma >= 1 (critical line)
            x_hi, y_lo = _edges(xs)[-1], _edges(ys)[0]
            ax.plot([1.0, 1.0], [min(y_lo, 0.0), 0.0], "k-", lw=1.5)
            ax.plot([1.0, max(x_hi, 1.0)], [0.0, max(x_hi, 1.0) - 1.0], "k-", lw=1.5)
            ax.set_xlim(_edges(xs)[0], x_hi)
            ax.set_ylim(y_lo, _edges(ys)[-1])
            for r in rows:
                if not r["agrees"]:
                    ax.plot(r["gamma"], r["gamma_prime"], "o", mfc="none", mec="k", ms=16)
            ax.set_title(f"depth 2, {p['activation']}: input layer (theorems' boundaries: "
                         "black rays from (1, 0))")  # fmt: skip
        else:
            ax.set_title(f"depth 3, {p['activation']}: layer {k}\n(derived, empirical)")
        ax.set_xlabel(xk.replace("_", " "))
        ax.set_ylabel(yk.replace("_", " "))
    figures.save(fig, path)


def plot_rd_lines(cells, results, rows, p, path: Path) -> None:
    """RD_1 vs width for up to six cells: the corners and the centre of the grid."""
    n = len(cells)
    pick = sorted({0, n - 1, n // 2, (n - 1) // 4, (3 * (n - 1)) // 4})[:6]
    fig, ax = figures.subplots(figsize=(figures.FIG_WIDTH, 4.4))
    for i in pick:
        rd = np.asarray(results[i]["rd_end"])[:, :, 0]  # (W, seeds)
        w = results[i]["widths"]
        gm = [geo_mean(rd[j]) for j in range(len(w))]
        r = rows[i]
        lab = (
            f"gamma={r['gamma']:g}, gamma'={r['gamma_prime']:g}"
            if p["depth"] == 2
            else ", ".join(f"g{k}={r[f'g_layer{k}']:g}" for k in (1, 2, 3))
        )
        ax.loglog(w, figures.drawable(np.asarray(gm)), "o-",
                  label=f"{lab}: S={r['rd_slope_layer1']:.2f}")  # fmt: skip
    ax.set_xlabel("width m")
    figures.value_ticks(ax, [w for i in pick for w in results[i]["widths"]])
    ax.set_ylabel("RD of the input layer")
    ax.legend(loc="center left", bbox_to_anchor=(1.02, 0.5), frameon=False)
    figures.save(fig, path)
