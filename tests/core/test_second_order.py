"""The second-order effective energy (core/second_order.py): closed forms first
(a linear network, where it is the loss exactly), then its truncation order
against the true loss, then the two ways of contracting the moments."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import gaussian_params

from condensation.core.second_order import (
    data_moments,
    second_order_energy,
    second_order_field,
    taylor_coefficients,
)


def _quartic(u):  # sigma''(0) != 0: the curvature term is quadratic
    return u + 0.3 * u**2 - 0.2 * u**3 + 0.1 * u**4


def _gain_of_loss(params, x, y, act):
    """``-(R(theta) - R(0)) = mean(y f) - mean(f^2) / 2`` on the data."""
    h = jnp.asarray(x).T
    for w in params[:-1]:
        h = act(w @ h)
    f = (params[-1] @ h)[0]
    return jnp.mean(y * f) - 0.5 * jnp.mean(f * f)


def _data_and_weights(rng, depth, n=40, d=4, width=5):
    x, y = rng.normal(size=(n, d)), rng.normal(size=n)
    return x, y, list(gaussian_params(rng, d, [width] * (depth - 1)))


def test_taylor_coefficients_of_the_built_in_activations():
    np.testing.assert_allclose(taylor_coefficients(jnp.tanh), (1.0, 0.0, -1.0 / 3.0), atol=1e-15)
    np.testing.assert_allclose(taylor_coefficients(jnp.sin), (1.0, 0.0, -1.0 / 6.0), atol=1e-15)
    np.testing.assert_allclose(taylor_coefficients(_quartic), (1.0, 0.3, -0.2), atol=1e-15)


@pytest.mark.parametrize("depth", [2, 3, 4])
def test_linear_network_energy_is_the_loss_exactly(depth, rng):
    """sigma = identity: f = f1, so E2 = -(R - R(0)) with nothing neglected."""
    x, y, ws = _data_and_weights(rng, depth)
    mom = data_moments(x, y, (1.0, 0.0, 0.0))
    want = _gain_of_loss(ws, x, y, lambda u: u)
    np.testing.assert_allclose(float(second_order_energy(ws, mom)), float(want), rtol=1e-12)
    grads = second_order_field(ws, mom)
    ref = jax.grad(_gain_of_loss)(tuple(ws), x, y, lambda u: u)
    for g, r in zip(grads, ref):
        np.testing.assert_allclose(g, r, rtol=1e-11, atol=1e-14)


# (activation, depth, the order in the weight scale s of what E2 neglects):
# odd sigma: f1 has degree L, the dropped terms (u^4, f1 f3) degree L + 4 at least;
# sigma''(0) != 0: u^2 and f1 f2 terms, degree L + 2 (depth 2: 4; depth 3: 5).
CASES = [("tanh", jnp.tanh, 3, 7), ("sin", jnp.sin, 4, 8), ("quartic", _quartic, 3, 5)]


@pytest.mark.parametrize("name,act,depth,order", CASES, ids=[c[0] for c in CASES])
def test_second_order_energy_truncation_order(name, act, depth, order, rng):
    """|E2 - (-(R - R(0)))| falls like s^order as the weights shrink by s; the
    effective energy alone (order L + 2 or L + 1) falls slower."""
    x, y, ws = _data_and_weights(rng, depth)
    mom = data_moments(x, y, taylor_coefficients(act))
    scales = 0.02 * 2.0 ** -np.arange(4)
    errs = []
    for s in scales:
        p = [s * w for w in ws]
        errs.append(abs(float(_gain_of_loss(p, x, y, act) - second_order_energy(p, mom))))
    slope = np.polyfit(np.log(scales), np.log(errs), 1)[0]
    assert slope >= order - 0.3, (errs, slope)


def test_dense_and_sample_moments_agree(rng):
    x, y, ws = _data_and_weights(rng, 3)
    ws = [0.3 * w for w in ws]
    coef = taylor_coefficients(_quartic)
    dense, samples = data_moments(x, y, coef), data_moments(x, y, coef, dense_max=0)
    assert dense.x is None and samples.m3.size == 0 and samples.x is not None
    np.testing.assert_allclose(
        float(second_order_energy(ws, samples)), float(second_order_energy(ws, dense)), rtol=1e-12
    )
