"""The open-question experiments (issue 14): closed-form pieces, the quick runs'
invariants, and (slow) the default runs' acceptance numbers."""

import json

import numpy as np
import pytest

from condensation.effective.theory import CRITERION_BLOWS_UP, blowup_criterion
from condensation.experiments.blowup_census import family_states, pad_scalar
from condensation.experiments.blowup_rates import bound_ratio
from condensation.experiments.condensation_notions import notions_at
from condensation.experiments.final_stage_necessity import entry_and_exits
from condensation.experiments.small_layers import initial_params
from condensation.reproduction import reproduce, run_experiment


def test_entry_and_exits_counts_leaving_after_first_entry():
    inside = np.array([False, False, True, True, False, True, False, False, True])
    assert entry_and_exits(inside) == (2, 2)
    assert entry_and_exits(np.zeros(4, dtype=bool)) == (-1, 0)
    assert entry_and_exits(np.array([True, True])) == (0, 0)


def test_notions_at_closed_forms(rng):
    z = np.array([1.0, 0.0, 0.0])
    # condensed: rows of B on +-z, far larger than at t = 0, W = u v^T rank one
    b = np.outer([5e3, -4e3, 6e3, 7e3], z) + 1e-3 * rng.standard_normal((4, 3))
    w = np.outer(rng.standard_normal(3), rng.standard_normal(4))
    assert all(notions_at(b, w, z, c0_max=1.0).values())
    # generic: no notion holds
    b, w = rng.standard_normal((4, 3)), rng.standard_normal((3, 4))
    assert not any(notions_at(b, w, z, c0_max=1.0).values())
    # aligned with z but not diverged: every notion but the pointwise one
    got = notions_at(np.outer([2.0, -1.0, 3.0, 1.5], z), np.outer([1.0, 2.0, 0.5], [1, 1, 1, 1]),
                     z, c0_max=1.0)  # fmt: skip
    assert got == {"pointwise": False, "min_cos": True, "rank": True, "one_cluster": True,
                   "sigma_ratio": True}  # fmt: skip


def test_energy_bound_is_attained_on_the_limit_profile():
    # on E = k rho^(3/2) (the balanced, aligned limit profile), rho' = 6E integrates to
    # rho = (rho0^(-1/2) - 3k t)^(-2), and the energy bound holds with equality
    zn = 1.7
    k = zn * 3**-1.5
    rho0 = 2.0
    t_b = rho0**-0.5 / (3 * k)
    t = np.linspace(0, 0.99 * t_b, 50)
    rho = (rho0**-0.5 - 3 * k * t) ** -2
    np.testing.assert_allclose(bound_ratio(t, k * rho**1.5, rho, zn), 1.0, rtol=1e-12)
    half = bound_ratio(t, 0.5 * k * rho**1.5, rho, zn)
    np.testing.assert_allclose(half, 0.5, rtol=1e-12)
    assert np.all(np.isnan(bound_ratio(t, -rho, rho, zn)))  # never E > 0: no bound


def test_initial_params_scale_only_the_small_layers():
    shapes = [(4, 3), (5, 4), (1, 5)]
    eps = np.array([1e-3, 1e-2])
    for case, large in (("all", None), ("output", 2), ("input", 0)):
        ps = initial_params(case, eps, shapes, seed=3, gain=1.0)
        for k, w in enumerate(ps):
            if k == large:  # the O(1) layer is the same for every eps, N(0, 1/fan_in)
                np.testing.assert_array_equal(w[0], w[1])
            else:  # a small layer is eps times one draw
                np.testing.assert_allclose(w[1] / eps[1], w[0] / eps[0], rtol=1e-12)


def test_near_balanced_family_is_near_the_balanced_point(rng):
    (b, w, a), = family_states("near-balanced", 1, 5, 3, rng, noise=0.0)
    a = a[0]
    np.testing.assert_allclose(np.outer(a, a), w @ w.T, atol=1e-12)  # a a^T = W W^T
    np.testing.assert_allclose(w.T @ w, b @ b.T, atol=1e-12)  # W^T W = B B^T


def test_scalar_criterion_region_and_padding():
    # scalar |z| = 1: the criterion certifies exactly |w| < min(|a|, |c|)
    for a, w, c, certified in ((1.0, 0.5, 2.0, True), (1.0, -1.0, 2.0, False),
                               (0.4, 0.5, 2.0, False), (1.0, 0.5, 0.3, False)):  # fmt: skip
        b, wm, am = pad_scalar((np.array([[c]]), np.array([[w]]), np.array([[a]])), 4, 3)
        z = np.array([1.0, 0.0, 0.0])
        got = blowup_criterion(am[0], wm, b @ z, 1.0) == CRITERION_BLOWS_UP
        assert got == certified
        assert b @ z @ (wm.T @ am[0]) == pytest.approx(a * w * c)  # E of the padded network


@pytest.mark.slow  # about 45 s of CPU (three compiled solvers and GD loops)
def test_open_question_experiments_quick(tmp_path):
    """Quick runs: the laws, the theorem's consequences (no certified trajectory
    fails to blow up; nobody leaves the final-stage set) and the report section."""
    out = tmp_path / "oq"
    names = ["small-layers", "blowup-census", "final-stage-necessity", "condensation-notions",
             "blowup-rates"]  # fmt: skip
    reproduce(out, quick=True, only=names)
    s = json.loads((out / "summary.json").read_text())
    h = s["headline"]
    sl = h["small-layers"]
    assert -1.05 <= sl["small_layers.all_small_gd_slope"] <= -0.95
    assert abs(sl["small_layers.output_large_gd_increase_relative_error"]) < 0.1
    assert abs(sl["small_layers.output_large_effective_increase_relative_error"]) < 0.01
    assert abs(sl["small_layers.input_large_gd_increase_relative_error"]) < 0.1
    bc = h["blowup-census"]
    assert bc["blowup_census.n_certified_not_blow_up"] == 0
    assert bc["blowup_census.n_trajectories"] == sum(
        bc[f"blowup_census.{f}_n"] for f in ("equal", "unequal", "near_balanced",
                                             "near_criterion", "near_line"))  # fmt: skip
    assert bc["blowup_census.map_n_certified_not_blow_up"] == 0
    fs = h["final-stage-necessity"]
    assert fs["final_stage_necessity.n_trajectories"] == 32
    assert fs["final_stage_necessity.n_exits_final_stage"] == 0
    cn = h["condensation-notions"]
    for k in ("pointwise", "min_cos", "rank", "one_cluster", "sigma_ratio"):
        assert cn[f"condensation_notions.{k}_n_reached"] == cn["condensation_notions.n_blow_up"]
    br = h["blowup-rates"]
    assert br["blowup_rates.rho_tau2_min_over_all"] >= 3.0 * (1 - 1e-6)  # rho >= 3/(|z| tau)^2
    assert br["blowup_rates.energy_bound_ratio_max_over_all"] <= 1.0 + 1e-9
    assert br["blowup_rates.E_tau3_final_max_rel_dev"] < 1e-4
    page = (out / "report.html").read_text()
    assert "Open questions" in page


@pytest.mark.slow
def test_small_layers_acceptance(tmp_path):
    h = run_experiment("small-layers", tmp_path / "sl")["headline"]
    assert -1.05 <= h["small_layers.all_small_gd_slope"] <= -0.95
    assert h["small_layers.all_small_n_not_escaped"] == 0
    assert h["small_layers.output_large_n_not_escaped"] == 0
    assert abs(h["small_layers.output_large_gd_increase_relative_error"]) < 0.1


@pytest.mark.slow
def test_census_and_necessity_use_200_trajectories(tmp_path):
    h = run_experiment("blowup-census", tmp_path / "bc")["headline"]
    assert h["blowup_census.n_trajectories"] >= 200
    assert h["blowup_census.n_certified_not_blow_up"] == 0
    h = run_experiment("final-stage-necessity", tmp_path / "fs")["headline"]
    assert h["final_stage_necessity.n_trajectories"] >= 200
    assert h["final_stage_necessity.n_exits_final_stage"] == 0
