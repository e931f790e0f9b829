"""The compiled GD engine: ensembles, escape step, divergence, dtypes, paper example."""

import importlib

import jax
import numpy as np
import pytest

from condensation import load_config, train
from condensation.commands.train import member_summaries, run_training
from condensation.jax_setup import cpu_device_count
from condensation.training.network import snapshot_steps


def test_ensemble_equals_separate_runs(network_setup):
    cfg, data, spec, ens = network_setup(
        [
            "model.widths=[12, 9]",
            "init.seeds=[0, 1, 2]",
            "init.scales=[0.1, 0.03]",
            "train.steps=400",
            "data.n=30",
        ]
    )
    kw = dict(act=spec.activation.fn, lr=0.1, steps=400)
    together = train(ens.params, data.x, data.y, **kw)
    for i in range(ens.size):
        alone = train([p[i : i + 1] for p in ens.params], data.x, data.y, **kw)
        for a, b in zip(together.snapshots, alone.snapshots):
            np.testing.assert_allclose(a[i], b[0], rtol=0, atol=1e-12)
        assert together.escape_step[i] == alone.escape_step[0]
        assert together.final_stage_step[i] == alone.final_stage_step[0]


def test_escape_step_is_checked_every_step(trained_and_reference):
    overrides = ["model.widths=[8, 8]", "init.scale=0.05", "data.n=40"]
    steps = 3000
    r, k = trained_and_reference(overrides, steps, 0.1, lambda params, lk, l0, data: lk <= l0 / 2)
    assert 0 < k < steps
    assert r.escape_step[0] == k


def test_divergence_marks_one_member_only(network_setup):
    cfg, data, spec, ens = network_setup(
        [
            "model.activation='linear'",
            "model.widths=[10, 10]",
            "init.scales=[0.01, 5.0]",
            "train.steps=300",
            "data.n=30",
        ]
    )
    r = train(ens.params, data.x, data.y, act=spec.activation.fn, lr=0.5, steps=300)
    alone = train(
        [p[:1] for p in ens.params], data.x, data.y, act=spec.activation.fn, lr=0.5, steps=300
    )
    assert r.diverged_step[0] == -1 and r.diverged_step[1] > 0
    assert all(np.all(np.isfinite(w)) for w in r.snapshots)  # frozen at last finite params
    np.testing.assert_allclose(r.snapshots[0][0], alone.snapshots[0][0], atol=1e-12, rtol=0)


def test_members_spread_over_devices_equal_one_device(monkeypatch, spread_always, network_setup):
    """Three members (one diverging) padded onto two devices give what one device
    gives: the same snapshots, escape, divergence and final-stage steps."""
    T = importlib.import_module("condensation.training.network")  # the module, not the function
    assert len(jax.devices()) >= 2  # conftest asks for two CPU devices
    assert T.member_mesh(3).size == 2 and T.member_mesh(1) is None
    cfg, data, spec, ens = network_setup(
        [
            "model.widths=[10, 10]",
            "init.scales=[0.01, 0.3, 8.0]",
            "train.steps=300",
            "data.n=30",
        ]
    )
    kw = dict(act=spec.activation.fn, lr=2.0, steps=300)
    spread = train(ens.params, data.x, data.y, **kw)
    monkeypatch.setattr(T, "member_mesh", lambda n, flops=None: None)
    one = train(ens.params, data.x, data.y, **kw)
    assert spread.diverged_step[2] > 0 and spread.diverged_step[0] == -1
    for field in ("escape_step", "diverged_step", "final_stage_step"):
        np.testing.assert_array_equal(getattr(spread, field), getattr(one, field))
    for a, b in zip(spread.snapshots + spread.escape_params, one.snapshots + one.escape_params):
        assert a.shape == b.shape
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-12)
    np.testing.assert_allclose(spread.snapshot_loss, one.snapshot_loss, rtol=0, atol=1e-12)


def test_small_jobs_stay_on_one_device():
    from condensation.training.devices import SPREAD_MIN_FLOPS, member_mesh

    assert member_mesh(3, flops=0.5 * SPREAD_MIN_FLOPS) is None
    assert member_mesh(3, flops=2 * SPREAD_MIN_FLOPS).size == 2
    assert member_mesh(1, flops=2 * SPREAD_MIN_FLOPS) is None


@pytest.mark.parametrize("raw", ["0", "-2", "two"])
def test_bad_cpu_device_count_is_named(monkeypatch, raw):
    monkeypatch.setenv("CONDENSATION_CPU_DEVICES", raw)
    with pytest.raises(ValueError, match="CONDENSATION_CPU_DEVICES"):
        cpu_device_count()


def test_float32_matches_float64_escape_step(network_setup):
    cfg, data, spec, ens = network_setup(["train.steps=10000"])
    kw = dict(act=spec.activation.fn, lr=0.05, steps=10000, snapshots=np.array([0, 10000]))
    e64 = train(ens.params, data.x, data.y, dtype="float64", **kw).escape_step[0]
    e32 = train(ens.params, data.x, data.y, dtype="float32", **kw).escape_step[0]
    assert e64 > 0
    assert abs(e32 - e64) <= 0.01 * e64


def test_default_example_condenses_at_escape():
    """Issue #2 acceptance: the default three-layer example condenses on its plateau."""
    cfg = load_config("configs/default.toml")
    run = run_training(cfg)
    (m,) = member_summaries(run)
    assert m["status"] == "ok" and m["escape_time"] is not None
    assert m["frac_abs_cos_above_0_95"] >= 0.9
    assert m["w_sigma_ratio"] < 0.1
    # the final-stage condition is met just before the loss leaves its plateau
    assert abs(m["final_stage_entry_time"] - m["escape_time"]) <= 0.02 * m["escape_time"]


def test_snapshot_steps_cover_the_run():
    s = snapshot_steps(1000, 10, 4)
    assert s[0] == 0 and s[-1] == 1000 and np.all(np.diff(s) > 0)
    assert {250, 500, 750}.issubset(set(s.tolist()))
