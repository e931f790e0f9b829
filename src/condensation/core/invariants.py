"""Conservation laws of the effective dynamics (THEORY §3).

Each function returns the quantity whose time derivative vanishes along the
effective flow; along real training their drift measures how far training has
left the small-weight regime.
"""

from __future__ import annotations

import jax.numpy as jnp


def balance_matrices(params):
    """``W_{k+1}^T W_{k+1} - W_k W_k^T`` for every adjacent pair (k = 1..L-1).

    For depth 3 with ``(B, W, a^T)`` these are ``W^T W - B B^T`` and
    ``a a^T - W W^T`` (up to sign), the matrix laws of THEORY §3.
    """
    return [
        params[k + 1].T @ params[k + 1] - params[k] @ params[k].T for k in range(len(params) - 1)
    ]


def neuron_balances(params):
    """Per-neuron laws: ``|col_j W_{k+1}|^2 - |row_j W_k|^2`` for each hidden layer."""
    return [
        jnp.sum(params[k + 1] ** 2, axis=0) - jnp.sum(params[k] ** 2, axis=1)
        for k in range(len(params) - 1)
    ]


def reduced_balance_matrices(state, zz):
    """``a a^T - W W^T`` and ``W^T W - c c^T / |z|^2`` for ``(a, W, c)``."""
    a, w, c = state
    return [jnp.outer(a, a) - w @ w.T, w.T @ w - jnp.outer(c, c) / zz]
