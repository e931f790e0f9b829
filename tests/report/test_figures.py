"""The report's figures are readable: one width, no tiny text, no hidden series.

Each figure is drawn by its experiment's own plot function from small synthetic
arrays shaped like the real ones (including the hard cases the real runs produce:
SGD at full batch is GD, so their curves coincide; every cell of the scalar map
blows up; the GD violation counts are all zero), captured before it is written,
and checked:

- its width is ``figures.FIG_WIDTH`` (so every figure is shown at the same scale);
- every text (titles, labels, ticks, legends, annotations) is at least
  ``figures.MIN_FONT_PT`` points;
- every data series (line, marker set, bar set, histogram, scatter) with finite
  data shows at least ``MIN_OWN_PIXELS`` pixels of its own: the figure is rendered
  at the report's resolution with each series painted in a colour of its own
  (texts, ticks and colour maps hidden), so a series drawn exactly under a later
  one, or outside the axis limits, counts (almost) no pixels;
- no legend hides more than a sliver of any series;
- every colour map has a colour scale (a colour bar or a legend) and more than
  one colour.
"""

from __future__ import annotations

from types import SimpleNamespace

import matplotlib
import numpy as np
import pytest
from matplotlib.collections import Collection, PathCollection
from matplotlib.container import BarContainer
from matplotlib.image import AxesImage
from matplotlib.patches import Polygon
from matplotlib.text import Text
from matplotlib.ticker import NullLocator

from condensation.experiments import _deeper_figures, _phase_figures, _staircase_figures
from condensation.experiments import blowup_census as bc
from condensation.experiments import final_stage_necessity as fsn
from condensation.experiments import matrix_completion as mc
from condensation.experiments import optimizers as opt
from condensation.report import figures

CHECK_DPI = figures.DPI  # the pixel checks see the figure as written
MIN_OWN_PIXELS = 10  # a series showing fewer pixels of its own is hidden
LEGEND_COVER_MAX = 0.05  # the largest share of a series' pixels a legend may cover


@pytest.fixture
def captured(monkeypatch):
    """Figures passed to ``figures.save``, finished (width, fonts, layout), not written."""
    out = []

    def keep(fig, path):
        figures.finish(fig)
        out.append((getattr(path, "name", str(path)), fig))

    monkeypatch.setattr(figures, "save", keep)
    yield out
    for _, fig in out:
        matplotlib.pyplot.close(fig)


def _series_of(ax):
    return [s for s in _series(ax.figure) if s[2] is ax]


def _series(fig):
    """(name, artists, axes) of every data series of ``fig`` with finite data."""
    out = []
    for i, ax in enumerate(fig.axes):
        for j, line in enumerate(ax.get_lines()):
            if line.get_transform() != ax.transData or not line.get_visible():
                continue  # axvline / axhline: marks, not series
            x = np.asarray(line.get_xdata(), float)
            y = np.asarray(line.get_ydata(), float)
            if np.isfinite(x + y).any():
                out.append((f"axes {i} line {j} {line.get_label()!r}", [line], ax))
        for j, cont in enumerate(ax.containers):
            if isinstance(cont, BarContainer):
                heights = [abs(p.get_height()) for p in cont.patches]
                if np.nansum(heights) > 0:
                    out.append((f"axes {i} bars {j} {cont.get_label()!r}", list(cont.patches), ax))
        for j, p in enumerate(ax.patches):
            if isinstance(p, Polygon) and p.get_visible():  # step histograms
                out.append((f"axes {i} polygon {j} {p.get_label()!r}", [p], ax))
        for j, coll in enumerate(ax.collections):
            if isinstance(coll, PathCollection) and len(coll.get_offsets()):
                out.append((f"axes {i} scatter {j} {coll.get_label()!r}", [coll], ax))
    return out


_LEVELS = (30, 90, 150, 210)
_PALETTE = [(r, g, b) for r in _LEVELS for g in _LEVELS for b in _LEVELS if not r == g == b]
COLOUR_TOLERANCE = 20  # a pixel this close (each channel) to a series' colour is the series'
# (markers are antialiased even when asked not to be: their edges blend with the background)


_LEVEL_OF = np.full(256, -1)  # channel value -> index of the level it is near, or -1
for _i, _v in enumerate(_LEVELS):
    _LEVEL_OF[_v - COLOUR_TOLERANCE : _v + COLOUR_TOLERANCE + 1] = _i
_CELL = [16 * _LEVELS.index(r) + 4 * _LEVELS.index(g) + _LEVELS.index(b) for r, g, b in _PALETTE]


def _colour(k: int) -> tuple[float, float, float]:
    """A colour of its own for series ``k`` (at least 60 apart in some channel)."""
    return tuple(v / 255 for v in _PALETTE[k])


def _pixel_counts(fig, with_legends: bool) -> dict[str, int]:
    """Pixels of each series' own colour with every series painted uniquely."""
    series = _series(fig)
    assert len(series) <= len(_PALETTE), "more series than distinct colours"
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):  # no ticks: quicker, and they are not data
            axis.set_major_locator(NullLocator())
            axis.set_minor_locator(NullLocator())
    for t in fig.findobj(Text):
        t.set_visible(False)
    for ax in fig.axes:
        for art in [*ax.images, *ax.collections]:
            if not isinstance(art, PathCollection):
                art.set_visible(False)
        leg = ax.get_legend()
        if leg is not None:
            leg.set_visible(with_legends)
            for t in leg.get_texts():
                t.set_visible(False)
    for k, (_, arts, _) in enumerate(series):
        c = _colour(k)
        for a in arts:
            a.set_alpha(1.0)
            a.set_antialiased(False)
            if hasattr(a, "set_markerfacecolor"):
                a.set_color(c)
                if a.get_markerfacecolor() != "none":
                    a.set_markerfacecolor(c)
                a.set_markeredgecolor(c)
            elif isinstance(a, Collection):
                a.set_facecolor(c)
                a.set_edgecolor(c)
            else:
                if a.get_fill():
                    a.set_facecolor(c)
                a.set_edgecolor(c)
    fig.set_dpi(CHECK_DPI)
    fig.canvas.draw()
    img = np.asarray(fig.canvas.buffer_rgba())[..., :3]
    level = _LEVEL_OF[img]  # (H, W, 3): index of the palette level of each channel, or -1
    ok = np.all(level >= 0, axis=-1)
    code = level[ok] @ np.array([16, 4, 1])  # the palette cell of each matching pixel
    counts = np.bincount(code, minlength=64)
    return {name: int(counts[_CELL[k]]) for k, (name, _, _) in enumerate(series)}


def _mappables(ax):
    """The colour-mapped artists of ``ax`` (images, meshes, filled contours)."""
    return [*ax.images, *(c for c in ax.collections if c.get_array() is not None)]


def _has_colorbar(m) -> bool:
    return getattr(m, "colorbar", None) is not None


def figure_problems(name: str, fig) -> list[str]:
    """Everything a reader of the report would trip over in ``fig``."""
    bad = []
    width = fig.get_size_inches()[0]
    if abs(width - figures.FIG_WIDTH) > 1e-9:
        bad.append(f"{name}: width {width:g} in, not {figures.FIG_WIDTH:g}")
    for t in fig.findobj(Text):
        if t.get_visible() and t.get_text().strip() and t.get_fontsize() < figures.MIN_FONT_PT:
            bad.append(f"{name}: text {t.get_text()!r} at {t.get_fontsize():g} pt")
    bars = {m.colorbar.ax for ax in fig.axes for m in _mappables(ax) if _has_colorbar(m)}
    for ax in (a for a in fig.axes if a not in bars):
        for m in _mappables(ax):
            if isinstance(m, PathCollection) or not m.get_visible():
                continue
            data = np.ma.masked_invalid(np.ma.asarray(m.get_array(), float)).compressed()
            if not _has_colorbar(m) and ax.get_legend() is None:
                bad.append(f"{name}: a colour map without a colour bar or legend")
            if isinstance(m, AxesImage | matplotlib.collections.QuadMesh) and (
                np.unique(data).size < 2
            ):
                bad.append(f"{name}: a colour map of a single colour")
    bare = _pixel_counts(fig, with_legends=False)
    for s, n in bare.items():
        if n < MIN_OWN_PIXELS:
            bad.append(f"{name}: series {s} is hidden ({n} pixels of its own)")
    has_series = {ax for ax in fig.axes if _series_of(ax)}
    if not any(ax.get_legend() is not None for ax in has_series):
        return bad  # every legend sits in an axes of its own: it covers nothing
    covered = _pixel_counts(fig, with_legends=True)
    for s, n in bare.items():
        if n >= MIN_OWN_PIXELS and covered[s] < (1 - LEGEND_COVER_MAX) * n:
            bad.append(f"{name}: the legend covers {1 - covered[s] / n:.0%} of series {s}")
    return bad


# ---- synthetic inputs, shaped like the real ones ----------------------------------


def _loss_curve(t_escape, times):
    return 0.2 / (1.0 + np.exp((times - t_escape) / (0.02 * t_escape))) + 0.015


def draw_optimizers(tmp_path):
    eps = np.geomspace(1e-4, 1e-2, 5)
    labels = ["gd", "sgd_b64", "sgd_b16", "sgd_b4", "momentum", "adam"]
    base = 0.9 / eps
    # sgd at full batch (b64 = n) is gd: the same numbers
    factors = [1.0, 1.0, 1.0, 1.02, 0.1, 1e-3]
    t_esc = np.array([f * base for f in factors])
    cos = np.array([np.full(eps.size, 0.9 - 0.01 * min(j, 3)) for j in range(6)])
    cos[1] = cos[0]
    slopes = {lab: -1.0 for lab in labels}
    opt.plot_escape(tmp_path / "escape.png", eps, labels, t_esc, cos, slopes)
    curves = {}
    for lab, f in zip(labels, factors):
        lr = 1e-3 if lab == "adam" else 0.5
        steps = np.unique(np.geomspace(1, 4 * 900 * f / lr, 60).astype(int))
        times = steps * lr
        curves[lab] = SimpleNamespace(
            snapshot_times=np.concatenate([[0.0], times]),
            snapshot_loss=np.concatenate([[0.2], _loss_curve(900 * f, times)])[None],
            escape_time=np.array([900 * f]),
        )
    opt.plot_losses(
        tmp_path / "loss.png", curves, 1e-3, {lab: 1e-3 if lab == "adam" else 0.5 for lab in labels}
    )


def draw_blowup_census(tmp_path):
    fams = bc.FAMILIES
    table = [{"n": 60, "n_blow_up": 60 - k, "n_certified": 40 - 5 * k,
              "n_blow_up_not_certified": 20 + 4 * k} for k in range(len(fams))]  # fmt: skip
    bc.plot_census(tmp_path / "census.png", table)
    g = np.linspace(-2, 2, 9) + 4 / 3 / 8
    aa, ww = np.meshgrid(g, g, indexing="xy")
    blew = np.ones(aa.shape, bool)  # every grid cell blows up, as derived
    cert = np.abs(ww) < np.minimum(np.abs(aa), 1.0)
    t_star = 1.0 / (np.abs(aa + ww) + 0.05)
    a_line = np.linspace(-2, 2, 9)
    line_t = np.full(a_line.shape, np.inf)  # equilibrium inside |a0| < c0
    far = np.abs(a_line) >= 1.0
    line_t[far] = 2.0 / np.abs(a_line[far])
    bc.plot_map(tmp_path / "map.png", g, blew, cert, 1.0, t_star, a_line, line_t)


def draw_final_stage_necessity(tmp_path):
    rng = np.random.default_rng(0)
    n = 64
    lead = 10 ** rng.uniform(-4, -1, n)
    arrays = {"condensed": np.ones(n, bool)}
    for k in fsn.SETS:
        # the final-stage set is entered when the angle constraint is: the same leads
        arrays[f"lead_{k}"] = lead * (3.0 if k == "inner_only" else 1.0)
        arrays[f"entered_{k}"] = np.ones(n, bool)
    head = {"n_trajectories": n, **{f"n_exits_{k}": 0 for k in fsn.SETS}}
    fsn.plot_effective(tmp_path / "entry.png", arrays, head)
    p = {"gd_widths": [10, 30], "gd_eps": [1e-2, 3e-3], "gd_seeds": [0, 1]}
    rows = [{"width": w, "eps": e, "seed": s, "plateau_exit_step": 100, "final_stage_step": -1,
             "inner_violations": 0, "angle_violations": 2 + s}
            for w in p["gd_widths"] for e in p["gd_eps"] for s in p["gd_seeds"]]  # fmt: skip
    fsn.plot_gd(tmp_path / "gd.png", rows, p)


def draw_deeper_networks(tmp_path):
    per_depth, head = {}, {}
    names = ("gd_median_abs_cos_at_plateau_exit", "gd_median_abs_cos_at_escape",
             "gd_peak_median_abs_cos", "gd_top_direction_alignment_at_escape",
             "effective_median_abs_cos_final")  # fmt: skip
    for depth in (4, 5):
        wide = np.geomspace(1e-3, 1e-1, 8)
        gd_eps = np.geomspace(2e-2, 6e-2, 3)[None].repeat(2, 0)
        a = {
            "wide_eps": wide,
            "wide_T_star": np.array([wide ** -(depth - 2), 1.3 * wide ** -(depth - 2)]),
            "gd_eps": gd_eps,
            "gd_escape_time": 1.1 * gd_eps ** -(depth - 2),
            "gd_median_abs_cos_at_escape": np.linspace(0.99, 0.93, 6),
            "gd_median_abs_cos_at_plateau_exit": np.linspace(0.97, 0.83, 6),
        }
        q = np.geomspace(1, 1e-8, 41)
        inside = np.linspace(0, 1, 41)[None] > np.linspace(0.2, 0.8, 20)[:, None]
        sets = ("full", "inner", "chain3", "chain4")[: depth - 1]
        stats = {nm: {"entered": 20, "exits": 3 * j} for j, nm in enumerate(sets)}
        per_depth[depth] = (a, {"q": q, "inside": inside, "stats": stats})
        head[f"d{depth}_effective_slope"] = -(depth - 2.0)
        head[f"d{depth}_gd_slope"] = -(depth - 2.1)
        for j, nm in enumerate(names):
            head[f"d{depth}_{nm}"] = 0.9 + 0.02 * j
    _deeper_figures.plot_escape(tmp_path / "escape.png", per_depth, head)
    _deeper_figures.plot_condensation(tmp_path / "cond.png", per_depth, head)
    _deeper_figures.plot_signs(tmp_path / "signs.png", per_depth)


def draw_matrix_completion(tmp_path):
    depths, observed = [1, 2, 3, 4], [80, 120, 142, 170]
    rng = np.random.default_rng(1)
    rmse = 10 ** rng.uniform(-6, 0, (4, 4, 3))
    rmse[3, 2, :2] = 5.0  # depth 4 fails on two of three problems at 142 entries
    erank = rng.uniform(1, 3, (4, 4, 3))
    nuc = rng.uniform(0.2, 0.7, (4, 3))
    mc.plot_sweep(depths, observed, rmse, erank, nuc, nuc + 1, tmp_path)


def draw_phase_diagram(tmp_path):
    gammas, primes = [0.5, 1.0, 1.5, 2.0], [-0.5, 0.0, 0.5, 1.0]
    rows = [{"gamma": g, "gamma_prime": gp, "rd_slope_layer1": g - gp - 1.0,
             "regime_layer1": "linear" if g < 1 else "condensed", "agrees": True}
            for gp in primes for g in gammas]  # fmt: skip
    p = {"depth": 2, "gammas": gammas, "gamma_primes": primes, "activation": "tanh"}
    _phase_figures.plot_map(rows, p, tmp_path / "phase.png")


def draw_staircase(tmp_path):
    eps = np.array([1e-2, 1e-3, 1e-4])
    rows = [(d, e, k + 1, s, 1.001 * e ** -(d - 2) / s, e ** -(d - 2) / s)
            for d in (3, 4) for e in eps for k, s in enumerate((3.0, 2.0, 1.0))]  # fmt: skip
    a = np.array(rows)
    m = dict(zip(("depth", "eps", "mode", "s", "measured", "closed_form"), a.T))
    _staircase_figures.plot_matrix(tmp_path / "m.png", m, (3.0, 2.0, 1.0))
    nets = {}
    for depth in (2, 3):
        esc = 5.0 / eps if depth == 3 else 3.0 * np.log(1 / eps)
        curves, stages = [], []
        for e0 in esc:  # after the escape the curves coincide: the later plateaus do not move
            t = np.linspace(0, e0 + 600, 3000)
            loss = 0.5 / (1 + np.exp((t - e0) / 5)) + 0.05 / (1 + np.exp((t - e0 - 300) / 5)) + 0.01
            curves.append((t, loss))
            stages.append([{"start_t": 0.0, "drop_start_t": e0 - 10, "drop_end_t": e0 + 10},
                           {"start_t": e0 + 10, "drop_start_t": e0 + 290,
                            "drop_end_t": e0 + 310}])  # fmt: skip
        lengths = np.array([[e0 - 10, 280.0] for e0 in esc])
        nets[depth] = {"eps": eps, "escape_time": esc, "curves": curves, "stages": stages,
                       "plateau_lengths": lengths}  # fmt: skip
    _staircase_figures.plot_losses(tmp_path / "l.png", nets)
    _staircase_figures.plot_durations(tmp_path / "d.png", nets)


DRAWERS = {
    "staircase": draw_staircase,
    "optimizers": draw_optimizers,
    "blowup-census": draw_blowup_census,
    "final-stage-necessity": draw_final_stage_necessity,
    "deeper-networks": draw_deeper_networks,
    "matrix-completion": draw_matrix_completion,
    "phase-diagram": draw_phase_diagram,
}


@pytest.mark.parametrize("experiment", list(DRAWERS))
def test_figures_are_readable(experiment, tmp_path, captured):
    DRAWERS[experiment](tmp_path)
    assert captured, f"{experiment} drew no figure"
    problems = [p for name, fig in captured for p in figure_problems(f"{experiment}/{name}", fig)]
    assert not problems, "\n".join(problems)


def test_the_checks_see_a_hidden_series_tiny_text_and_a_bare_map(captured, tmp_path):
    """The checks can fail: two identical lines, 5 pt legend text, a one-colour map."""
    fig, axs = figures.subplots(1, 2, figsize=(4, 3))
    axs[0].plot([1, 2, 3], [1, 2, 3], label="under")
    axs[0].plot([1, 2, 3], [1, 2, 3], label="over")
    axs[0].legend(fontsize=5)
    axs[1].imshow(np.ones((3, 3)))
    figures.save(fig, tmp_path / "bad.png")
    (_, fig), = captured
    fig.legends.clear()
    axs[0].get_legend().get_texts()[0].set_fontsize(5)  # after finish() raised it
    problems = "\n".join(figure_problems("bad", fig))
    assert "'under' is hidden" in problems
    assert "at 5 pt" in problems
    assert "without a colour bar" in problems and "single colour" in problems


def test_save_gives_every_figure_one_width_and_raises_small_text(tmp_path):
    fig, ax = figures.subplots(figsize=(4.8, 4.4))
    ax.plot([1, 2], [3, 4], label="a")
    ax.legend(fontsize=5)
    ax.set_title("t", fontsize=6)
    ax.set_xticks([1, 2], ["x1", "x2"], fontsize=5)
    ax.set_ylabel("big", fontsize=12)
    figures.finish(fig)
    sizes = {t.get_text(): t.get_fontsize() for t in fig.findobj(Text) if t.get_text()}
    assert sizes["a"] == sizes["t"] == sizes["x1"] == figures.MIN_FONT_PT
    assert sizes["big"] == 12  # larger text is left alone
    assert fig.get_size_inches()[0] == figures.FIG_WIDTH
    figures.save(fig, tmp_path / "f.png")
    from PIL import Image

    with Image.open(tmp_path / "f.png") as im:
        assert im.width == round(figures.FIG_WIDTH * figures.DPI)
