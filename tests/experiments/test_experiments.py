"""Experiment registry, `condensation run/reproduce/report`, the HTML report."""

from __future__ import annotations

import base64
import io
import json
import types
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from helpers import refused

from condensation import experiments as X
from condensation.errors import InputError
from condensation.report.html import render_report
from condensation.reproduction import reproduce, run_experiment
from condensation.store.rundir import MARKER


# ---- a tiny fake experiment, so infrastructure tests do not train networks ----
def _fake_module(name="fake-exp", section="scaling", fail=False) -> types.ModuleType:
    mod = types.ModuleType(f"fake_{name.replace('-', '_')}")
    mod.NAME = name
    mod.TITLE = f"Fake {name}"
    mod.SECTION = section
    mod.STORY = "A fake experiment <with> characters that need escaping & more."
    mod.DEFAULTS = {"a": 1.0, "k": 3, "flag": False, "label": "x", "vals": [1.0, 2.0]}
    mod.QUICK = {"k": 2}
    mod.FIGURES = (X.Figure("figures/line.png", "a line", ("slope", "missing_number")),)

    def run(params, out_dir: Path, progress):
        from condensation.report import figures

        progress("work", 1, 1)
        np.savez(out_dir / "arrays" / "line.npz", x=np.arange(params["k"]))
        fig, ax = figures.subplots(figsize=(2, 2))
        ax.plot(np.arange(params["k"]) * params["a"])
        figures.save(fig, out_dir / "figures" / "line.png")
        if fail:
            raise RuntimeError("boom: simulated failure mid-way")
        return {"slope": params["a"], "count": params["k"], "nothing": float("nan")}

    mod.run = run
    return mod


@pytest.fixture
def fake_registry(monkeypatch):
    """Replace the registry by fake experiments (no training)."""
    mods = {
        "fake-exp": _fake_module(),
        "fake-plateau": _fake_module("fake-plateau", section="plateau"),
    }

    def registry():
        exps = [X.from_module(m) for m in mods.values()]
        order = list(X.SECTIONS)
        exps.sort(key=lambda e: order.index(e.section))
        return {e.name: e for e in exps}

    monkeypatch.setattr(X, "registry", registry)
    return mods


# ---- registry and parameters ------------------------------------------------
def test_registry_lists_gd_experiments():
    reg = X.registry()
    assert {"condensation-three-layer", "escape-scaling"} <= set(reg)
    for exp in reg.values():
        assert exp.section in X.SECTIONS and exp.title and exp.story and exp.figures
        assert set(exp.quick) <= set(exp.defaults)
    order = [list(X.SECTIONS).index(e.section) for e in reg.values()]
    assert order == sorted(order)


def test_unknown_name_lists_known_ones():
    with pytest.raises(InputError) as e:
        X.get("no-such-experiment")
    msg = str(e.value)
    assert "no-such-experiment" in msg and "\n" not in msg
    for name in X.names():
        assert name in msg


def test_params_quick_and_overrides():
    exp = X.get("escape-scaling")
    assert exp.params()["eps_min"] == exp.defaults["eps_min"]
    assert exp.params(quick=True)["n_eps"] == exp.quick["n_eps"]
    p = exp.params(["eps_min=1e-5", "n_eps=4", "margin=2"])
    assert p["eps_min"] == 1e-5 and p["n_eps"] == 4 and p["margin"] == 2.0
    assert isinstance(p["margin"], float)


@pytest.mark.parametrize(
    "item,field",
    [
        ("colour=1", "colour"),
        ("eps_min='small'", "eps_min"),
        ("n_eps=2.5", "n_eps"),
        ("eps_min", "--set"),
    ],
)
def test_bad_set(item, field):
    with pytest.raises(InputError) as e:
        X.get("escape-scaling").params([item])
    msg = str(e.value)
    assert msg.startswith(field) and "fix:" in msg and "\n" not in msg
    if field == "colour":
        assert "eps_min" in msg and "three_layer_lr" in msg  # lists the known keys


def test_cli_unknown_name_and_key_exit_2(tmp_path, cli_main):
    out = tmp_path / "r"
    code, err = cli_main("run", "no-such-experiment", "--out", str(out))
    refused(code, err, "no-such-experiment", "escape-scaling")
    code, err = cli_main("run", "escape-scaling", "--set", "colour=1", "--out", str(out))
    refused(code, err, "colour", "eps_min")
    code, err = cli_main("reproduce", "--only", "nope", "--out", str(out))
    refused(code, err, "escape-scaling")
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_cli_report_on_non_run_dir_exit_2(tmp_path, cli_main):
    (tmp_path / "junk.txt").write_text("hello")
    code, err = cli_main("report", str(tmp_path))
    refused(code, err, "not a reproduce or experiment run directory")
    (tmp_path / "summary.json").write_text(json.dumps({"kind": "train"}))
    code, err = cli_main("report", str(tmp_path))
    refused(code, err, "'train'")
    code, err = cli_main("report", str(tmp_path / "missing"))
    refused(code, err, "not a directory")
    assert not (tmp_path / "report.html").exists()


# ---- report ------------------------------------------------------------------
class _Page(HTMLParser):
    def __init__(self):
        super().__init__()
        self.images, self.external, self.h2 = [], [], []
        self._in_h2 = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "img":
            self.images.append(a["src"])
        for k in ("src", "href"):
            if k in a and not a[k].startswith(("data:", "#")):
                self.external.append(a[k])
        if tag == "h2":
            self._in_h2 = True
            self.h2.append("")

    def handle_endtag(self, tag):
        if tag == "h2":
            self._in_h2 = False

    def handle_data(self, data):
        if self._in_h2:
            self.h2[-1] += data


def _check_page(path: Path, n_images: int) -> _Page:
    import matplotlib.image as mpimg

    page = _Page()
    page.feed(path.read_text(encoding="utf-8"))
    assert page.external == []
    assert len(page.images) == n_images
    for src in page.images:
        assert src.startswith("data:image/png;base64,")
        img = mpimg.imread(io.BytesIO(base64.b64decode(src.split(",", 1)[1])), format="png")
        assert img.shape[0] > 50 and img.shape[1] > 50
    return page


def test_reproduce_fake_writes_report_and_rerenders_byte_for_byte(
    tmp_path, fake_registry, cli_subprocess
):
    out = tmp_path / "rep"
    top = reproduce(out, quick=True)
    assert top["experiments"] == ["fake-plateau", "fake-exp"]  # story order
    s = json.loads((out / "summary.json").read_text())
    assert s["kind"] == "reproduce" and s["quick"] is True
    assert s["headline"]["fake-exp"] == {
        "fake_exp.slope": 1.0,
        "fake_exp.count": 2,
        "fake_exp.nothing": None,
    }
    e = json.loads((out / "fake-exp" / "summary.json").read_text())
    assert e["params"]["k"] == 2 and e["figures"][0]["numbers"] == ["fake_exp.slope"]
    assert (out / "fake-exp" / "arrays" / "line.npz").is_file()
    page = _check_page(out / "report.html", 2)
    assert page.h2[:3] == ["Setup", "Plateau and condensation", "Scaling"]
    assert "&lt;with&gt;" in (out / "report.html").read_text()
    before = (out / "report.html").read_bytes()
    (out / "report.html").unlink()
    render_report(out)
    assert (out / "report.html").read_bytes() == before
    p = cli_subprocess("report", str(out))  # the CLI, in a fresh process
    assert p.returncode == 0, p.stderr
    assert (out / "report.html").read_bytes() == before

    assert sorted(x.name for x in tmp_path.iterdir()) == ["rep"]  # no temporary leftovers


def test_interrupted_reproduce_leaves_nothing(tmp_path, fake_registry):
    fake_registry["fake-exp"] = _fake_module(fail=True)  # fails after fake-plateau ran
    out = tmp_path / "rep"
    with pytest.raises(RuntimeError, match="boom"):
        reproduce(out)
    assert list(tmp_path.iterdir()) == []
    # over an earlier complete run: the earlier run stays as it was
    fake_registry["fake-exp"] = _fake_module()
    reproduce(out)
    before = (out / "report.html").read_bytes()
    fake_registry["fake-exp"] = _fake_module(fail=True)
    with pytest.raises(RuntimeError):
        reproduce(out, overwrite=True)
    assert (out / "report.html").read_bytes() == before
    assert sorted(x.name for x in tmp_path.iterdir()) == ["rep"]


def test_interrupted_report_render_keeps_old_page(tmp_path, fake_registry, monkeypatch):
    out = tmp_path / "rep"
    reproduce(out)
    before = (out / "report.html").read_bytes()
    import condensation.report.html as H

    def broken(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(H, "render_html", broken)
    with pytest.raises(KeyboardInterrupt):
        render_report(out)
    assert (out / "report.html").read_bytes() == before
    assert not [x for x in out.iterdir() if x.name.startswith(".") and x.name != MARKER]


def test_run_single_experiment_dir_is_reportable(tmp_path, fake_registry):
    out = tmp_path / "one"
    s = run_experiment("fake-exp", out, ["a=2.5"])
    assert s["headline"]["fake_exp.slope"] == 2.5 and s["params"]["k"] == 3
    before = (out / "report.html").read_bytes()
    _check_page(out / "report.html", 1)
    render_report(out)
    assert (out / "report.html").read_bytes() == before


# ---- the real GD experiments, quick mode --------------------------------------
# ~75 s: the paper's quantitative claims at quick sizes (the default suite renders
# `reproduce --quick` of one experiment through the README's command)
@pytest.mark.slow
def test_reproduce_quick_gd_experiments(tmp_path, cli_main):
    out = tmp_path / "quick"
    code, err = cli_main(
        "reproduce",
        "--quick",
        "--only",
        "condensation-three-layer",
        "--only",
        "escape-scaling",
        "--out",
        str(out),
    )
    assert code == 0, err
    s = json.loads((out / "summary.json").read_text())
    h3 = s["headline"]["condensation-three-layer"]
    t_esc = h3["condensation_three_layer.escape_time"]
    t_fs = h3["condensation_three_layer.final_stage_entry_time"]
    assert t_esc is not None and t_fs is not None and abs(t_fs - t_esc) < 0.05 * t_esc
    assert h3["condensation_three_layer.median_abs_cos_at_escape"] > 0.9
    hs = s["headline"]["escape-scaling"]
    assert hs["escape_scaling.three_layer_n_not_escaped"] == 0
    assert -1.1 < hs["escape_scaling.three_layer_slope"] < -0.9
    assert abs(hs["escape_scaling.two_layer_increase_relative_error"]) < 0.05
    _check_page(out / "report.html", 5)
    before = (out / "report.html").read_bytes()
    render_report(out)
    assert (out / "report.html").read_bytes() == before


# ---- acceptance (slow) ---------------------------------------------------------
@pytest.mark.slow
def test_escape_scaling_acceptance(tmp_path):
    """Fast-forwarded: three-layer slope in [-1.02, -0.98] over eps in [1e-8, 1e-2]
    (six decades, past 1e-6); two-layer increase per decade within 5% of ln(10)/|z|."""
    s = run_experiment("escape-scaling", tmp_path / "scaling")
    h = s["headline"]
    assert h["escape_scaling.three_layer_n_not_escaped"] == 0
    assert h["escape_scaling.eps_min"] <= 1e-6 and h["escape_scaling.eps_max"] == 1e-2
    assert -1.02 <= h["escape_scaling.three_layer_slope"] <= -0.98
    ratio = h["escape_scaling.three_layer_gradient_evaluations_plain_gd"] / max(
        h["escape_scaling.three_layer_gradient_evaluations"], 1
    )
    assert ratio > 100
    inc = h["escape_scaling.two_layer_increase_per_decade"]
    pred = h["escape_scaling.two_layer_predicted_increase_per_decade"]
    assert abs(inc / pred - 1) < 0.05


@pytest.mark.slow
def test_condensation_three_layer_final_stage_within_2_percent(tmp_path):
    s = run_experiment("condensation-three-layer", tmp_path / "c3")
    h = s["headline"]
    assert abs(h["condensation_three_layer.final_stage_entry_before_escape_relative"]) < 0.02


def test_reproduce_resume_reuses_finished_experiments(tmp_path, fake_registry, cli_main):
    out = tmp_path / "rep"
    fake_registry["fake-exp"] = _fake_module(fail=True)  # fails after fake-plateau ran
    with pytest.raises(RuntimeError, match="boom"):
        reproduce(out, resume=True)
    stage = tmp_path / ".rep.resume"
    assert not out.exists() and sorted(p.name for p in stage.iterdir()) == [
        ".condensation-run",  # the staging folder's owner marker
        "fake-plateau",
    ]
    before = (stage / "fake-plateau" / "summary.json").read_bytes()
    fake_registry["fake-exp"] = _fake_module()
    top = reproduce(out, resume=True)
    assert top["reused"] == ["fake-plateau"] and not stage.exists()
    assert (out / "fake-plateau" / "summary.json").read_bytes() == before
    fresh = reproduce(tmp_path / "fresh")
    assert fresh["headline"] == top["headline"] and fresh["reused"] == []
    # README: reproduce --quick --resume --out DIR (quick variant: the fake registry)
    code, err = cli_main("reproduce", "--quick", "--resume", "--out", str(out))
    assert code == 0, err
    s = json.loads((out / "summary.json").read_text())
    assert s["quick"] is True and s["reused"] == []  # quick params differ: both rerun
    code, err = cli_main("reproduce", "--quick", "--resume", "--out", str(out))
    assert code == 0 and json.loads((out / "summary.json").read_text())["reused"] == [
        "fake-exp",
        "fake-plateau",
    ]


def test_reproduce_resume_never_uses_a_staging_folder_it_did_not_make(
    tmp_path, fake_registry, cli_main
):
    """A user's folder at the staging name (issue 20: names never make a path ours)
    is refused in one line and left as it was, its files included."""
    out = tmp_path / "rep"
    stage = tmp_path / ".rep.resume"
    (stage / "fake-plateau").mkdir(parents=True)
    (stage / "fake-plateau" / "notes.txt").write_text("mine")
    code, err = cli_main("reproduce", "--quick", "--resume", "--out", str(out))
    refused(code, err, "not made by condensation")
    assert (stage / "fake-plateau" / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".rep.resume"]


def test_gd_experiments_take_data_keys(tmp_path):
    reg = X.registry()
    assert {n for n, e in reg.items() if e.uses_data} == {
        "condensation-three-layer",
        "two-vs-three-layer",
        "final-stage-vs-plateau",
        "escape-scaling",
        "phase-diagram",
        "optimizers",
        "small-layers",
        "deeper-networks",
        "final-stage-necessity",
        "staircase",
    }
    p = reg["escape-scaling"].params(["data.dataset=sin", "data.noise=0.1"])
    assert p["data"] == {"dataset": "sin", "noise": 0.1}
    assert X.data_section(p, {"dataset": "teacher", "seed": 3}) == {
        "dataset": "sin",
        "seed": 3,
        "noise": 0.1,
    }
    with pytest.raises(InputError, match="data.colour"):
        reg["escape-scaling"].params(["data.colour=1"])
    with pytest.raises(InputError, match="unknown parameter of experiment matrix-completion"):
        reg["matrix-completion"].params(["data.path=x.npz"])
