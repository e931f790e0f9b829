"""Condensation measured where it happens: plateau exit, peak alignment, the
per-constraint final-stage counts, and the bundled diabetes data (issue 14)."""

import json

import jax
import numpy as np

from condensation import load_config, train
from condensation.commands.train import member_summaries, run_training
from condensation.core import loss
from condensation.core.final_stage import angle_matrix, inner_product_margins
from condensation.core.metrics import abs_cos_to, top_direction_alignment
from condensation.data import load_dataset
from condensation.datasets import bundled_path


def _reference_history(params, x, y, act, lr, steps, z):
    """Plain GD one step at a time: loss_k and median |cos(b_j, z)| for k = 0..steps."""
    value_and_grad = jax.jit(jax.value_and_grad(loss), static_argnums=3)
    params, losses, cosines = tuple(params), [], []
    for _ in range(steps + 1):
        lk, gk = value_and_grad(params, x, y, act)
        losses.append(float(lk))
        cosines.append(float(np.median(abs_cos_to(np.asarray(params[0]), z))))
        params = tuple(p - lr * q for p, q in zip(params, gk))
    return np.array(losses), np.array(cosines)


def test_plateau_exit_and_peak_are_checked_every_step(network_setup):
    cfg, data, spec, ens = network_setup(
        ["model.widths=[8, 8]", "init.seeds=[0, 1]", "init.scale=0.02", "data.n=40"]
    )
    steps, lr, drop = 600, 0.1, 0.2
    r = train(
        ens.params, data.x, data.y, act=spec.activation.fn, lr=lr, steps=steps,
        snapshots=np.array([0, steps]), plateau_drop=drop,
    )  # fmt: skip
    for i in range(ens.size):
        losses, cos = _reference_history(
            [p[i] for p in ens.params], data.x, data.y, spec.activation.fn, lr, steps, data.z
        )
        k = int(np.argmax(losses <= (1 - drop) * losses[0]))
        assert 0 < k < steps and losses[k] <= (1 - drop) * losses[0]
        assert r.plateau_exit_step[i] == k
        np.testing.assert_allclose(r.peak_median_abs_cos[i], cos.max(), rtol=0, atol=1e-10)
        assert r.peak_median_abs_cos_step[i] == int(np.argmax(cos))
        assert 0 < r.peak_median_abs_cos_step[i] < steps  # an interior peak, not an end


def test_violation_counts_are_those_of_the_stored_state(network_setup):
    cfg = load_config(
        None,
        [
            "model.widths=[12, 10]", "init.scale=0.05", "data.n=40", "train.steps=400",
            "train.snapshots=2", "train.linear_snapshots=0",
        ],
    )  # fmt: skip
    run = run_training(cfg)
    m = member_summaries(run)[0]
    b, w, a = (np.asarray(p[0]) for p in run.result.plateau_exit_params)
    c = b @ run.data.z
    # independent count, numpy: neurons with s_j v_j <= 0; pairs i < j with s_i s_j <W_i, W_j> < 0
    s = np.sign(c)
    n_inner = int(np.sum(s * (w.T @ a[0]) <= 0))
    n_pairs = int(sum(s[i] * s[j] * (w[:, i] @ w[:, j]) < 0 for i in range(12) for j in range(i)))
    assert m["final_stage_inner_violations_at_plateau_exit"] == n_inner
    assert m["final_stage_angle_violations_at_plateau_exit"] == n_pairs
    assert n_inner == int(np.sum(np.asarray(inner_product_margins(a[0], w, c)) <= 0))
    assert n_pairs == int(np.sum(np.triu(np.asarray(angle_matrix(w, c)) < 0, 1)))
    assert m["plateau_exit_time"] <= m["escape_time"]


def test_top_direction_alignment_closed_forms(rng):
    u = rng.standard_normal(6)
    rows = rng.standard_normal(9)[:, None] * u[None, :]  # rank one: every row on +-u
    assert abs(top_direction_alignment(rows) - 1.0) < 1e-12
    # two orthogonal directions, 5 rows on e1 (longer) and 4 on e2: the median row is on e1
    rows = np.concatenate([np.tile([3.0, 0.0], (5, 1)), np.tile([0.0, 1.0], (4, 1))])
    assert top_direction_alignment(rows) == 1.0
    rows[:, 0] = 0.0
    rows[:5, 1] = 0.0  # five zero rows, four on e2: median |cos| of the nine is 0
    assert top_direction_alignment(rows) == 0.0


def test_plateau_drop_out_of_range_is_one_line_exit_2(cli_main, tmp_path):
    code, err = cli_main(
        "train", "--set", "train.plateau_drop=1.5", "--out", str(tmp_path / "r")
    )
    assert code == 2 and "train.plateau_drop" in err and "1.5" in err
    assert not (tmp_path / "r").exists()


def test_bundled_diabetes_is_standardised_and_loads_by_name_or_path():
    by_name = load_dataset(load_config(None, ["data.dataset='diabetes'"]).data)
    by_path = load_dataset(load_config(None, [f"data.path='{bundled_path('diabetes')}'"]).data)
    assert by_name.x.shape == (442, 10) and by_name.y.shape == (442,)
    np.testing.assert_array_equal(by_name.x, by_path.x)
    np.testing.assert_allclose(by_name.x.mean(0), 0, atol=1e-12)
    np.testing.assert_allclose(by_name.x.std(0), 1, atol=1e-12)
    np.testing.assert_allclose([by_name.y.mean(), by_name.y.std()], [0, 1], atol=1e-12)


def test_diabetes_condenses_at_the_plateau_exit(cli_main, tmp_path):
    """Issue 14 acceptance: measured at the plateau exit and at its peak, the
    first layer is condensed on z; at the loss-halved escape it has turned away."""
    out = tmp_path / "diab"
    code, _ = cli_main(
        "train", "--set", "data.dataset='diabetes'", "--set", "model.widths=[50, 50]",
        "--set", "train.lr=0.05", "--set", "init.scale=1e-3", "--set", "train.steps=3000",
        "--set", "train.snapshots=5", "--set", "train.linear_snapshots=10", "--out", str(out),
    )  # fmt: skip
    assert code == 0
    m = json.loads((out / "summary.json").read_text())["members"][0]
    assert m["median_abs_cos_at_plateau_exit"] >= 0.99
    assert m["peak_median_abs_cos"] >= 0.995
    assert m["plateau_exit_time"] <= m["peak_median_abs_cos_time"] <= m["escape_time"] + 50
    assert m["median_abs_cos"] < 0.95  # at the escape: the measurement the issue corrects
    assert m["median_abs_cos_top_direction_at_escape"] >= 0.99  # still rank one there
