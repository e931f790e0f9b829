"""The figures of the ``staircase`` experiment (:mod:`condensation.experiments.staircase`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from condensation.report import figures

MARKERS = ("o", "s", "^", "D", "v")


def _panels(depths: list[int]):
    """One figure with a panel per depth (one empty panel where there is none):
    ``(fig, [(ax, depth), ...])``."""
    depths = depths or [0]
    fig, axs = figures.subplots(1, len(depths), figsize=(10, 3.8), squeeze=False)
    return fig, list(zip(axs[0], depths))


def _net_panels(nets: dict):
    """:func:`_panels` over the network depths that ran: ``(fig, [(ax, depth,
    result), ...])`` (no run: one empty panel, no entries)."""
    fig, panels = _panels(sorted(nets))
    return fig, [(ax, depth, nets[depth]) for ax, depth in panels if depth in nets]


def plot_matrix(path: Path, m: dict, s_values) -> None:
    """Half-time against eps per depth: closed form (lines), GD (markers)."""
    fig, panels = _panels([int(d) for d in np.unique(m["depth"])])
    for ax, depth in panels:
        sel = m["depth"] == depth
        for k, s in enumerate(s_values):
            row = sel & (m["mode"] == k + 1)
            if not row.any():
                continue
            order = np.argsort(m["eps"][row])
            e = m["eps"][row][order]
            ax.plot(e, m["closed_form"][row][order], color=f"C{k}", lw=1.2, label=f"s = {s:g}")
            ax.plot(e, m["measured"][row][order], MARKERS[k % 5], color=f"C{k}", ms=6, mfc="none")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("init scale eps")
        ax.set_ylabel("half-time")
        ax.set_title(f"depth {depth}: lines closed form, markers GD", fontsize=9)
        _legend(ax, "upper right")
    figures.save(fig, path)


def _legend(ax, loc: str) -> None:
    """A legend where something is labelled; else say that nothing ran."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8, loc=loc)
    else:
        ax.text(0.5, 0.5, "no run", transform=ax.transAxes, ha="center", fontsize=9)


def plot_losses(path: Path, nets: dict) -> None:
    """Loss against the time since the first escape, one curve per eps, per depth."""
    fig, panels = _net_panels(nets)
    for ax, depth, res in panels:
        for i, (eps, (t, loss)) in enumerate(zip(res["eps"], res["curves"])):
            esc = res["escape_time"][i]
            if not np.isfinite(esc):
                continue
            keep = t >= 0.5 * esc
            lw = 1.4 - 0.3 * i  # later (smaller eps) curves drawn thinner, on top
            ax.plot(t[keep] - esc, loss[keep], color=f"C{i}", lw=lw, label=f"eps {eps:g}")
        last = len(res["eps"]) - 1
        for st in res["stages"][last][1:] if last >= 0 else []:
            esc = res["escape_time"][last]
            a, b = st["drop_start_t"] - esc, st["drop_end_t"] - esc
            ax.axvspan(a, b, color="0.6", alpha=0.25, lw=0)
        ax.set_yscale("log")
        ax.set_xlabel("time since the first escape")
        ax.set_ylabel("loss")
        ax.set_title(f"depth {depth}: every eps after its first escape", fontsize=9)
        _legend(ax, "lower left")
    figures.save(fig, path)


def plot_durations(path: Path, nets: dict) -> None:
    """Each stage's plateau length against eps (log-log), per depth."""
    fig, panels = _net_panels(nets)
    for ax, depth, res in panels:
        lengths = res["plateau_lengths"]
        for j in range(lengths.shape[1]):
            col = lengths[:, j]
            ok = np.isfinite(col) & (col > 0)
            if ok.any():
                style = MARKERS[j % 5] + "-"
                ax.plot(res["eps"][ok], col[ok], style, color=f"C{j}", label=f"stage {j + 1}")
        ax.set_xscale("log")
        ax.set_yscale("log")
        figures.value_ticks(ax, res["eps"])
        ax.set_xlabel("init scale eps")
        ax.set_ylabel("plateau length")
        ax.set_title(f"depth {depth}: plateau of each stage", fontsize=9)
        _legend(ax, "best")
    figures.save(fig, path)
