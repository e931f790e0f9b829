"""The per-step loop at the matmul limit: events settled outside the loop, updates
in place, and the activation layout of wide networks (issue 22, item 1).

The states kept at the escape and the plateau exit used to be branches inside the
step loop, and the divergence test read the new weights: XLA then copied the
weights at every step.  Now a member's loop stops at such an event, the state is
kept outside it and the step runs again (:func:`condensation.training.engine.loop`),
and the update is gated by tests of its inputs only.  The results must not change
at all: every field equals the in-loop path's, bit for bit, wherever the events
fall against the compiled intervals.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import net_data, net_params
from hypothesis import Phase, given, settings
from hypothesis import strategies as st

from condensation.core.activations import get_activation
from condensation.training import network_model
from condensation.training.engine import gd, loop
from condensation.training.network import train
from condensation.training.optimizers import Optimizer

TANH = get_activation("tanh").fn


def _fields(r):
    out = {k: v for k, v in vars(r).items() if k not in ("measures",)}
    return jax.tree.leaves(out)


@dataclass(frozen=True)
class _InLoop(gd.GDStep):
    """The engine's step with the states kept inside the loop (another static
    argument, so compiled apart from the default)."""

    events = False


def _run(steps_k, inline: bool, optimizer=None, lr=0.9):
    """The default network trainer, or its in-loop path."""
    x, y = net_data()
    # members escaping and exiting at different steps (1 to 56), one diverging
    p0 = net_params([0.3, 0.1, 0.02, 6.0, 30.0])
    with pytest.MonkeyPatch.context() as mp:
        if inline:
            mp.setattr(gd, "GDStep", _InLoop)
        kw = dict(act=TANH, lr=lr, steps=int(steps_k[-1]), snapshots=np.asarray(steps_k))
        return train(p0, x, y, optimizer=optimizer, **kw)


# the three gradient paths of the network model (full batch above; a small batch;
# one pass over all n with the off-batch samples weighted 0), and the optax state
# of the others (momentum is adam's first moment alone)
SMALL_BATCH = (Optimizer("sgd", batch_size=7, batch_seed=3), 0.5)  # 3 batches an epoch
WEIGHTED = (Optimizer("sgd", batch_size=20), 0.5)
ADAM = (Optimizer("adam", b1=0.8, b2=0.99, adam_eps=1e-6), 0.02)


def _name(value) -> str:
    return "gd" if value is None else getattr(value, "name", str(value))


@settings(max_examples=4, deadline=None, phases=[Phase.explicit, Phase.generate])
@given(cuts=st.lists(st.integers(1, 399), max_size=6, unique=True))
def test_events_settled_outside_the_loop_equal_the_in_loop_path(cuts):
    """Every recorded field (escape and exit steps and states, divergence, peak
    alignment, final-stage entry, snapshots) is bit-identical to the in-loop path's,
    for any split of the run into compiled intervals."""
    steps_k = np.array(sorted({0, 400, *cuts}))
    legs = _run(steps_k, False)
    inline = _run(steps_k, True)
    assert (legs.escape_step >= 0).sum() >= 2 and (legs.plateau_exit_step >= 0).sum() >= 2
    assert (legs.diverged_step >= 0).any() and (legs.escape_step == 1).any()
    for a, b in zip(_fields(legs), _fields(inline), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.parametrize("opt, lr", [SMALL_BATCH, ADAM], ids=_name)
def test_events_equal_the_in_loop_path_with_optimizer_state(opt, lr):
    """The member's mini-batch stream and optax state go back with the step an
    event does not take: the run equals the in-loop path's, bit for bit."""
    steps_k = np.array([0, 1, 2, 7, 30, 57, 120])
    legs, inline = _run(steps_k, False, opt, lr), _run(steps_k, True, opt, lr)
    assert (legs.escape_step >= 0).sum() >= 2
    for a, b in zip(_fields(legs), _fields(inline), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_the_step_loop_copies_no_weight_matrix(monkeypatch):
    """In the compiled interval, no (m x m) layer is copied: the update writes the
    weights in place.  Before, three copies per step (two kept-state branches and
    the divergence test), and two more per call (the kept states' conds)."""
    m = 96
    seen = []
    real = gd.run_interval

    def record(*args, **kwargs):
        seen.append((args, kwargs))
        return real(*args, **kwargs)

    monkeypatch.setattr(gd, "run_interval", record)
    x, y = net_data()
    train(net_params([0.01], m=m), x, y, act=TANH, lr=0.05, steps=4, snapshots=np.array([0, 4]))
    args, kwargs = seen[0]
    hlo = loop.run_interval.lower(*args, **kwargs).compile().as_text()
    bodies = set(re.findall(r"while\(.*?body=%?([\w.\-]+)", hlo))
    assert bodies, "no while loop found"
    comps = dict(re.findall(r"\n(%?[\w.\-]+) \(.*?\{\n(.*?)\n\}", hlo, flags=re.S))
    copies = {
        b: re.findall(rf"f64\[{m},{m}\]\{{1,0\}} copy\(", comps.get(b, comps.get("%" + b, "")))
        for b in bodies
    }
    assert all(b in comps or "%" + b in comps for b in bodies)
    assert not any(copies.values()), copies
    # nor anywhere else in the call: the kept states are written only at an event
    # (a cond between them and the old ones copied both at every call), and a lone
    # member runs without lax.map's slice and write-back
    assert not re.findall(rf"f64\[(?:1,)?{m},{m}\]\{{[0-9,]+\}} copy\(", hlo)


def test_safe_update_refuses_non_finite_and_overflowing_steps():
    big = jnp.finfo(jnp.float64).max
    p = (jnp.ones((3, 3)), jnp.ones(2))
    ok = (jnp.full((3, 3), -0.1), jnp.zeros(2))
    assert bool(gd.safe_update(p, ok))
    for bad in (jnp.nan, jnp.inf, -jnp.inf):
        assert not bool(gd.safe_update(p, (ok[0].at[1, 2].set(bad), ok[1])))
    # |p| + |u| beyond the largest float: p + u might overflow, refused
    near = (p[0].at[0, 0].set(big * 0.75), p[1])
    assert not bool(gd.safe_update(near, (ok[0].at[2, 2].set(big / 2), ok[1])))
    assert bool(gd.safe_update(near, (ok[0], ok[1] + big / 2)))  # per layer
    assert bool(gd.safe_update((p[0].at[0, 0].set(big * 0.25), p[1]), ok))


@settings(max_examples=60, deadline=None)
@given(
    lr=st.floats(1e-6, 10.0),
    scale=st.sampled_from([1e-300, 1.0, 1e150, 1e300]),
    bad=st.sampled_from([None, jnp.nan, jnp.inf, -jnp.inf]),
    dtype=st.sampled_from([jnp.float64, jnp.float32]),
)
def test_gd_sizes_from_the_gradient_decide_as_the_updates_do(lr, scale, bad, dtype):
    """GD's ``lr max|g|`` (the network model's sizes, no updates written out) is
    ``max|(-lr) g|`` exactly: :func:`safe_update` decides the same either way."""
    rng = np.random.default_rng(int(lr * 1e6) % 2**32)
    big = float(jnp.finfo(dtype).max)
    g = [jnp.asarray(rng.normal(size=s) * min(scale, big / 4), dtype) for s in ((4, 3), (3,))]
    if bad is not None:
        g[0] = g[0].at[1, 1].set(bad)
    p = [jnp.asarray(rng.normal(size=s) * min(scale, big / 4), dtype) for s in ((4, 3), (3,))]
    updates = [leaf * (-lr) for leaf in g]  # optax's sgd(lr)
    sizes = [lr * jnp.max(jnp.abs(leaf), initial=0) for leaf in g]
    for u, top in zip(updates, sizes):
        assert bool(jnp.max(jnp.abs(u)) == top) or bool(jnp.isnan(top))
    assert bool(gd.safe_update(p, updates, sizes)) == bool(gd.safe_update(p, updates))
    if bad is not None:
        assert not bool(gd.safe_update(p, updates, sizes))


def test_ordered_after_keeps_the_predicate():
    for leaf in (jnp.array([jnp.nan, 1.0]), jnp.array([-3]), jnp.array([], jnp.float32)):
        for pred in (True, False):
            assert bool(gd.ordered_after(jnp.asarray(pred), (leaf, ()))) is pred


@pytest.mark.parametrize("minibatch", [False, True])
def test_sample_major_layout_equals_feature_major(minibatch):
    """Both activation layouts give the loss and gradient up to rounding."""
    x, y = net_data(n=16)
    params = tuple(jnp.asarray(p[0]) for p in net_params([0.5], m=7))
    if minibatch:
        w = jnp.zeros(16).at[:4].set(0.25)
        f, s = (
            jax.grad(network_model.weighted_batch_loss, has_aux=True)(
                params, x, y, w, act=TANH, layout=lay
            )
            for lay in ("feature", "sample")
        )
    else:
        f, s = (
            jax.value_and_grad(network_model.trainer_loss)(params, x, y, act=TANH, layout=lay)
            for lay in ("feature", "sample")
        )
    for a, b in zip(jax.tree.leaves(f), jax.tree.leaves(s), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("opt, lr", [(None, 0.5), SMALL_BATCH, WEIGHTED], ids=_name)
def test_wide_networks_train_sample_major(opt, lr, monkeypatch):
    """From ``SAMPLE_MAJOR_WIDTH`` on the trainer keeps activations sample-major; the
    run is the feature-major run up to rounding."""
    wide = net_params([1.0], m=network_model.SAMPLE_MAJOR_WIDTH)
    assert network_model.layout_for(wide) == "sample"
    assert network_model.layout_for(net_params([1.0], m=8)) == "feature"
    x, y = net_data()
    p0 = net_params([0.3, 0.05])
    kw = dict(act=TANH, lr=lr, steps=150, snapshots=np.array([0, 75, 150]), optimizer=opt)
    feature = train(p0, x, y, **kw)
    monkeypatch.setattr(network_model, "SAMPLE_MAJOR_WIDTH", 1)
    sample = train(p0, x, y, **kw)
    np.testing.assert_array_equal(feature.escape_step, sample.escape_step)
    for a, b in zip(feature.snapshots, sample.snapshots, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("depth, members", [(2, 3), (3, 1), (3, 4), (4, 2)])
def test_snapshot_losses_member_by_member_equal_the_vmapped(depth, members, monkeypatch):
    """Wide networks' snapshot losses run one member after another (the vmapped
    products are batched dots, slow on CPU): the same bits as vmapped."""
    rng = np.random.default_rng(depth * 10 + members)
    x, y = (jnp.asarray(a) for a in net_data())
    m = 9
    shapes = [(m, x.shape[1])] + [(m, m)] * (depth - 2) + [(1, m)]
    params = tuple(jnp.asarray(0.4 * rng.normal(size=(members, *s))) for s in shapes)
    vmapped = network_model.ensemble_losses(params, x, y, act=TANH)
    monkeypatch.setattr(network_model, "SAMPLE_MAJOR_WIDTH", 1)  # every width is "wide"
    jax.clear_caches()
    mapped = network_model.ensemble_losses(params, x, y, act=TANH)
    assert mapped.shape == (members,)
    jaxpr = str(jax.make_jaxpr(lambda p: network_model.ensemble_losses(p, x, y, act=TANH))(params))
    assert ("scan" in jaxpr) == (members > 1)  # lax.map, or a lone member reshaped
    np.testing.assert_array_equal(np.asarray(mapped), np.asarray(vmapped))
