"""Issue #3's quantitative acceptance against real training (slow: run with -m slow)."""

import numpy as np
import pytest

from condensation import load_config
from condensation.commands.effective import run_effective
from condensation.commands.train import run_training
from condensation.effective.blowup import blowup_batch
from condensation.effective.system import build_system
from condensation.effective.theory import bounds_from_steps

pytestmark = pytest.mark.slow


def _escape_times(cfg):
    r = run_training(cfg).result
    assert np.all(r.escape_step >= 0), "some member never escaped: raise train.steps"
    return r.escape_time


def test_gd_escape_matches_effective_t_star():
    for eps, tol, steps in ((1e-3, 0.02, 12_000), (1e-4, 0.01, 100_000)):
        cfg = load_config(
            "configs/default.toml",
            [
                f"init.scale={eps}",
                f"train.steps={steps}",
                "train.snapshots=4",
                "train.linear_snapshots=0",
            ],
        )
        t_gd = _escape_times(cfg)[0]
        t_star = run_effective(cfg).solutions[0].T_star
        assert abs(t_gd - t_star) <= tol * t_star, (eps, t_gd, t_star)


def test_three_layer_escape_time_times_eps_is_constant():
    cfg = load_config(
        "configs/default.toml",
        [
            "init.scales=[1e-3, 3e-4, 1e-4]",
            "train.steps=100000",
            "train.snapshots=4",
            "train.linear_snapshots=0",
        ],
    )
    t = _escape_times(cfg) * np.array([1e-3, 3e-4, 1e-4])
    assert np.ptp(t) <= 0.03 * np.mean(t), t


def test_two_layer_escape_grows_by_log10_over_z_per_decade():
    cfg = load_config(
        "configs/default.toml",
        [
            "model.depth=2",
            "model.widths=[50]",
            "init.scales=[1e-2, 1e-3, 1e-4]",
            "train.steps=2000",
            "train.snapshots=4",
            "train.linear_snapshots=0",
        ],
    )
    t = _escape_times(cfg)
    z_norm = np.linalg.norm(run_training(cfg).data.z)
    per_decade = np.diff(t)
    assert np.all(np.abs(per_decade - np.log(10) / z_norm) <= 0.05 * np.log(10) / z_norm), (
        per_decade,
        np.log(10) / z_norm,
    )


def test_t_star_inside_bounds_for_200_random_initial_conditions():
    rng = np.random.default_rng(2024)
    m, d = 50, 5
    z = rng.standard_normal(d) * 0.4
    y0s = [np.zeros((200, m, d)), np.zeros((200, m, m)), np.zeros((200, 1, m))]
    for i in range(200):
        m1, m2 = rng.integers(1, m + 1, size=2)
        # zero padding is an invariant subspace of the effective flow: exact
        y0s[0][i, :m1] = rng.standard_normal((m1, d))
        y0s[1][i, :m2, :m1] = rng.standard_normal((m2, m1))
        y0s[2][i, 0, :m2] = rng.standard_normal(m2)
    y0s = [1e-3 * y for y in y0s]
    sysm = build_system([y[0] for y in y0s], z)
    sols = blowup_batch(sysm.fld, tuple(y0s), 2, (z, None, None), diag=_energy_only)
    n_blow = 0
    for sol in sols:
        if sol.blew_up:
            n_blow += 1
            _, lo, hi = bounds_from_steps(sol.steps, np.linalg.norm(z))
            assert lo * (1 - 1e-9) <= sol.T_star <= hi * (1 + 1e-9)
    assert n_blow >= 150


def _energy_only(y, args):
    from condensation.core.effective import energy

    return {"E": energy(y, args[0]), "rho": sum((w * w).sum() for w in y)}
