"""Fully connected networks without internal biases, and the square loss.

Parameters are a tuple ``(W1, ..., WL)``: ``W1`` has shape (m1, d_in), ``Wk``
(m_k, m_{k-1}), ``WL`` (1, m_{L-1}).  Depth 2 is ``a^T sigma(B x)``, depth 3
``a^T sigma(W sigma(B x))`` (THEORY §1).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import jax.numpy as jnp


def forward(params: Sequence[jnp.ndarray], x: jnp.ndarray, act: Callable) -> jnp.ndarray:
    """Network output f(x) for inputs ``x`` of shape (n, d_in); returns (n,)."""
    h = x
    for w in params[:-1]:
        h = act(h @ w.T)  # (n, m_k)
    return (h @ params[-1].T)[:, 0]


def loss(params, x, y, act: Callable) -> jnp.ndarray:
    """Square loss ``R = 1/(2n) sum_i (f(x_i) - y_i)^2``."""
    r = forward(params, x, act) - y
    return 0.5 * jnp.mean(r * r)


def target_direction(x: jnp.ndarray, y: jnp.ndarray) -> jnp.ndarray:
    """``z = (1/n) sum_i y_i x_i`` (THEORY §1); shape (d_in,)."""
    return (y @ x) / x.shape[0]
