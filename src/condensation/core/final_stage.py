"""The final-stage condition of THEORY §5 on a three-layer state ``(a, W, c)``.

``v = W^T a``, ``s = sign(c)``.  (1) inner-product constraint ``s_j v_j > 0``
for every first-layer neuron j; (2) angle constraint: sign-corrected columns of
``W`` pairwise at most 90 degrees apart, ``s_i s_j <W_:,i, W_:,j> >= 0``.
"""

from __future__ import annotations

import jax
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
    """True when both constraints hold (same verdict as :func:`final_stage_counts`).

    The (m1 x m1) Gram matrix of the angle constraint is formed only when the
    inner-product constraint holds (a real branch unless vmapped); the diagonal
    ``|W_:,j|^2`` never violates, so "no entry < 0" is "no pair < 0"."""
    inner_ok = jnp.all(inner_product_margins(a, w, c) > 0)
    # the false branch returns inner_ok (False there): it keeps shard_map's typing
    return jax.lax.cond(inner_ok, lambda: ~jnp.any(angle_matrix(w, c) < 0), lambda: inner_ok)
