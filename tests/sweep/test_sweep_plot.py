"""`sweep --plot` and the table read back: panels or colours for every axis not
plotted, numeric order, log axes, members without a value counted; `load_sweep`;
the README example's horizon.

The figure tests draw synthetic tables (no training); the example's horizon is
checked against the effective dynamics' blow-up time, integrated here in numpy
from the members' initial parameters (no training, no compile); one slow test
runs the example and fits the slope.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest

from condensation.errors import InputError
from condensation.store.rundir import write_json
from condensation.sweep import load_sweep, plot_sweep, sweep_figure
from condensation.sweep.facets import order_key
from condensation.sweep.table import write_table

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "configs" / "sweep_example.toml"
SCALES = (1e-3, 3e-3, 1e-2)
WIDTHS = ([200, 200], [20, 20], [50, 50])  # in an order that sorts wrong as text
DATA = ("wine.csv", "breast_cancer.csv")


def _escape(scale: float, width: list[int], data: str, seed: int) -> float:
    """A synthetic escape time ``c / eps`` whose c differs per width, data set and seed."""
    c = width[0] / 10 * (3.0 if data == "wine.csv" else 1.0) * (1 + 0.1 * seed)
    return c / scale


def _rows(missing=(), failed=()) -> list[dict]:
    """Rows as the sweep writes them: axes, cell, status, error, summary scalars.
    ``missing``: (scale, tuple(width), data, seed) without escape; ``failed``: in a failed cell."""
    rows = []
    for scale in SCALES:
        for width in WIDTHS:
            for data in DATA:
                for seed in (0, 1):
                    key = (scale, tuple(width), data, seed)
                    row = {
                        "init.scale": scale,
                        "model.widths": width,
                        "data.path": data,
                        "model.depth": 3,
                        "init.seed": seed,
                        "cell": f"{width[0]}-{data}",
                        "status": "failed" if key in failed else "ok",
                        "error": "boom" if key in failed else None,
                        "escape_time": _escape(scale, width, data, seed),
                    }
                    if key in missing or key in failed:
                        row["escape_time"] = None
                    rows.append(row)
    return rows


def _table(tmp_path: Path, rows: list[dict]) -> Path:
    """A sweep directory holding ``rows`` as its table (the real writer: lists as JSON)."""
    out = tmp_path / "sweep"
    out.mkdir()
    coded = [{k: json.dumps(v) if isinstance(v, list) else v for k, v in r.items()} for r in rows]
    write_table(out, coded)
    write_json(out / "summary.json", {"kind": "sweep", "axes": {}, "members": len(rows)})
    return out


def _figure(rows, *args, **kw):
    import matplotlib.pyplot as plt

    fig, info = sweep_figure(rows, *args, **kw)
    axes = [ax for ax in fig.axes if ax.get_visible()]
    heading = fig._suptitle.get_text()
    legends = [[t.get_text() for t in (ax.get_legend() or ax).texts] for ax in axes]
    texts = [[t.get_text() for t in ax.texts] for ax in axes]
    scales = {(ax.get_xscale(), ax.get_yscale()) for ax in axes}
    titles = [ax.get_title() for ax in axes]
    plt.close(fig)
    return info, heading, titles, legends, texts, scales


def test_every_axis_not_plotted_is_a_panel_a_mean_or_named(tmp_path):
    rows = load_sweep(_table(tmp_path, _rows())).rows
    info, heading, titles, legends, _, scales = _figure(
        rows, "init.scale", "escape_time", "model.widths"
    )
    # data.path varies: one panel per data set, never wine and breast cancer averaged
    assert titles == ["data.path = breast_cancer.csv", "data.path = wine.csv"]
    assert "one panel per data.path" in heading
    assert "mean over 2 init.seed" in heading  # the replicates, said
    assert "fixed: model.depth = 3" in heading  # a one-value axis, named
    assert scales == {("log", "log")}  # both span a decade, all positive
    # each point is the mean over the seeds of its own panel and width
    for line in info.lines:
        data = line.panel.split(" = ")[1]
        width = [int(v) for v in line.hue.strip("[]").split(", ")]
        want = [np.mean([_escape(s, width, data, seed) for seed in (0, 1)]) for s in SCALES]
        np.testing.assert_allclose(line.mean, want, rtol=1e-12)
        assert line.slope == pytest.approx(-1.0, abs=1e-9)  # y = c / x exactly
    # numeric legend order (as text it would be [20, 20], [200, 200], [50, 50])
    assert [t.split(":")[0] for t in legends[0]] == ["[20, 20]", "[50, 50]", "[200, 200]"]
    assert legends[0][0].endswith("slope -1.00")
    # no --hue: the widths become panels too (3 x 2), each titled with both axes
    info, heading, titles, *_ = _figure(rows, "init.scale", "escape_time")
    assert len(titles) == 6 and "one panel per model.widths x data.path" in heading
    assert titles[0] == "model.widths = [20, 20], data.path = breast_cancer.csv"


def test_order_of_values_is_numeric():
    assert sorted([100, 5, 20], key=order_key) == [5, 20, 100]
    assert sorted(["[3, 10]", "[3, 9]", "[10]"], key=order_key) == ["[3, 9]", "[3, 10]", "[10]"]
    assert sorted(["b.csv", 2, None, "[1]"], key=order_key) == [2, "[1]", "b.csv", None]


def test_log_axes_forced_refused_and_automatic(tmp_path):
    rows = [r for r in _rows() if r["init.scale"] != 1e-3 and r["model.widths"] == [20, 20]]
    rows = [{**r, "model.widths": "[20, 20]"} for r in rows]
    # x over 3e-3 .. 1e-2 (less than a decade): linear unless forced; y over a decade: log
    info, *_, scales = _figure(rows, "init.scale", "escape_time", "data.path")
    assert scales == {("linear", "log")} and info.lines[0].slope is None
    info, *_, scales = _figure(rows, "init.scale", "escape_time", "data.path", logx=True, logy=True)
    assert scales == {("log", "log")}
    assert info.lines[0].slope == pytest.approx(-1.0, abs=1e-9)
    # a forced log y leaves out values <= 0, and says so (they are not "missing")
    neg = [{**r, "escape_time": -1.0} if i == 0 else r for i, r in enumerate(rows)]
    info, *_ = _figure(neg, "init.scale", "escape_time", "data.path", logy=True)
    assert info.notes == ("1 values of escape_time <= 0 are not drawn on the log y axis",)
    assert info.missing == 0 and info.lines[0].members[0] == 2
    wide = _rows()
    *_, scales = _figure(wide, "init.scale", "escape_time", "model.widths", logx=False)
    assert scales == {("linear", "log")}
    with pytest.raises(InputError, match="--logx = 'model.widths': a log axis needs positive"):
        sweep_figure(wide, "model.widths", "escape_time", "data.path", logx=True)
    with pytest.raises(InputError, match="--hue = 'init.scale': is also the --plot axis"):
        sweep_figure(wide, "init.scale", "escape_time", "init.scale")


def test_members_without_a_value_are_counted_on_the_figure_and_in_the_notes(tmp_path):
    missing = {(1e-3, (50, 50), "wine.csv", 0), (1e-3, (50, 50), "wine.csv", 1)}
    failed = {(1e-2, (20, 20), "wine.csv", 1)}
    rows = load_sweep(_table(tmp_path, _rows(missing, failed))).rows
    info, heading, titles, _, texts, _ = _figure(rows, "init.scale", "escape_time", "model.widths")
    assert info.missing == 3
    assert titles[1] == "data.path = wine.csv\n3 of 18 members without escape_time"
    assert titles[0] == "data.path = breast_cancer.csv"
    assert "n members without escape_time" in heading
    assert sorted(texts[1]) == ["1", "2"]  # the counts at the top of the panel
    (note,) = info.notes
    assert note.startswith(
        "3 of 36 members have no escape_time (2 did not escape within train.steps, "
        "1 in failed cells); not averaged: "
    )
    assert "[50, 50] at 0.001: 2" in note
    line = next(ln for ln in info.lines if ln.panel.endswith("wine.csv") and ln.hue == "[20, 20]")
    assert line.missing == (0, 0, 1) and line.members == (2, 2, 2)
    assert line.mean[2] == pytest.approx(_escape(1e-2, [20, 20], "wine.csv", 0))  # the other
    gone = next(ln for ln in info.lines if ln.panel.endswith("wine.csv") and ln.hue == "[50, 50]")
    assert math.isnan(gone.mean[0]) and gone.missing[0] == 2
    # written to the sweep directory
    drawn = plot_sweep(tmp_path / "sweep", "init.scale", "escape_time", "model.widths")
    assert drawn.path == tmp_path / "sweep" / "figures" / "escape_time_vs_init.scale.png"
    assert drawn.path.stat().st_size > 5000 and drawn.notes == info.notes


def test_load_sweep_to_pandas_and_polars(tmp_path, monkeypatch):
    out = _table(tmp_path, _rows(missing={(1e-3, (20, 20), "wine.csv", 0)}))
    s = load_sweep(out)
    assert len(s) == 36 and s.axes == [
        "init.scale", "model.widths", "data.path", "model.depth", "init.seed"
    ]  # fmt: skip
    df = s.to_pandas()
    assert df.shape == (36, 9) and list(df.columns[:2]) == ["init.scale", "model.widths"]
    assert df["escape_time"].isna().sum() == 1
    assert df.loc[0, "model.widths"] == "[200, 200]"  # lists as JSON text, as in results.csv
    want = [np.nan if r["escape_time"] is None else r["escape_time"] for r in s.rows]
    np.testing.assert_allclose(df["escape_time"].to_numpy(), want)
    monkeypatch.setitem(sys.modules, "polars", None)  # as if polars were not installed
    with pytest.raises(ImportError) as e:
        s.to_polars()
    assert str(e.value).startswith("Sweep.to_polars needs polars, which is not installed: pip")
    assert "\n" not in str(e.value)
    with pytest.raises(InputError, match="DIR = .*: not a sweep directory"):
        load_sweep(tmp_path)


@pytest.mark.parametrize("name", ["results.parquet", "summary.json"])
def test_load_sweep_never_reads_outside_the_sweep(tmp_path, name):
    """A table or summary that is a symlink out of the sweep directory is refused in
    one line, whatever it points at (here: a real sweep's own file)."""
    real = _table(tmp_path, _rows())
    other = tmp_path / "other"
    other.mkdir()
    for f in ("results.parquet", "summary.json"):
        if f == name:
            (other / f).symlink_to(real / f)
        else:
            (other / f).write_bytes((real / f).read_bytes())
    with pytest.raises(InputError, match="leads outside the run directory") as e:
        load_sweep(other)
    assert "\n" not in str(e.value)
    assert len(load_sweep(real)) == 36


def test_to_polars_where_installed(tmp_path):
    pytest.importorskip("polars")
    s = load_sweep(_table(tmp_path, _rows()))
    assert s.to_polars().shape == (36, 9)


def test_plot_options_are_checked_before_anything_runs(tmp_path, cli_main):
    (tmp_path / "base.toml").write_text("[data]\nn = 20\nd = 3\n[model]\nwidths = [6, 6]\n")
    spec = tmp_path / "spec.toml"
    spec.write_text(
        '[sweep]\ncommand = "train"\nbase = "base.toml"\n[sweep.axes]\n'
        '"init.scale" = [1e-2, 1e-3]\n"model.widths" = [[6, 6], [8, 8]]\n'
        '"train.lr" = [0.1, 0.2, 0.3, 0.4, 0.5]\n"data.n" = [20, 30, 40, 50]\n'
    )
    plot = ["--plot", "init.scale", "--y", "escape_time"]
    for args, start, words in [
        (plot + ["--hue", "model.widths"], "--plot = 'init.scale'", "20 panels (5 train.lr x 4"),
        (plot + ["--hue", "init.scale"], "--hue = 'init.scale'", "also the --plot axis"),
        (["--plot", "model.widths", "--y", "escape_time", "--hue", "train.lr", "--logx"],
         "--logx = 'model.widths'", "positive numbers, got [6, 6], [8, 8]"),
        (["--logy"], "--logy = True", "only with --plot"),
    ]:  # fmt: skip
        code, err = cli_main("sweep", str(spec), "--out", str(tmp_path / "o"), *args)
        assert code == 2 and err.startswith(f"error: {start}: ") and words in err, err
        assert len(err.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["base.toml", "spec.toml"]


# ---- the README example ------------------------------------------------------------
def t_star_numpy(params, z, radius=1e3) -> float:
    """Blow-up time of the depth-3 effective dynamics (THEORY §2: ``a' = W c``,
    ``W' = a c^T``, ``c' = |z|^2 W^T a``, ``c = W1 z``; tanh: gain 1) from one member's
    ``(W1, W2, W3)``, integrated until the norm reaches ``radius``, plus the time left
    from there, ``sqrt(3) / (|z| r)`` (the limit of THEORY §4's bound)."""
    from scipy.integrate import solve_ivp

    b, w, a = (np.asarray(p, dtype=np.float64) for p in params)
    zz = float(z @ z)
    m2, m1 = w.shape

    def split(s):
        return s[:m2], s[m2 : m2 + m2 * m1].reshape(m2, m1), s[m2 + m2 * m1 :]

    def field(_, s):
        a_, w_, c_ = split(s)
        return np.concatenate([w_ @ c_, np.outer(a_, c_).ravel(), zz * (w_.T @ a_)])

    def far(_, s):
        a_, w_, c_ = split(s)
        return a_ @ a_ + np.sum(w_ * w_) + c_ @ c_ / zz - radius**2

    far.terminal = True
    s0 = np.concatenate([a[0], w.ravel(), b @ z])
    sol = solve_ivp(field, (0, 1e9), s0, method="DOP853", rtol=1e-7, atol=1e-14, events=far)
    assert sol.status == 1, sol.message
    return float(sol.t_events[0][0]) + math.sqrt(3) / (math.sqrt(zz) * radius)


def _example_horizons():
    """(cell, steps x lr, each member's predicted T*, AUTO_ROOM / |z|) per cell."""
    from condensation.commands.prepare import prepare_run
    from condensation.sweep import parse_spec
    from condensation.training.fastforward import AUTO_ROOM

    out = []
    for cell in parse_spec(EXAMPLE).cells:
        assert isinstance(cell.cfg.train.steps, int)  # "auto" would solve here (slow)
        p = prepare_run(cell.cfg)
        assert p.spec.depth == 3 and p.spec.activation.name == "tanh"
        z = p.data.z * cell.cfg.model.output_scale
        t = [
            t_star_numpy([w[i] for w in p.ensemble.params], z) for i in range(p.ensemble.size)
        ]
        horizon = cell.cfg.train.steps * cell.cfg.train.lr
        out.append((cell, horizon, t, AUTO_ROOM / float(np.linalg.norm(z))))
    return out


def test_the_example_gives_every_member_a_horizon_past_its_predicted_escape():
    cells = _example_horizons()
    assert len(cells) == 2
    for cell, horizon, t_stars, room in cells:
        # GD escapes within O(1/|z|) of T*: the horizon leaves what "auto" would
        assert horizon >= max(t_stars) + room, (cell.axes, horizon, max(t_stars), room)
        # T* ~ 1/eps (exact for the homogeneous field), so escape time ~ 1/eps too
        members = cell.cfg.member_seeds_scales
        for seed in (0, 1):
            pairs = [(e, t) for (s, e), t in zip(members, t_stars) if s == seed]
            eps, t = np.log(pairs).T
            assert np.polyfit(eps, t, 1)[0] == pytest.approx(-1.0, abs=1e-6)
    longest = max(max(t) + room for _, _, t, room in cells)
    assert cells[0][1] <= 1.2 * longest  # and not much longer: the example stays quick


@pytest.mark.slow
def test_the_example_draws_one_line_per_width_on_slope_minus_one(tmp_path, cli_streams):
    """The README's command: every member escapes within its horizon, one line per
    width on log-log axes, each line's fitted slope within 0.15 of -1; the numpy T*
    above agrees with the library's prediction."""
    from condensation.effective.predictions import t_star_predictions

    out = tmp_path / "sweep"
    code, stdout, err = cli_streams(
        "sweep", str(EXAMPLE), "--out", str(out), "--workers", "0",
        "--plot", "init.scale", "--y", "escape_time", "--hue", "model.widths",
    )  # fmt: skip
    assert code == 0, err
    s = load_sweep(out)
    rows = s.rows
    assert len(rows) == 12 and all(r["status"] == "ok" for r in rows)
    assert all(r["escape_time"] is not None for r in rows), "a member did not escape"
    drawn = plot_sweep(out, "init.scale", "escape_time", "model.widths")
    assert (drawn.xscale, drawn.yscale, drawn.missing, drawn.notes) == ("log", "log", 0, ())
    assert [ln.hue for ln in drawn.lines] == ["[8, 8]", "[16, 16]"]
    for ln in drawn.lines:
        assert ln.slope == pytest.approx(-1.0, abs=0.15), (ln.hue, ln.slope)
    assert "note:" not in stdout
    from condensation.commands.prepare import prepare_run
    from condensation.sweep import parse_spec

    cell = parse_spec(EXAMPLE).cells[0]
    p = prepare_run(cell.cfg)
    lib = [t for t, _ in t_star_predictions(p.ensemble.params, p.data.z, p.spec.activation)]
    ours = _example_horizons()[0][2]
    np.testing.assert_allclose(ours, lib, rtol=1e-5)
