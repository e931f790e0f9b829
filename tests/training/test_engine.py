"""The one training engine (condensation.training.engine): every trainer plugs into
one compiled loop driver, and the rules it owns (divergence freeze, late escape and
plateau exit, checkpoint and resume) hold for the network and the matrix trainer
alike."""

from __future__ import annotations

import re
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest
from helpers import net_data, net_params

from condensation import matrix as mx
from condensation.core.activations import get_activation
from condensation.matrix.training import factor_shapes, init_factors, train_factorisation
from condensation.store.checkpoint import Checkpoint
from condensation.training import engine
from condensation.training.engine import gd, tracks
from condensation.training.network import train

SRC = Path(__file__).resolve().parents[2] / "src" / "condensation"
LOOPS = re.compile(r"\b(while_loop|fori_loop|lax\.scan)\(")


def test_one_step_loop_in_the_training_packages():
    """``grep``: the only compiled step loop of training/ and matrix/ is the engine's."""
    found = {
        str(p.relative_to(SRC))
        for folder in ("training", "matrix")
        for p in (SRC / folder).rglob("*.py")
        if LOOPS.search(p.read_text())
    }
    assert found == {"training/engine/loop.py"}


def _matrix(depth=3, scales=(0.1, 0.1), n=6):
    pb = mx.make_problem(mx.ProblemConfig(n=n, rank=2, observed=24, seed=0))
    shapes = factor_shapes(n, n, depth, n)
    per = [init_factors(shapes, "gaussian", eps, i) for i, eps in enumerate(scales)]
    return pb, tuple(np.stack([p[k] for p in per]) for k in range(depth))


@pytest.fixture
def spy(monkeypatch):
    """The models the engine's driver ran, by class name."""
    seen = []
    real = gd.run_interval

    def counting(carry, shared, start, stop, *, stepper, mesh):
        seen.append(type(stepper.model).__name__)
        return real(carry, shared, start, stop, stepper=stepper, mesh=mesh)

    monkeypatch.setattr(gd, "run_interval", counting)
    return seen


def test_network_and_matrix_trainers_run_through_the_one_driver(spy):
    x, y = net_data()
    train(net_params([0.1]), x, y, act=jnp.tanh, lr=0.2, steps=20, snapshots=np.array([0, 20]))
    pb, p0 = _matrix()
    train_factorisation(pb, p0, lr=0.05, steps=20, snapshots=np.array([0, 20]))
    assert set(spy) == {"NetworkModel", "MatrixModel"}


def test_tolerance_and_depth2_map_use_the_engine_loop(monkeypatch):
    """Both trace the engine's ``iterate`` (fresh shapes force a trace)."""
    from condensation.core.second_order import data_moments, taylor_coefficients
    from condensation.training import ff_flows, tolerance

    calls = []
    real = engine.iterate

    def counting(*args, **kw):
        calls.append(1)
        return real(*args, **kw)

    monkeypatch.setattr(tolerance, "iterate", counting)
    monkeypatch.setattr(ff_flows, "iterate", counting)
    x, y = net_data(n=17, d=2)
    tolerance.train_to_tolerance(net_params([0.3], m=5, d=2), x, y, act=jnp.tanh, max_steps=5)
    assert len(calls) == 1
    mom = data_moments(x, y, taylor_coefficients(jnp.tanh))
    ff_flows.SecondOrderMap([1e-3 * np.ones((7, 2)), 1e-3 * np.ones((1, 7))], mom, 0.1).at([3])
    assert len(calls) == 2


def test_matrix_divergence_freezes_one_member_and_leaves_the_other():
    pb, p0 = _matrix(scales=(0.1, 3.0))
    kw = dict(lr=0.05, steps=60, snapshots=np.array([0, 30, 60]))
    both = train_factorisation(pb, p0, **kw)
    alone = train_factorisation(pb, tuple(p[:1] for p in p0), **kw)
    assert both.diverged_step[0] == -1 and both.diverged_step[1] > 0
    assert all(np.all(np.isfinite(w)) for w in both.final_params)  # frozen, finite
    np.testing.assert_allclose(
        both.final_params[0][0], alone.final_params[0][0], rtol=0, atol=1e-12
    )
    assert both.escape_step[0] == alone.escape_step[0]


def _interrupted_then_resumed(run, tmp_path, monkeypatch):
    """``run(checkpoint, progress)`` stopped by an interrupt after its first interval,
    then resumed from the checkpoint to the end."""
    monkeypatch.setenv("CONDENSATION_CHECKPOINT_EVERY", "0")
    d = tmp_path / "ck"

    def stop_once(step):
        if step > 0:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(Checkpoint(d, "k"), stop_once)
    reached = []
    out = run(Checkpoint(d, "k", resume=True), reached.append)
    assert reached[0] > 0  # it started from the saved interval, not from step 0
    return out


def _same(a, b):
    for name in a.__dataclass_fields__:
        u, v = getattr(a, name), getattr(b, name)
        if isinstance(u, dict):
            assert u.keys() == v.keys()
            for k in u:
                np.testing.assert_array_equal(u[k], v[k], err_msg=f"{name}.{k}")
        elif isinstance(u, list):
            for i, (p, q) in enumerate(zip(u, v)):
                np.testing.assert_array_equal(p, q, err_msg=f"{name}[{i}]")
        elif u is not None:
            np.testing.assert_array_equal(u, v, err_msg=name)


def test_network_resume_equals_uninterrupted(tmp_path, monkeypatch):
    x, y = net_data()
    p0 = net_params([0.05, 0.3])
    kw = dict(act=jnp.tanh, lr=0.3, steps=120, snapshots=np.array([0, 10, 40, 120]))
    whole = train(p0, x, y, **kw)
    resumed = _interrupted_then_resumed(
        lambda ck, progress: train(p0, x, y, checkpoint=ck, progress=progress, **kw),
        tmp_path,
        monkeypatch,
    )
    _same(whole, resumed)


def test_matrix_resume_equals_uninterrupted(tmp_path, monkeypatch):
    pb, p0 = _matrix()
    kw = dict(lr=0.05, steps=300, snapshots=np.array([0, 10, 100, 300]))
    whole = train_factorisation(pb, p0, **kw)
    resumed = _interrupted_then_resumed(
        lambda ck, progress: train_factorisation(pb, p0, checkpoint=ck, progress=progress, **kw),
        tmp_path,
        monkeypatch,
    )
    _same(whole, resumed)


def test_late_escape_and_plateau_exit_at_the_last_step():
    """A member whose loss falls below the levels only at step ``steps`` (the loop saw
    0..steps-1) escapes and exits there, with the final state kept; a diverged one not."""
    loss0 = jnp.array([1.0, 1.0, 1.0])
    kept = (jnp.zeros((3, 2)),)
    tr = tracks.start(loss0, kept, plateau_drop=0.1, keep_exit=True)
    tr = tr._replace(diverged_step=jnp.array([-1, -1, 4]))
    final = (np.arange(6.0).reshape(3, 2),)
    out = tracks.finish(tr, final, np.ones(3), np.array([0.4, 0.95, 0.1]), 9, host=np.asarray)
    np.testing.assert_array_equal(out["escape_step"], [9, -1, -1])
    np.testing.assert_array_equal(out["exit_step"], [9, -1, -1])
    np.testing.assert_array_equal(out["escape_state"][0], [[0.0, 1.0], [0.0, 0.0], [0.0, 0.0]])


def test_matrix_plateau_exit_at_the_last_step_is_counted():
    """The matrix trainer gets the same late plateau-exit rule as the network one."""
    pb, p0 = _matrix()
    whole = train_factorisation(pb, p0, lr=0.05, steps=200, snapshots=np.array([0, 200]))
    k = int(whole.plateau_exit_step[0])
    assert k > 0
    cut = train_factorisation(pb, p0, lr=0.05, steps=k, snapshots=np.array([0, k]))
    assert cut.plateau_exit_step[0] == k


def test_output_scale_is_handled_by_the_trainer():
    """``train(..., output_scale=kappa)`` is the run of ``f = kappa g``: GD on
    ``y / kappa`` at ``lr kappa^2``, losses times ``kappa^2``."""
    x, y = net_data()
    p0 = net_params([0.1])
    kw = dict(act=get_activation("tanh").fn, steps=50, snapshots=np.array([0, 25, 50]))
    kappa = 0.5
    scaled = train(p0, x, y, lr=0.2, output_scale=kappa, **kw)
    plain = train(p0, x, y / kappa, lr=0.2 * kappa**2, **kw)
    np.testing.assert_array_equal(scaled.snapshots[0], plain.snapshots[0])
    np.testing.assert_array_equal(scaled.snapshot_loss, plain.snapshot_loss * kappa**2)
    assert scaled.lr == 0.2
