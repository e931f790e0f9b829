"""Gradients against finite differences; the forward pass against a loop."""

import jax
import numpy as np
import pytest
from helpers import gaussian_params

from condensation.core import ACTIVATIONS, forward, loss, target_direction


@pytest.mark.parametrize("depth", [2, 3, 4])
@pytest.mark.parametrize("act", sorted(ACTIVATIONS))
def test_gradient_matches_finite_differences(rng, depth, act):
    x = rng.uniform(-1, 1, (20, 3))
    y = rng.standard_normal(20)
    params = gaussian_params(rng, 3, [6] * (depth - 1), scale=0.7)
    fn = ACTIVATIONS[act].fn
    grads = jax.grad(loss)(params, x, y, fn)
    h = 1e-5
    for _ in range(3):
        direction = tuple(rng.standard_normal(p.shape) for p in params)
        plus = tuple(p + h * v for p, v in zip(params, direction))
        minus = tuple(p - h * v for p, v in zip(params, direction))
        fd = (loss(plus, x, y, fn) - loss(minus, x, y, fn)) / (2 * h)
        an = sum(np.sum(g * v) for g, v in zip(grads, direction))
        assert abs(fd - an) <= 1e-6 * abs(an), (act, depth, fd, an)


def test_forward_matches_explicit_three_layer(rng):
    x = rng.standard_normal((7, 4))
    b, w, a = gaussian_params(rng, 4, [5, 3], scale=0.7)
    expected = [a[0] @ np.tanh(w @ np.tanh(b @ xi)) for xi in x]
    np.testing.assert_allclose(forward((b, w, a), x, np.tanh), expected, rtol=1e-13)


def test_target_direction(rng):
    x = rng.standard_normal((9, 3))
    y = rng.standard_normal(9)
    np.testing.assert_allclose(target_direction(x, y), sum(yi * xi for xi, yi in zip(x, y)) / 9)


def test_activation_slopes_at_zero():
    for a in ACTIVATIONS.values():
        if a.smooth:
            assert float(a.fn(0.0)) == a.value_at_zero
            assert float(jax.grad(a.fn)(0.0)) == pytest.approx(a.slope_at_zero, abs=1e-15)
    assert not ACTIVATIONS["relu"].effective_ok
    assert not ACTIVATIONS["xtanh"].effective_ok
    assert "sigma'(0)" in ACTIVATIONS["xtanh"].why_not_effective()
    assert ACTIVATIONS["tanh"].effective_ok


@pytest.mark.parametrize("d, widths", [(5, (50, 50)), (3, (7,)), (10, (40, 30, 20))])
def test_standard_normal_params_are_the_shaped_draws(d, widths):
    """Layers drawn as a prefix of one longer, shared-size draw (fewer compiled
    programs) are exactly ``jax.random.normal(key_k, shape_k)``."""
    from condensation.core.activations import get_activation
    from condensation.models import NetworkSpec, standard_normal_params

    spec = NetworkSpec(d_in=d, widths=widths, activation=get_activation("tanh"))
    keys = jax.random.split(jax.random.PRNGKey(3), spec.depth)
    got = standard_normal_params(spec, 3)
    for k, shape, w in zip(keys, spec.shapes, got):
        assert w.shape == shape
        np.testing.assert_array_equal(w, np.asarray(jax.random.normal(k, shape, dtype=np.float64)))
