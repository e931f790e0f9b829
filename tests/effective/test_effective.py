"""Effective dynamics: closed forms, invariants, bounds, forms agreeing, scaling."""

import numpy as np
import pytest
from scipy.integrate import solve_ivp

from condensation import InputError
from condensation.core.activations import ACTIVATIONS
from condensation.effective.blowup import Tolerances, blowup
from condensation.effective.system import (
    RegimeWarning,
    build_system,
    solve,
    solve_batch,
    trajectory,
)
from condensation.effective.theory import CRITERION_CANNOT_TELL, blowup_criterion, bounds_from_steps

TANH = ACTIVATIONS["tanh"]


def _scalar_net(b, w, a):
    """One neuron per layer on 1-D input: B (1, 1), W (1, 1), a (1, 1)."""
    return [np.array([[b]]), np.array([[w]]), np.array([[a]])]


@pytest.mark.parametrize("form", ["full", "reduced"])
def test_closed_form_x_squared(form):
    # a = w = c/|z| = x0 reduces the system to x' = |z| x^2, T* = 1/(|z| x0)
    z, x0 = np.array([0.7]), 0.01
    sysm = build_system(_scalar_net(x0, x0, x0), z, form=form)
    sol = solve(sysm)
    assert sol.status == "blow-up"
    assert sol.T_star == pytest.approx(1 / (0.7 * x0), rel=1e-9)
    assert sol.T_star_rel_error < 1e-9


def test_scalar_counterexample_converges_to_equilibrium():
    # THEORY §4: |z| = 1, a0 = 1, w0 = -1, c0 = 2 never blows up
    params = _scalar_net(2.0, -1.0, 1.0)
    sol = solve(build_system(params, np.array([1.0])))
    assert sol.status == "equilibrium" and not sol.blew_up
    assert blowup_criterion([1.0], [[-1.0]], [2.0], 1.0) == CRITERION_CANNOT_TELL
    # it converges to a = w = 0, c = sqrt(3) (conservation laws: a^2 = w^2, c^2 - w^2 = 3)
    t, (b, w, a) = trajectory(build_system(params, np.array([1.0])), sol, [sol.steps["t"][-1]])
    assert abs(a[0, 0, 0]) < 1e-6 and b[0, 0, 0] == pytest.approx(np.sqrt(3), rel=1e-6)


def test_two_layer_matches_cosh_sinh(rng):
    d, m = 3, 4
    z = rng.standard_normal(d)
    zn = np.linalg.norm(z)
    b0, a0 = 1e-3 * rng.standard_normal((m, d)), 1e-3 * rng.standard_normal((1, m))
    sysm = build_system([b0, a0], z)
    sol = solve(sysm)
    assert sol.status == "norm-reached" and not sol.blew_up
    assert sol.growth_rate == pytest.approx(zn, rel=1e-6)
    times = np.linspace(0, 0.9 * sol.steps["t"][-1], 7)[1:]
    t, (b, a) = trajectory(sysm, sol, times)
    c0 = b0 @ z
    ch, sh = np.cosh(zn * t)[:, None], np.sinh(zn * t)[:, None]
    a_exact = a0[0] * ch + c0 / zn * sh
    int_a = a0[0] * sh / zn + c0 / zn**2 * (ch - 1)
    b_exact = b0[None] + int_a[:, :, None] * z[None, None, :]
    scale = np.linalg.norm(a_exact, axis=1)
    np.testing.assert_array_less(np.linalg.norm(a[:, 0, :] - a_exact, axis=1) / scale, 1e-10)
    np.testing.assert_array_less(
        np.linalg.norm(b - b_exact, axis=(1, 2)) / np.linalg.norm(b_exact, axis=(1, 2)), 1e-10
    )


def _random_three_layer(rng, m1, m2, d=5, eps=1e-3):
    return [
        eps * rng.standard_normal((m1, d)),
        eps * rng.standard_normal((m2, m1)),
        eps * rng.standard_normal((1, m2)),
    ]


@pytest.mark.slow  # the default run stays under 10 minutes on 2 cores
def test_forms_agree_and_invariants_hold(rng):
    z = rng.standard_normal(5) * 0.3
    params = _random_three_layer(rng, 12, 9)
    sols = {f: solve(build_system(params, z, form=f)) for f in ("full", "reduced", "spectral")}
    full, red = sols["full"], sols["reduced"]
    assert full.blew_up and red.blew_up and sols["spectral"].blew_up
    assert abs(full.T_star - red.T_star) <= 1e-10 * full.T_star
    assert abs(full.T_star - sols["spectral"].T_star) <= 1e-10 * full.T_star
    # the forms agree on the trajectory too, not only on T*
    times = full.T_star * np.array([0.5, 0.9, 0.999])
    _, p_full = trajectory(build_system(params, z, form="full"), full, times)
    _, p_red = trajectory(build_system(params, z, form="reduced"), red, times)
    for a, b in zip(p_full, p_red):
        # the two solves land on slightly different times; compare relative to size
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6 * np.max(np.abs(a)))
    assert sols["spectral"].steps["E"][0] == pytest.approx(full.steps["E"][0], rel=1e-12)
    assert sols["spectral"].steps["rho"][0] == pytest.approx(full.steps["rho"][0], rel=1e-12)
    for sol in (full, red):
        st = sol.steps
        assert st["rho"][-1] / st["rho"][0] > 1e8
        assert np.max(st["law_drift"]) <= 1e-9
        assert np.max(st["matrix_law_drift"]) <= 1e-9
        lo, hi = bounds_from_steps(st, np.linalg.norm(z))[1:]
        assert lo <= sol.T_star <= hi


def test_against_scipy_reference(rng):
    z = rng.standard_normal(5) * 0.3
    b, w, a = _random_three_layer(rng, 4, 3, eps=0.05)
    sol = solve(build_system([b, w, a], z))

    def rhs(t, y):
        a_, w_, b_ = y[:3], y[3:15].reshape(3, 4), y[15:].reshape(4, 5)
        c = b_ @ z
        return np.concatenate([w_ @ c, np.outer(a_, c).ravel(), np.outer(w_.T @ a_, z).ravel()])

    y0 = np.concatenate([a[0], w.ravel(), b.ravel()])
    # scipy at fixed times well before T*: same trajectory
    t_eval = sol.T_star * np.array([0.3, 0.9, 0.99])
    ref = solve_ivp(
        rhs, (0, t_eval[-1]), y0, method="DOP853", rtol=1e-12, atol=1e-16, t_eval=t_eval
    )
    t, (bt, wt, at) = trajectory(build_system([b, w, a], z), sol, t_eval)
    for i in range(3):
        ours = np.concatenate([at[i, 0], wt[i].ravel(), bt[i].ravel()])
        ref_i = solve_ivp(rhs, (0, t[i]), y0, method="DOP853", rtol=1e-12, atol=1e-16).y[:, -1]
        assert np.linalg.norm(ours - ref_i) <= 1e-7 * np.linalg.norm(ref_i)
    assert ref.success


def test_depth_four_scales_as_eps_minus_two(rng):
    z = rng.standard_normal(3) * 0.5
    base = [rng.standard_normal(s) for s in ((4, 3), (4, 4), (3, 4), (1, 3))]
    t = [solve(build_system([e * p for p in base], z)).T_star for e in (1e-2, 1e-3)]
    assert np.isfinite(t).all()
    assert t[1] / t[0] == pytest.approx(100.0, rel=1e-8)


def test_batch_equals_loop(rng):
    z = rng.standard_normal(5) * 0.3
    systems = [build_system(_random_three_layer(rng, 12, 9, eps=e), z) for e in (1e-3, 1e-5, 3e-2)]
    batch = solve_batch(systems)
    for s, b in zip(systems, batch):
        one = solve(s)
        assert b.T_star == pytest.approx(one.T_star, rel=1e-12)


def test_bad_input_refused():
    params = _scalar_net(0.01, 0.01, 0.01)
    for name in ("relu", "xtanh"):
        with pytest.raises(InputError, match="sigma"):
            build_system(params, np.array([1.0]), activation=ACTIVATIONS[name])
    nodrive = solve(build_system(params, np.array([0.0])))
    assert nodrive.status == "no-drive" and not nodrive.blew_up


def test_regime_warning():
    from condensation.effective.system import warn_if_large

    x = np.linspace(-1, 1, 10)[:, None]
    with pytest.warns(RegimeWarning, match="x the targets"):
        warn_if_large(_scalar_net(3.0, 3.0, 3.0), x, x[:, 0], TANH.fn)


def test_blowup_x_squared_generic():
    def sq(y, args):
        return y * y

    sol = blowup(sq, np.array([0.25]), 2, tol=Tolerances())
    assert sol.T_star == pytest.approx(4.0, rel=1e-12)
    assert [c["T_star_est"] for c in sol.convergence][-1] == pytest.approx(4.0, rel=1e-12)


def test_uncorrelated_labels_are_reported_as_no_drive():
    from condensation import load_config
    from condensation.commands.effective import run_effective, summary

    # an even target on a symmetric grid: z = mean(y x) = 0 up to rounding
    run = run_effective(load_config(None, ["data.dataset='gauss'", "model.widths=[4, 3]"]))
    (m,) = summary(run)["members"]
    assert m["status"] == "no-drive" and m["blew_up"] is False and m["T_star"] is None
