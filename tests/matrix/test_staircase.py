"""THEORY §10's closed form of deep matrix factorisation: with M = diag(s_i) fully
observed and identity init eps I, mode i follows u' = L u^(2-2/L) (s_i - u) from
eps^L.  The exact half-time is checked against quadrature, the blow-up law and an
independent numpy Euler; the `matrix` runs' measured half-times against it."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.integrate import quad

from condensation.commands.matrix import run_matrix
from condensation.commands.matrix_summary import summary
from condensation.config.matrix import load_matrix_config
from condensation.core import staircase

S = (3.0, 2.0, 1.0)  # three distinct singular values


def _quad_half_time(s: float, u0: float, depth: int) -> float:
    """The half-time by quadrature in log u (the integrand is smooth there)."""
    p = 2.0 - 2.0 / depth
    f = lambda x: math.exp((1.0 - p) * x) / (depth * (s - math.exp(x)))  # noqa: E731
    return quad(f, math.log(u0), math.log(s / 2), limit=500, epsabs=0, epsrel=1e-12)[0]


@pytest.mark.parametrize("depth", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("eps", [0.3, 1e-2, 1e-4])
def test_half_time_equals_quadrature(depth, eps):
    for s in S:
        u0 = eps**depth
        if not u0 < s / 2:
            continue
        got = staircase.mode_half_time(s, u0, depth)
        assert got == pytest.approx(_quad_half_time(s, u0, depth), rel=1e-10)


@pytest.mark.parametrize("depth", [3, 4])
def test_half_time_tends_to_the_blow_up_law(depth):
    """(half-time / leading order - 1) shrinks like eps^(L-2) as eps -> 0."""
    ratios = [
        staircase.mode_half_time(2.0, eps**depth, depth) / staircase.blowup_time(2.0, eps, depth)
        for eps in (1e-2, 1e-3, 1e-4)
    ]
    errs = [abs(r - 1) for r in ratios]
    assert errs[2] < errs[1] < errs[0] < 0.2
    assert errs[0] / errs[1] == pytest.approx(10.0 ** (depth - 2), rel=0.2)


def test_half_time_matches_a_numpy_euler_of_the_mode():
    depth, s, eps, dt = 3, 2.0, 0.1, 1e-4
    u, t, p = eps**depth, 0.0, 2.0 - 2.0 / depth
    while u < s / 2:
        u, t = u + dt * depth * u**p * (s - u), t + dt
    assert t == pytest.approx(staircase.mode_half_time(s, eps**depth, depth), rel=2e-3)


def test_outside_the_setting_says_why_in_one_line():
    m = np.diag(S)
    assert isinstance(staircase.diagonal_modes(m, True, "identity", 3), np.ndarray)
    for args in [
        (m + 0.1, True, "identity", 3),
        (m[:2], True, "identity", 3),
        (-m, True, "identity", 3),
        (m, False, "identity", 3),
        (m, True, "balanced", 3),
        (m, True, "identity", 2),
    ]:
        why = staircase.diagonal_modes(*args)
        assert isinstance(why, str) and "\n" not in why and "closed form" in why


def _measured(tmp_path, depth: int, eps: float, lr: float, snapshots: int = 2000) -> dict:
    path = tmp_path / "diag.npz"
    np.savez(path, M=np.diag(S), mask=np.ones((3, 3)))
    t_half = max(staircase.mode_half_time(s, eps**depth, depth) for s in S)
    cfg = load_matrix_config(
        None,
        [
            f"problem.path={str(path)!r}",
            f"model.depth={depth}",
            "init.scheme='identity'",
            f"init.scale={eps}",
            f"train.lr={lr}",
            # past every half-time, until the last mode has settled (half_times
            # measures half of the final value)
            f"train.steps={int((1.2 * t_half + 8.0 / min(S)) / lr)}",
            "train.snapshots=10",
            f"train.linear_snapshots={snapshots}",
        ],
    )
    s = summary(run_matrix(cfg, t_star=False, baseline=False))
    assert s["closed_form"] == "applies"
    return s["members"][0]


def _check(member: dict, rel: float) -> None:
    measured, predicted = member["half_times"][:3], member["half_times_closed_form"][:3]
    assert None not in measured and None not in predicted, member
    np.testing.assert_allclose(measured, predicted, rtol=rel)


def test_measured_half_times_match_the_closed_form_quick(tmp_path):
    _check(_measured(tmp_path, depth=2, eps=1e-1, lr=1e-3, snapshots=600), rel=0.01)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("depth", "eps", "lr"),
    [(2, 1e-2, 1e-3), (2, 1e-3, 1e-3), (2, 1e-4, 1e-3), (3, 1e-2, 1e-2), (3, 1e-3, 1e-2),
     (4, 1e-1, 1e-2), (4, 3e-2, 1e-2), (4, 1e-2, 1e-2)],
)  # fmt: skip
def test_measured_half_times_match_the_closed_form(tmp_path, depth, eps, lr):
    _check(_measured(tmp_path, depth, eps, lr), rel=0.01)
