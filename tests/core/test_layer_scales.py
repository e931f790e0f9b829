"""Per-layer init scales, the output scale kappa, the antisymmetric init, RD_k."""

import jax
import numpy as np
import pytest
from helpers import refused

from condensation import load_config
from condensation.core.activations import ACTIVATIONS
from condensation.core.init_scales import (
    boundary_distance,
    luo_coordinates,
    luo_layer_exponents,
    stds_from_gammas,
    two_layer_regime,
)
from condensation.core.network import forward, loss
from condensation.core.regime import classify, rd_over_snapshots, relative_distance, width_slope
from condensation.effective.system import build_system, solve, trajectory

TANH = ACTIVATIONS["tanh"]
SMALL = ["model.widths=[6, 6]", "data.n=12", "data.d=3"]


@pytest.mark.slow  # the default run stays under 10 minutes on 2 cores
def test_effective_T_star_from_unequal_layer_scales_matches_gd():
    # per-layer stds <= 1e-3, kappa != 1: GD's escape (loss halved) within 2 % of T*
    from condensation.commands.effective import run_effective, summary

    cfg = load_config(
        None,
        [
            *SMALL,
            "init.layer_scales=[1e-3, 4e-4, 8e-4]",
            "model.output_scale=1.5",
            "init.seeds=[0, 1]",
            "train.lr=0.25",
            "train.steps=9000",
            "train.snapshots=4",
            "train.linear_snapshots=0",
        ],
    )
    s = summary(run_effective(cfg, compare_gd=True))
    for m in s["members"]:
        assert m["T_star"] is not None and m["gd_escape_time"] is not None
        assert abs(m["gd_vs_T_star_rel_diff"]) < 0.02, m


@pytest.mark.parametrize("form", ["full", pytest.param("reduced", marks=pytest.mark.slow)])
@pytest.mark.parametrize("kappa", [0.5, 3.0])
def test_output_scale_multiplies_the_field_closed_form(form, kappa):
    # a = w = b = x0, |z| = 0.7: x' = kappa |z| x^2 (THEORY §8), T* = 1 / (kappa |z| x0)
    z, x0 = np.array([0.7]), 0.01
    net = [np.array([[x0]]), np.array([[x0]]), np.array([[x0]])]
    sol = solve(build_system(net, z, form=form, output_scale=kappa))
    assert sol.T_star == pytest.approx(1 / (kappa * 0.7 * x0), rel=1e-9)


@pytest.mark.slow  # a second diffrax compile; the closed form above covers kappa in default runs
def test_output_scale_two_layer_cosh_sinh(rng):
    # a' = kappa c, c' = kappa |z|^2 a: a(t) = a0 cosh(kappa |z| t) + c0/|z| sinh(...)
    kappa, z = 2.5, rng.standard_normal(3)
    zn = np.linalg.norm(z)
    b0, a0 = 1e-3 * rng.standard_normal((4, 3)), 1e-3 * rng.standard_normal((1, 4))
    sysm = build_system([b0, a0], z, output_scale=kappa)
    sol = solve(sysm)
    assert sol.growth_rate == pytest.approx(kappa * zn, rel=1e-6)
    times = np.linspace(0, 0.9 * sol.steps["t"][-1], 5)[1:]
    _, (_, a) = trajectory(sysm, sol, times)
    arg = kappa * zn * times[:, None]
    exact = a0[0] * np.cosh(arg) + (b0 @ z) / zn * np.sinh(arg)
    np.testing.assert_allclose(a[:, 0, :], exact, rtol=1e-9)


def test_output_scale_training_is_gd_on_kappa_f():
    # run_training with kappa equals plain GD on R = 1/2n sum (kappa f - y)^2, step by step
    from condensation.commands.train import run_training

    kappa, lr, steps = 1.7, 0.3, 25
    cfg = load_config(
        None,
        [*SMALL, f"model.output_scale={kappa}", "init.layer_gammas=[1.0, 0.5, 1.5]",
         f"train.lr={lr}", f"train.steps={steps}", "train.snapshots=2",
         "train.linear_snapshots=0"],
    )  # fmt: skip
    run = run_training(cfg)
    x, y, act = run.data.x, run.data.y, run.spec.activation.fn

    def r(p):
        return loss((*p[:-1], kappa * p[-1]), x, y, act)  # kappa W_L: f = kappa W_L sigma(...)

    grad = jax.jit(jax.value_and_grad(r))
    p = tuple(np.asarray(w[0]) for w in run.ensemble.params)
    l0, _ = grad(p)
    for _ in range(steps):
        _, g = grad(p)
        p = tuple(w - lr * gw for w, gw in zip(p, g))
    for k, w in enumerate(run.result.snapshots):
        np.testing.assert_allclose(w[0, -1], p[k], rtol=1e-10, atol=1e-16)
    assert run.result.snapshot_loss[0, 0] == pytest.approx(float(l0), rel=1e-12)
    assert run.result.snapshot_loss[0, -1] == pytest.approx(float(r(p)), rel=1e-10)
    assert run.result.snapshot_times[-1] == pytest.approx(steps * lr)


def test_layer_scales_and_gammas_set_each_layer_std(network_setup):
    cfg, _, _, ens = network_setup(["model.widths=[200, 200]", "init.layer_gammas=[1, 0.5, 1.5]"])
    assert cfg.layer_stds == pytest.approx(stds_from_gammas([1, 0.5, 1.5], 200))
    for w, s in zip(ens.params, cfg.layer_stds):
        assert np.std(w) == pytest.approx(s, rel=0.2)  # >= 200 draws per layer: 4 std errors
    _, _, _, ens2 = network_setup(["init.layer_scales=[1e-2, 1e-3, 1e-4]"])
    base = network_setup(["init.scale=1.0"])[3]
    for w, w1, s in zip(ens2.params, base.params, (1e-2, 1e-3, 1e-4)):
        np.testing.assert_allclose(w, s * w1, rtol=1e-15)  # same directions, per-layer std


@pytest.mark.parametrize("depth", [2, 3])
def test_antisymmetric_init_has_zero_output(network_setup, depth):
    widths = "[8]" if depth == 2 else "[5, 8]"
    _, data, spec, ens = network_setup(
        [f"model.depth={depth}", f"model.widths={widths}", "init.scale=0.3",
         "init.antisymmetric=true", "init.seeds=[0, 3]"]
    )  # fmt: skip
    for i in range(ens.size):
        p = [w[i] for w in ens.params]
        f = forward(p, data.x, spec.activation.fn)
        h = data.x
        for w in p[:-1]:
            h = np.tanh(h @ w.T)  # (n, m_{L-1})
        terms = np.abs(h) @ np.abs(p[-1][0])  # (n,) scale of the sum f = a . h
        assert np.all(np.abs(np.asarray(f)) <= 1e-14 * terms)  # zero up to rounding
        np.testing.assert_array_equal(p[-2][4:], p[-2][:4])
        np.testing.assert_array_equal(p[-1][:, 4:], -p[-1][:, :4])


@pytest.mark.parametrize(
    "overrides, field",
    [
        (["init.layer_scales=[1e-3, 1e-3]"], "init.layer_scales"),
        (["init.layer_scales=[1e-3, 0.0, 1e-3]"], "init.layer_scales"),
        (["init.layer_gammas=[1, 1]"], "init.layer_gammas"),
        (["model.output_scale=0"], "model.output_scale"),
        (["model.output_scale=-2"], "model.output_scale"),
        (["model.widths=[4, 5]", "init.antisymmetric=true"], "init.antisymmetric"),
    ],
)
def test_bad_layer_scales_are_one_line_exit_2(cli_main, tmp_path, overrides, field):
    args = [a for o in overrides for a in ("--set", o)]
    code, err = cli_main("train", *args, "--out", str(tmp_path / "r"))
    refused(code, err, field)
    assert not (tmp_path / "r").exists()


def test_layer_scales_and_scale_in_one_file_refused(cli_main, tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text("[init]\nscale = 1e-3\nlayer_scales = [1e-3, 1e-3, 1e-3]\n")
    code, err = cli_main("train", str(cfg), "--out", str(tmp_path / "r"))
    refused(code, err, "init.layer_scales", "init.scale")


def test_rd_closed_form_and_train_summary():
    from condensation.commands.train import member_summaries, run_training

    w0 = np.ones((1, 2, 3))
    np.testing.assert_allclose(relative_distance(3 * w0, w0), [2.0])
    snaps = [np.stack([w0[0], 2 * w0[0], 1.5 * w0[0]])[None]]  # (E=1, K=3, 2, 3)
    end, peak = rd_over_snapshots(snaps)
    np.testing.assert_allclose(end, [[0.5]])
    np.testing.assert_allclose(peak, [[1.0]])
    assert width_slope([10, 100], [1.0, 10.0]) == pytest.approx(1.0)
    assert classify(-0.5) == "linear" and classify(0.5) == "condensed"
    assert classify(0.0) == "critical" and classify(float("nan")) == "unclassified"
    cfg = load_config(None, [*SMALL, "train.steps=200", "train.lr=0.5", "init.scale=0.1"])
    run = run_training(cfg)
    m = member_summaries(run)[0]
    for k, w in enumerate(run.result.snapshots, start=1):
        rd = relative_distance(w[0], w[0, :1])
        assert m[f"rd_layer{k}_end"] == pytest.approx(rd[-1])
        assert m[f"rd_layer{k}_max"] == pytest.approx(np.max(rd))


def test_luo_coordinates_round_trip_and_theorem_regions():
    m = 300
    for gamma, gp in [(0.25, -1.0), (1.75, 1.0), (1.3, -0.2)]:
        for a_exp in (0.0, 0.5):
            g_w, g_a = luo_layer_exponents(gamma, gp, a_exp)
            got = luo_coordinates(m**-g_a, m**-g_w, m**a_exp, m)
            assert got == pytest.approx((gamma, gp), abs=1e-12)
    assert two_layer_regime(0.5, -1.0) == "linear"
    assert two_layer_regime(1.5, 1.0) == "linear"
    assert two_layer_regime(1.5, 0.0) == "condensed"
    assert two_layer_regime(1.0, -0.5) == "critical"
    assert two_layer_regime(1.5, 0.5) == "critical"
    assert boundary_distance(1.0, -0.5) == 0.0
    assert boundary_distance(1.5, -0.5) == pytest.approx(0.5)
    assert boundary_distance(1.0, 1.0) == pytest.approx(0.5**0.5)  # nearest: (1.5, 0.5)
    assert boundary_distance(0.5, 0.5) == pytest.approx(0.5**0.5)  # nearest: the corner (1, 0)
