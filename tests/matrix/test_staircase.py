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
from condensation.commands.stages import no_stage_notes
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


# ---- stages of a loss curve -------------------------------------------------------
def _staircase(t, times=(10.0, 20.0, 35.0), sizes=(4.0, 2.0, 0.5), width=0.3):
    """A loss falling by ``sizes`` at ``times`` (logistic steps) to 0.01."""
    steps = sum(s / (1 + np.exp(-(t - c) / width)) for c, s in zip(times, sizes))
    return sum(sizes) + 0.01 - steps


def test_stages_are_found_where_the_loss_drops():
    t = np.linspace(0, 50, 4001)
    stages = staircase.segment_stages(t, _staircase(t))
    assert len(stages) == 3
    for st, c in zip(stages, (10.0, 20.0, 35.0)):
        assert st["drop_start_t"] < c < st["drop_end_t"] < st["drop_start_t"] + 4
    assert [round(s["share"], 1) for s in stages] == [0.6, 0.3, 0.1]
    assert stages[1]["start_t"] == stages[0]["drop_end_t"]


@pytest.mark.parametrize(("time_unit", "loss_unit"), [(1.0, 1.0), (7.0, 1e-3), (0.01, 50.0)])
def test_stages_do_not_depend_on_the_units(time_unit, loss_unit):
    t = np.linspace(0, 50, 4001)
    ref = staircase.segment_stages(t, _staircase(t))
    got = staircase.segment_stages(t * time_unit, _staircase(t) * loss_unit)
    assert len(got) == len(ref)
    for a, b in zip(got, ref):
        assert a["drop_start_t"] == pytest.approx(b["drop_start_t"] * time_unit, rel=1e-9)
        assert a["loss_plateau"] == pytest.approx(b["loss_plateau"] * loss_unit, rel=1e-9)


def test_small_bumps_and_a_smooth_decay_are_not_stages():
    t = np.linspace(0, 50, 4001)
    bumpy = _staircase(t) * (1 + 1e-3 * np.sin(40 * t))  # GD's small oscillations
    assert len(staircase.segment_stages(t, bumpy)) == 3
    assert staircase.segment_stages(t, np.exp(-t / 20)) == []  # one smooth decay: no drop
    assert staircase.segment_stages(t, np.ones_like(t)) == []  # no fall
    assert staircase.segment_stages(t[:2], np.ones(2)) == []


@pytest.mark.slow
def test_a_depth_3_matrix_run_has_one_stage_per_mode(tmp_path):
    """Three modes, three drops, in the order of the singular values; each stage's
    change of X lies along its mode of M, and holds its closed-form half-time."""
    member = _measured(tmp_path, depth=3, eps=1e-2, lr=1e-2)
    stages = member["stages"]
    assert member["n_stages"] == 3
    assert [st["mode"] for st in stages] == [1, 2, 3]
    for st, half in zip(stages, member["half_times_closed_form"]):
        assert st["mode_overlap"] > 0.99 and st["direction_share"] > 0.99
        assert st["drop_start_t"] - 1.0 < half < st["drop_end_t"] + 1.0


def test_a_run_without_stages_says_so_in_one_line_and_one_with_stages_does_not(tmp_path):
    path = tmp_path / "diag.npz"
    np.savez(path, M=np.diag(S), mask=np.ones((3, 3)))
    notes = {}
    for steps in (100, 3000):  # t = 1 (on the first plateau), t = 30 (past mode 1's drop)
        cfg = load_matrix_config(
            None,
            [f"problem.path={str(path)!r}", "init.scheme='identity'", "init.scale=0.1",
             "train.lr=0.01", f"train.steps={steps}", "train.linear_snapshots=300"],
        )  # fmt: skip
        s = summary(run_matrix(cfg, t_star=False, baseline=False))
        notes[steps] = [n for n in s["notes"] if "stage" in n]
        assert (s["members"][0]["n_stages"] == 0) is (steps == 100)
    assert len(notes[100]) == 1 and "\n" not in notes[100][0]
    assert notes[100][0].startswith("member 0: no stage found") and "train.steps" in notes[100][0]
    assert notes[3000] == []
    assert no_stage_notes([{"n_stages": 2}, {"n_stages": 0}, {}]) == [
        no_stage_notes([{"n_stages": 0}])[0].replace("member 0", "member 1")
    ]
