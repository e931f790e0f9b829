"""The final-stage condition of THEORY §5 on a three-layer state ``(a, W, c)``.

``v = W^T a``, ``s = sign(c)``.  (1) inner-product constraint ``s_j v_j > 0``
for every first-layer neuron j; (2) angle constraint: sign-corrected columns of
``W`` pairwise at most 90 degrees apart, ``s_i s_j <W_:,i, W_:,j> >= 0``.
"""

from __future__ import annotations

import jax.numpy as jnp


def inner_product_margins(a, w, c):
    """``s_j v_j`` per neuron, (m1,); the constraint is that all are > 0."""
    return jnp.sign(c) * (w.T @ a)


def angle_matrix(w, c):
    """``s_i s_j <W_:,i, W_:,j>`` (m1, m1); the constraint is that all are >= 0."""
    s = jnp.sign(c)
    return (s[:, None] * s[None, :]) * (w.T @ w)


def final_stage_counts(a, w, c):
    """(number of neurons violating (1), number of unordered pairs violating (2))."""
    n_inner = jnp.sum(inner_product_margins(a, w, c) <= 0)
    bad = angle_matrix(w, c) < 0
    n_pairs = jnp.sum(jnp.triu(bad, k=1))
    return n_inner, n_pairs


def final_stage_holds(a, w, c):
    """True when both constraints hold."""
    n_inner, n_pairs = final_stage_counts(a, w, c)
    return (n_inner == 0) & (n_pairs == 0)
