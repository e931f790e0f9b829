"""Effective (small-weight) vector fields of THEORY §2.

With all weights small, gradient flow on the square loss becomes gradient
ascent of the energy ``E = W_L ... W_1 z`` (times ``sigma'(0)^(L-1)``, which the
caller folds into ``z``).  Every field here is homogeneous of degree L-1.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def layer_energy_inputs(params, z):
    """Forward chain ``h_0 = z, h_k = W_k h_{k-1}``; returns ``[h_0, ..., h_L]``."""
    hs = [z]
    for w in params:
        hs.append(w @ hs[-1])
    return hs


def energy(params, z) -> jnp.ndarray:
    """``E = W_L ... W_1 z`` as a scalar."""
    return layer_energy_inputs(params, z)[-1][0]


def full_field(params, z):
    """``d W_k/dt = dE/dW_k = (W_L..W_{k+1})^T (W_{k-1}..W_1 z)^T``.

    Computed with one forward chain of matrix-vector products and one backward
    one (reverse-mode of a scalar), never a Jacobian.
    """
    return jax.grad(energy)(tuple(params), z)


def reduced_energy(state) -> jnp.ndarray:
    """``E = a^T W c`` for the three-variable form ``(a, W, c)``, ``c = B z``."""
    a, w, c = state
    return a @ (w @ c)


def reduced_field(state, zz):
    """Three-layer reduced field: ``a' = W c, W' = a c^T, c' = |z|^2 W^T a``.

    ``zz`` is ``|z|^2`` (THEORY §2).  The parts of the rows of ``B`` orthogonal to
    ``z`` do not move, so ``(a, W, c)`` is closed.
    """
    a, w, c = state
    return (w @ c, jnp.outer(a, c), zz * (w.T @ a))
