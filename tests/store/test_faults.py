"""Numerical faults are contained per member: divergence, overflow and underflow are
marked, figures and metrics skip what cannot be drawn, good members' results are
written and equal to running them alone."""

import json
import warnings

import numpy as np
import pytest
from helpers import refused

from condensation.report import figures

# float64, two seeds x a good and an exploding scale, lr = 1 (the case),
# made small: the eps = 1e-2 members escape near step 130, the eps = 30 ones
# overflow near step 260.
ENSEMBLE = [
    "--set", "train.steps=300", "--set", "train.snapshots=4", "--set", "train.linear_snapshots=2",
    "--set", "train.lr=1.0", "--set", "init.seeds=[0, 1]", "--set", "model.widths=[10, 10]",
    "--set", "data.n=20",
]  # fmt: skip


def _summary(out):
    return json.loads((out / "summary.json").read_text())


def test_diverged_members_leave_the_good_ones_bit_identical(cli_main, tmp_path):
    both = tmp_path / "both"
    code, err = cli_main(
        "train", *ENSEMBLE, "--set", "init.scales=[1e-2, 30.0]", "--out", str(both)
    )
    assert code == 0, err
    members = _summary(both)["members"]
    assert [m["status"] for m in members] == ["ok", "diverged", "ok", "diverged"]
    assert all(m["diverged_step"] is not None for m in members[1::2])
    for name in ("loss.png", "alignment.png", "cosine_heatmaps.png"):
        assert (both / "figures" / name).stat().st_size > 0
    alone = tmp_path / "alone"
    code, err = cli_main("train", *ENSEMBLE, "--set", "init.scales=[1e-2]", "--out", str(alone))
    assert code == 0, err
    good = [0, 2]  # the eps = 1e-2 members of the four
    a, b = np.load(both / "arrays" / "snapshots.npz"), np.load(alone / "arrays" / "snapshots.npz")
    for key in ("loss", "W1", "W2", "W3"):
        np.testing.assert_array_equal(a[key][good], b[key])  # bit for bit
    ea, eb = (
        np.load(both / "arrays" / "escape_params.npz"),
        np.load(alone / "arrays" / "escape_params.npz"),
    )
    np.testing.assert_array_equal(ea["escape_step"][good], eb["escape_step"])
    alone_members = _summary(alone)["members"]
    for i, m in zip(good, alone_members):
        assert {k: v for k, v in members[i].items()} == m


def test_figures_leave_out_undrawable_values(tmp_path):
    t = np.arange(6.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fig, axs = figures.subplots(1, 2)
        figures.loss_curve(axs[0], t, np.array([1e-3, 1e10, 1e300, 1.7e308, np.inf, np.nan]),
                           escape=np.inf, final_stage=1e308)  # fmt: skip
        figures.loss_curve(axs[0], t, np.full(6, 1e-3))
        axs[1].plot(t, np.full(6, np.nan))
        axs[1].set_yscale("log")
        figures.save(fig, tmp_path / "f.png")
    assert (tmp_path / "f.png").stat().st_size > 0
    np.testing.assert_array_equal(
        figures.drawable([1.0, 1e300, -np.inf, np.nan, -2.0]), [1.0, np.nan, np.nan, np.nan, -2.0]
    )


def test_metrics_of_huge_finite_weights_are_finite():
    from condensation.core.metrics import condensation_metrics, cosine_matrix

    rng = np.random.default_rng(0)
    w = [rng.standard_normal((5, 3)) * 1e200, rng.standard_normal((4, 5)) * 1e200, np.ones((1, 4))]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m = condensation_metrics(w, np.array([1.0, 0.0, 0.0]))
        c = cosine_matrix(w[0])
    np.testing.assert_allclose(c, cosine_matrix(w[0] / 1e200), rtol=1e-12)
    assert 0 <= m["median_abs_cos"] <= 1 and 0 < m["w_sigma_ratio"] <= 1


def test_matrix_marks_diverged_members(cli_main, tmp_path):
    out = tmp_path / "mc"
    code, err = cli_main(
        "matrix", "configs/matrix_completion.toml", "--set", "model.depth=2",
        "--set", "train.lr=100", "--set", "train.steps=30", "--set", "train.snapshots=3",
        "--set", "train.linear_snapshots=2", "--set", "problem.n=6", "--set", "problem.rank=1",
        "--set", "problem.observed=20", "--set", "init.seeds=[0, 1]", "--out", str(out),
    )  # fmt: skip
    assert code == 0, err
    s = _summary(out)
    assert [m["status"] for m in s["members"]] == ["diverged", "diverged"]
    assert "nuclear_norm_baseline" in s  # the rest of the run is still written


def test_underflow_is_warned_and_marked(cli_main, tmp_path):
    out = tmp_path / "uf"
    code, err = cli_main(
        "train", "--set", "model.depth=4", "--set", "model.widths=[3, 3, 3]",
        "--set", "init.scales=[1e-110, 1e-1]", "--set", "train.steps=5", "--set", "data.n=8",
        "--set", "train.snapshots=2", "--set", "train.linear_snapshots=0", "--out", str(out),
    )  # fmt: skip
    assert code == 0, err
    assert "warning: init.scales = 1e-110: eps^3 = 1e-330 is below float64's smallest" in err
    assert [m["status"] for m in _summary(out)["members"]] == ["underflow", "ok"]


@pytest.mark.parametrize(
    "sets,text",
    [
        (["a.b.c=1"], "use sections [data], [model], [init], [train]"),
        (["model.widths=[50, 0]"], "model.widths = [50, 0]"),
        (["train.linear_snapshots=-1"], "error: train.linear_snapshots = -1: must be >= 0"),
        (["init.gamma=1e6"], "error: init.gamma = 1000000.0: eps = 0 is below 1.49e-154"),
    ],
)
def test_messages_are_literal_and_name_the_field(cli_main, tmp_path, sets, text):
    args = [a for s in sets for a in ("--set", s)]
    code, err = cli_main("train", *args, "--out", str(tmp_path / "o"))
    refused(code, err, text)
    assert not (tmp_path / "o").exists()
