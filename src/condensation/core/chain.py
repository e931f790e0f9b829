"""The depth-L sign conditions along the chain (derived here; docs/open-questions.md).

Depth ``L >= 3``, parameters ``(W1, ..., WL)``, ``c = W1 z`` (m1,),
``v^T = W_L ... W_2`` (m1,), ``s = sign(c)``.  With ``M_k = W_{k-1} ... W_2``
(``M_2 = I``) the effective flow gives

    s_j v_j' = |P_2|^2 |c_j| + sum_{k=3..L} |P_k|^2 sum_i s_i s_j (M_k^T M_k)_ij |c_i|,

``P_k = W_L ... W_{k+1}``.  The conditions: (inner) ``s_j v_j > 0`` for every j;
(chain k, k = 3..L) ``s_i s_j <M_k[:, i], M_k[:, j]> >= 0`` for every pair.  For
L = 3 they are THEORY §5's final-stage condition (``M_3 = W``).
"""

from __future__ import annotations

import jax.numpy as jnp

from condensation.core.final_stage import count_angle_violations, count_inner_violations


def chain_products(params):
    """``[M_3, ..., M_L]``: ``M_k = W_{k-1} ... W_2`` of shape (..., m_{k-1}, m1)."""
    out, m = [], params[1]
    for k in range(3, len(params) + 1):
        out.append(m)
        if k < len(params):
            m = params[k - 1] @ m
    return out


def deep_v(params):
    """``v = (W_L ... W_2)^T`` (..., m1): ``c' = |z|^2 v`` in the effective flow."""
    row = params[-1]
    for w in params[-2:0:-1]:
        row = row @ w
    return row[..., 0, :]


def deep_inner_margins(params, z, xp=jnp):
    """``s_j v_j`` per first-layer neuron (..., m1); the condition is that all are > 0."""
    return xp.sign(params[0] @ z) * deep_v(params)


def _gram(m, xp):
    """``M^T M``: (m1, m1) for one state, (..., m1, m1) for stacked states."""
    return m.T @ m if m.ndim == 2 else xp.swapaxes(m, -1, -2) @ m


def chain_sign_grams(params, z, xp=jnp):
    """``[S M_k^T M_k S for k = 3..L]`` (each (..., m1, m1)), ``S = diag(sign(W1 z))``;
    chain condition k: every entry >= 0."""
    s = xp.sign(params[0] @ z)
    ss = s[..., :, None] * s[..., None, :]
    return [ss * _gram(m, xp) for m in chain_products(params)]


def chain_counts(params, z, xp=jnp):
    """The one count of the depth-L sign conditions, for one state or (with numpy)
    states stacked over leading axes.

    Args:
        params: ``[W1, ..., WL]`` (L >= 3), each ``W_k`` of shape (..., *shape_k).
        z: ``mean(y x)``, shape (d,).
        xp: array namespace: ``jax.numpy`` (the default; usable under jit) or
            ``numpy`` (post hoc, stacked snapshots).

    Returns:
        ``(n_inner, pairs)``: the neurons violating the inner condition, shape (...),
        and the unordered pairs (i < j; the diagonal never violates) violating each
        chain condition k = 3..L, shape (..., L-2).

    >>> import numpy as np
    >>> w1, w2, w3 = np.array([[1.0], [-1.0]]), np.array([[1.0, 1.0]]), np.array([[1.0]])
    >>> n_inner, pairs = chain_counts([w1, w2, w3], np.array([1.0]), xp=np)
    >>> int(n_inner), pairs.tolist()   # s = (+, -): neuron 2 has s v < 0, the pair a negative entry
    (1, [1])
    """
    n_inner = count_inner_violations(deep_inner_margins(params, z, xp), xp=xp)
    counts = [count_angle_violations(g, xp=xp) for g in chain_sign_grams(params, z, xp)]
    return n_inner, xp.stack(counts, axis=-1)


def deep_v_rate(params, z):
    """``v'`` along the effective flow from the chain formula (m1,):
    ``sum_{k=2..L} |P_k|^2 M_k^T M_k c``, ``P_k = W_L ... W_{k+1}`` (a row, ``P_L = 1``),
    ``c = W1 z``; equals the derivative of :func:`deep_v` along ``full_field``."""
    depth = len(params)
    c = params[0] @ z
    ms = [None, *chain_products(params)]  # M_2 = I, then M_3 .. M_L
    rows = [params[-1]]  # P_{L-1}, P_{L-2}, ... (P_k = W_L ... W_{k+1})
    for w in params[-2:1:-1]:
        rows.append(rows[-1] @ w)
    out = jnp.zeros_like(c)
    for k in range(2, depth + 1):
        pk2 = 1.0 if k == depth else jnp.sum(rows[depth - 1 - k] ** 2)
        mc = c if k == 2 else ms[k - 2].T @ (ms[k - 2] @ c)
        out = out + pk2 * mc
    return out


def chain_gram_rates(params, z):
    """``[G_k' for k = 3..L]``, ``G_k = M_k^T M_k``, along the effective flow, from

        G_k' = sum_{l=2..k-1} (G_l c u_kl^T + u_kl c^T G_l),
        u_kl = M_k^T Q_kl Q_kl^T P_{k-1}^T,  Q_kl = W_{k-1} ... W_{l+1}  (Q_{k,k-1} = I),

    ``G_2 = I``, ``P_{k-1} = W_L ... W_k``; the ``l = k-1`` term has ``u = v``
    (sign-definite under the inner and chain-(k-1) conditions), the others need not be.
    """
    depth = len(params)
    c = params[0] @ z
    m1 = c.shape[0]
    ms = {2: jnp.eye(m1), **dict(zip(range(3, depth + 1), chain_products(params)))}

    def row_after(k):  # P_{k-1} = W_L ... W_k, a row
        row = params[-1]
        for w in params[depth - 2 : k - 2 : -1]:
            row = row @ w
        return row

    out = []
    for k in range(3, depth + 1):
        p_row = row_after(k)[0]
        rate = jnp.zeros((m1, m1))
        for l in range(2, k):
            q = jnp.eye(params[k - 2].shape[0])  # Q_kl: (m_{k-1}, m_l)
            for w in params[k - 2 : l - 1 : -1]:  # W_{k-1} ... W_{l+1}
                q = q @ w
            u = ms[k].T @ (q @ (q.T @ p_row))
            gc = ms[l].T @ (ms[l] @ c)
            rate = rate + jnp.outer(gc, u) + jnp.outer(u, gc)
        out.append(rate)
    return out
