"""Every experiment takes the data.* keys of ``condensation train`` or refuses them in
one line; the summary and the report name the data each experiment used (issue 21)."""

from __future__ import annotations

import json
import types
from pathlib import Path

import numpy as np
import pytest
from helpers import one_line, refused, write_npz

from condensation import experiments as X
from condensation.errors import InputError

# Decided from what each experiment computes: these train networks on a data set ...
TRAINS_ON_DATA = {
    "condensation-three-layer",
    "two-vs-three-layer",
    "final-stage-vs-plateau",
    "escape-scaling",
    "optimizers",
    "small-layers",
    "deeper-networks",
    "final-stage-necessity",  # its GD part (the effective part draws |z| = 1)
    "phase-diagram",
    "staircase",  # its networks (its matrices are a fixed diagonal target)
}
# ... these draw effective states at |z| = 1 or complete random matrices: no data set
NO_DATA_SET = {"blowup-census", "blowup-rates", "condensation-notions", "matrix-completion"}


@pytest.fixture
def user_data(tmp_path) -> tuple[Path, np.ndarray]:
    """A user's own .npz (n = 30, d = 3; labels correlated with x: z != 0)."""
    rng = np.random.default_rng(7)
    x = rng.uniform(-1.0, 1.0, size=(30, 3))
    y = np.tanh(x @ np.array([1.5, -1.0, 0.5])) + 0.1 * x[:, 0]
    path = tmp_path / "wine.npz"
    write_npz(path, x=x, y=y)
    return path, y @ x / x.shape[0]


def test_every_registered_experiment_takes_data_exactly_when_it_trains_on_data():
    """A new experiment must decide: it takes data.* or refuses them."""
    reg = X.registry()
    assert set(reg) == TRAINS_ON_DATA | NO_DATA_SET
    assert {n for n, e in reg.items() if e.uses_data} == TRAINS_ON_DATA


@pytest.mark.parametrize("name", sorted(TRAINS_ON_DATA))
def test_data_experiment_takes_data_path_and_records_it(name, user_data):
    path, _ = user_data
    exp = X.get(name)
    p = exp.params([f"data.path={path}"], quick=True)
    assert p["data"] == {"path": str(path)}
    used = exp.data_used(p)
    assert used["name"] == "wine.npz" and used["path"] == str(path)
    bias = X.get(name).data_config(p).bias  # phase-diagram keeps its bias column
    assert (used["n"], used["d"]) == (30, 3 + bias) and used["section"]["bias"] is bias
    assert used["default"] is False and used["default_teacher"] is False
    own = exp.data_used(exp.params(quick=True))  # no data.*: the experiment's own data
    assert own["default"] is True and own["path"] is None
    # phase-diagram trains on cubic, staircase on teacher3
    assert own["default_teacher"] is (name not in ("phase-diagram", "staircase"))


@pytest.mark.parametrize("name", sorted(NO_DATA_SET))
def test_experiment_without_data_refuses_data_keys_in_one_line(name, user_data):
    exp = X.get(name)
    for key in (f"data.path={user_data[0]}", "data.dataset=sin"):
        with pytest.raises(InputError) as e:
            exp.params([key], quick=True)
        msg = one_line(str(e.value))
        field = key.split("=")[0]
        assert msg.startswith(f"{field} = ") and name in msg and "no data set" in msg, msg
    assert exp.data_used(exp.params(quick=True)) is None  # its summary: data null


def test_run_cli_refuses_data_for_an_experiment_without_data(tmp_path, user_data, cli_main):
    out = tmp_path / "run"
    code, err = cli_main(
        "run", "blowup-rates", "--quick", "--set", f"data.path={user_data[0]}", "--out", str(out)
    )
    line = refused(code, err, "blowup-rates", "no data set")
    assert line.startswith("error: data.path = ")
    assert not out.exists()  # refused before any compute


def test_run_cli_trains_optimizers_on_a_users_data(tmp_path, user_data, cli_main):
    """End to end: the data reach the networks (n and |z| are the file's) and the
    summary names them (before: optimizers refused data.path, reproduce dropped it)."""
    path, z = user_data
    out = tmp_path / "opt"
    small = ["optimizers=['gd']", "width=4", "n_eps=2", "eps_min=5e-3"]
    args = [a for s in small for a in ("--set", s)]
    code, err = cli_main(
        "run", "optimizers", "--quick", "--set", f"data.path={path}", *args, "--out", str(out)
    )
    assert code == 0, err
    s = json.loads((out / "summary.json").read_text())
    assert s["data"]["name"] == "wine.npz" and (s["data"]["n"], s["data"]["d"]) == (30, 3)
    assert s["headline"]["optimizers.n"] == 30
    assert s["headline"]["optimizers.z_norm"] == pytest.approx(float(np.linalg.norm(z)))
    page = (out / "report.html").read_text()
    assert f"wine.npz (data.path = {path}), n = 30, d = 3" in page


# ---- reproduce: data.* go to every experiment that takes them, the rest are named ------
def _fake(name: str, with_data: bool) -> types.ModuleType:
    from condensation.data import load_dataset

    mod = types.ModuleType(f"fake_{name.replace('-', '_')}")
    mod.NAME, mod.TITLE, mod.SECTION, mod.STORY = name, f"Fake {name}", "scaling", "story"
    mod.DEFAULTS, mod.QUICK = {"k": 2}, {}
    mod.FIGURES = (X.Figure("figures/line.png", "a line", ("n",)),)
    if with_data:
        mod.DATA_DEFAULT = lambda p: {"dataset": "teacher", "n": 12}
    else:
        mod.NO_DATA = "draws its states at |z| = 1 (no data set)"

    def run(params, out_dir: Path, progress):
        from condensation.report import figures

        n = 0
        if with_data:
            n = load_dataset(X.data_config(params, mod.DATA_DEFAULT(params))).x.shape[0]
        fig, ax = figures.subplots(figsize=(1, 1))
        figures.save(fig, out_dir / "figures" / "line.png")
        return {"n": n}

    mod.run = run
    return mod


@pytest.fixture
def fake_pair(monkeypatch):
    exps = [X.from_module(_fake("fake-data", True)), X.from_module(_fake("fake-nodata", False))]
    monkeypatch.setattr(X, "registry", lambda: {e.name: e for e in exps})


def test_reproduce_names_experiments_the_data_do_not_reach(
    tmp_path, user_data, fake_pair, monkeypatch, capsys
):
    import sys

    from condensation.cli import main

    path, _ = user_data
    out = tmp_path / "rep"
    # no chosen experiment takes data: refused in one line, as before
    monkeypatch.setattr(sys, "argv", ["condensation", "reproduce", "--quick", "--only",
                                      "fake-nodata", "--out", str(out), "--set",
                                      f"data.path={path}"])  # fmt: skip
    with pytest.raises(SystemExit) as e:
        main()
    got = capsys.readouterr()
    assert e.value.code == 2 and "no chosen experiment takes data" in one_line(got.err)
    assert not out.exists()
    # otherwise they go to every experiment that takes data, and the rest are named
    monkeypatch.setattr(sys, "argv", ["condensation", "reproduce", "--quick", "--workers", "1",
                                      "--out", str(out), "--set", f"data.path={path}"])  # fmt: skip
    capsys.readouterr()
    try:
        main()
    except SystemExit as e:
        assert e.code == 0
    got = capsys.readouterr()
    notes = [ln for ln in got.out.splitlines() if "not used by" in ln]
    assert notes == ["data.path: not used by fake-nodata (they train on no data set)"], got.out
    top = json.loads((out / "summary.json").read_text())
    assert top["headline"]["fake-data"] == {"fake_data.n": 30}  # the file's n, not 12
    assert top["data"]["fake-data"]["name"] == "wine.npz"
    assert top["data"]["fake-nodata"] is None
    page = (out / "report.html").read_text()
    assert "Data: none (this experiment trains on no data set)." in page
    assert f"Data: wine.npz (data.path = {path}), n = 30, d = 3" in page


def test_reproduce_refuses_a_malformed_data_file_before_compute(tmp_path, fake_pair, cli_main):
    bad = tmp_path / "bad.npz"
    write_npz(bad, x=np.zeros((3, 2)))  # no y
    out = tmp_path / "rep"
    code, err = cli_main("reproduce", "--quick", "--out", str(out), "--set", f"data.path={bad}")
    line = refused(code, err, "missing array")
    assert line.startswith("error: data.path = "), err
    assert not out.exists()


# ---- the report names each experiment's data -----------------------------------------
def _summary(name: str, **extra) -> dict:
    return {
        "kind": "experiment", "name": name, "title": f"Title {name}", "section": "scaling",
        "story": "story", "quick": True, "params": {}, "headline": {}, "figures": [],
        "other_numbers": [], **extra,
    }  # fmt: skip


def test_report_names_the_data_of_each_experiment():
    from condensation.report.html import render_html

    teacher = {"name": "teacher", "path": None, "n": 64, "d": 5, "teacher": True,
               "default": True, "default_teacher": True}  # fmt: skip
    wine = {"name": "wine.npz", "path": "data/wine.npz", "n": 178, "d": 13, "teacher": False,
            "default": False, "default_teacher": False}  # fmt: skip
    exps = [
        (Path("a"), _summary("exp-teacher", data=teacher)),
        (Path("b"), _summary("exp-wine", data=wine)),
        (Path("c"), _summary("exp-none", data=None)),
        (Path("d"), _summary("exp-old")),  # a summary from before data were recorded
        (Path("e"), _summary("exp-bad", data={"name": 3})),
    ]
    top = {"kind": "reproduce", "quick": True, "experiments": [s["name"] for _, s in exps]}
    page = render_html(top, exps)
    assert "The data are the default teacher set" not in page  # no blanket claim
    expected = {
        "exp-teacher": "the teacher set, n = 64, d = 5; this experiment&#x27;s default data",
        "exp-wine": "wine.npz (data.path = data/wine.npz), n = 178, d = 13; given with "
        "data.* (the story describes the default data)",
        "exp-none": "none (this experiment trains on no data set)",
        "exp-old": "not recorded (a run from before summaries recorded their data)",
        "exp-bad": "not recorded (the summary&#x27;s data entry is malformed)",
    }
    for name, text in expected.items():
        assert f"<tr><td>{name}</td><td>{text}</td></tr>" in page  # the setup's table
        section = page.split(f'<h3 id="{name}">')[1].split("<h3")[0]
        assert f"Data: {text}." in section  # and the experiment's own section


# ---- slow: each data experiment, quick, on a user's data, end to end ------------------
@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(TRAINS_ON_DATA - {"phase-diagram"}))
def test_quick_run_on_a_users_data_names_it(name, tmp_path, user_data):
    """phase-diagram fits its 3-point set; the others train on 30 points in 3-D."""
    from condensation.reproduction import run_experiment

    path, z = user_data
    s = run_experiment(name, tmp_path / name, [f"data.path={path}"], quick=True)
    assert s["data"]["name"] == "wine.npz" and (s["data"]["n"], s["data"]["d"]) == (30, 3)
    z_norm = s["headline"].get(f"{X.get(name).key}.z_norm")
    if z_norm is not None:  # the networks saw the file's data
        assert z_norm == pytest.approx(float(np.linalg.norm(z)))
