"""Lazy-vs-rich measures against direct computations, and the balancedness drift of
gradient flow (GD at a small lr): O(lr) for ReLU and linear networks (conserved by
the flow), not for tanh (not homogeneous: the drift measures the nonlinearity)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import condensation as C
from condensation.commands.train_summary import summary
from condensation.core.activations import get_activation
from condensation.core.network import forward
from condensation.core.regime_measures import balance_drift, kernel_distance, pattern_distance


def _net(seed, shapes=((6, 3), (5, 6), (1, 5)), scale=0.7):
    rng = np.random.default_rng(seed)
    return [scale * rng.standard_normal(s) for s in shapes]


def _direct_kernel(params, x, act):
    """K = J J^T with J from jax.jacfwd of the flattened parameters (n x P, held)."""
    sizes = [p.size for p in params]
    flat = jnp.concatenate([jnp.ravel(p) for p in params])

    def f(theta):
        parts = jnp.split(theta, np.cumsum(sizes)[:-1])
        return forward([q.reshape(p.shape) for q, p in zip(parts, params)], x, act)

    j = jax.jacfwd(f)(flat)
    return np.asarray(j @ j.T)


@pytest.mark.parametrize(("activation", "chunk"), [("tanh", 4), ("relu", 3), ("tanh", 256)])
def test_kernel_distance_equals_the_direct_kernel(activation, chunk):
    act = get_activation(activation).fn
    x = np.random.default_rng(9).uniform(-1, 1, (11, 3))
    p0, pt = _net(0), _net(1)
    k0, kt = _direct_kernel(p0, x, act), _direct_kernel(pt, x, act)
    want = 1 - np.sum(kt * k0) / (np.linalg.norm(kt) * np.linalg.norm(k0))
    assert kernel_distance(pt, p0, x, act, chunk=chunk) == pytest.approx(want, abs=1e-12)
    assert kernel_distance(p0, p0, x, act, chunk=chunk) == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_pattern_distance_counts_sign_changes(activation):
    act = get_activation(activation).fn
    x = np.random.default_rng(3).uniform(-1, 1, (13, 3))
    p0, pt = _net(0), _net(1)
    changed = total = 0
    h0, ht = x, x
    for w0, wt in zip(p0[:-1], pt[:-1]):
        for i in range(x.shape[0]):
            for j in range(w0.shape[0]):
                changed += (h0[i] @ w0[j] > 0) != (ht[i] @ wt[j] > 0)
                total += 1
        h0, ht = np.asarray(act(h0 @ w0.T)), np.asarray(act(ht @ wt.T))
    assert pattern_distance(pt, p0, x, act) == changed / total
    assert pattern_distance(p0, p0, x, act) == 0.0


def _drift(activation: str, lr: float, steps: int) -> list[float]:
    cfg = C.load_config(
        None,
        [f"model.activation='{activation}'", "model.widths=[10,10]", "init.scale=0.3",
         f"train.lr={lr}", f"train.steps={steps}", "data.n=40", "train.snapshots=5",
         "train.linear_snapshots=20"],
    )  # fmt: skip
    return summary(C.run_training(cfg))["members"][0]["balance_drift"]


def test_balance_drift_of_a_numpy_relu_gd_is_order_lr():
    """An independent numpy GD of a two-layer ReLU network: the drift of the balance
    falls ten times with the lr (the flow conserves it)."""
    rng = np.random.default_rng(0)
    x, y = rng.uniform(-1, 1, (20, 3)), rng.uniform(-1, 1, 20)
    w0, a0 = 0.5 * rng.standard_normal((8, 3)), 0.5 * rng.standard_normal((1, 8))
    drifts = []
    for lr in (1e-2, 1e-3):
        w, a = w0.copy(), a0.copy()
        norms = [[np.linalg.norm(w), np.linalg.norm(a)]]
        for _ in range(int(0.5 / lr)):
            h = np.maximum(x @ w.T, 0)
            r = (h @ a.T)[:, 0] - y
            ga = (r @ h)[None] / len(y)
            gw = ((r[:, None] * a) * (h > 0)).T @ x / len(y)
            w, a = w - lr * gw, a - lr * ga
            norms.append([np.linalg.norm(w), np.linalg.norm(a)])
        drifts.append(balance_drift(np.array(norms))[0])
    assert drifts[1] < 1e-5
    assert drifts[0] / drifts[1] == pytest.approx(10.0, rel=0.1)


@pytest.mark.slow
@pytest.mark.parametrize("activation", ["relu", "linear"])
def test_balance_drift_of_gradient_flow_is_order_lr(activation):
    """GD at lr 1e-4 for t = 1: drift <= 1e-6 relative, and ten times less than at 1e-3."""
    coarse = np.array(_drift(activation, 1e-3, 1000))
    fine = np.array(_drift(activation, 1e-4, 10000))
    assert fine.max() <= 1e-6
    np.testing.assert_allclose(coarse / fine, 10.0, rtol=0.05)


@pytest.mark.slow
def test_balance_drift_of_tanh_does_not_vanish_with_lr():
    coarse, fine = np.array(_drift("tanh", 1e-3, 1000)), np.array(_drift("tanh", 1e-4, 10000))
    assert fine.max() > 1e-4 and np.all(fine > 0.5 * coarse)


def test_balance_drift_reads_every_snapshot():
    norms = np.array([[1.0, 1.0, 1.0], [1.0, 2.0, 1.0], [1.0, 1.0, 1.0]])
    np.testing.assert_allclose(balance_drift(norms), [3 / 5, 3 / 5])


@pytest.mark.parametrize("balance", [0.0, 0.05, -1e-4])
def test_init_balance_sets_every_neurons_balance(balance):
    """init.balance: |outgoing|^2 - |incoming|^2 = balance for every hidden neuron
    of every member (the laws of core.invariants), at depths 2 and 3."""
    from condensation.core.invariants import neuron_balances
    from condensation.data import load_dataset
    from condensation.models import NetworkSpec, init_ensemble

    for depth, widths in ((2, "[6]"), (3, "[6, 4]")):
        cfg = C.load_config(
            None,
            [f"model.depth={depth}", f"model.widths={widths}", "init.scales=[0.1, 0.3]",
             f"init.balance={balance}"],
        )  # fmt: skip
        spec = NetworkSpec.from_config(cfg.model, load_dataset(cfg.data).d_in)
        ens = init_ensemble(cfg, spec)
        for i in range(2):
            laws = neuron_balances([jnp.asarray(p[i]) for p in ens.params])
            for law in laws:
                np.testing.assert_allclose(np.asarray(law), balance, atol=1e-12)


def test_init_balance_below_a_neurons_norm_is_refused_in_one_line():
    from condensation.errors import InputError

    with pytest.raises(InputError) as e:
        C.run_training(C.load_config(None, ["init.balance=-1.0", "train.steps=2"]))
    assert e.value.field == "init.balance" and "give init.balance >" in str(e.value)
