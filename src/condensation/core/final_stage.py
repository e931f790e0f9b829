"""The final-stage condition of THEORY §5 on a three-layer state ``(a, W, c)``:
the one implementation every check of it calls.

``v = W^T a``, ``s = sign(c)``.  (1) inner-product constraint ``s_j v_j > 0``
for every first-layer neuron j; (2) angle constraint: sign-corrected columns of
``W`` pairwise at most 90 degrees apart, ``s_i s_j <W_:,i, W_:,j> >= 0``.

Every function takes an array namespace ``xp`` (``jax.numpy``, the default, usable
under jit / vmap; ``numpy`` for post-hoc callers) and states either single
(``a`` (m2,), ``W`` (m2, m1), ``c`` (m1,)) or, with numpy, stacked over leading axes.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def _wt_a(w, a, xp):
    """``W^T a``: (m1,) for one state, (..., m1) for stacked states (as ``a W``: XLA
    on CPU runs ``W.T @ a`` ~5x slower, a transpose of W first)."""
    return a @ w if w.ndim == 2 else xp.einsum("...ij,...i->...j", w, a)


def _gram(w, xp):
    """``W^T W``: (m1, m1) for one state, (..., m1, m1) for stacked states."""
    return w.T @ w if w.ndim == 2 else xp.einsum("...ij,...ik->...jk", w, w)


def sign_margins(v, c, xp=jnp):
    """``s_j v_j`` with ``s = sign(c)``: the margins of constraint (1) given ``v``.

    Args:
        v: ``W^T a`` (or any positive multiple of it), shape (..., m1).
        c: ``B z``, shape (..., m1).
        xp: array namespace.

    Returns:
        (..., m1) margins; the constraint is that all are > 0.
    """
    return xp.sign(c) * v


def inner_product_margins(a, w, c, xp=jnp):
    """``s_j v_j`` per neuron, (..., m1); the constraint is that all are > 0."""
    return sign_margins(_wt_a(w, a, xp), c, xp)


def angle_matrix(w, c, xp=jnp):
    """``s_i s_j <W_:,i, W_:,j>`` (..., m1, m1); the constraint is that all are >= 0."""
    s = xp.sign(c)
    return (s[..., :, None] * s[..., None, :]) * _gram(w, xp)


def inner_violated(margins):
    """Where constraint (1) fails: ``margins <= 0`` (a NaN margin is not counted)."""
    return margins <= 0


def angle_violated(angles):
    """Where constraint (2) fails: ``angles < 0``."""
    return angles < 0


def count_inner_violations(margins, active=None, xp=jnp):
    """Number of neurons violating (1), over the last axis; ``active`` (m1,) bool
    leaves out inactive (zero-padded) neurons."""
    bad = inner_violated(margins)
    return xp.sum(bad if active is None else active & bad, axis=-1)


def count_angle_violations(angles, active=None, xp=jnp):
    """Number of unordered pairs violating (2), over the last two axes; ``active``
    (m1,) bool leaves out pairs with an inactive neuron."""
    bad = angle_violated(angles)
    if active is not None:
        bad = active[:, None] & active[None, :] & bad
    return xp.sum(xp.triu(bad, k=1), axis=(-2, -1))


def final_stage_counts(a, w, c, xp=jnp):
    """(number of neurons violating (1), number of unordered pairs violating (2)).

    Args:
        a, w, c: the state (``a`` (m2,), ``W`` (m2, m1), ``c = B z`` (m1,)).
        xp: array namespace.

    Returns:
        The two counts (integer scalars).
    """
    n_inner = count_inner_violations(inner_product_margins(a, w, c, xp), xp=xp)
    return n_inner, count_angle_violations(angle_matrix(w, c, xp), xp=xp)


def final_stage_holds(a, w, c, xp=jnp):
    """True when both constraints hold (same verdict as :func:`final_stage_counts`
    on finite states).

    With ``jax.numpy`` the (m1 x m1) Gram matrix of the angle constraint is formed
    only when the inner-product constraint holds (a real branch unless vmapped);
    the diagonal ``|W_:,j|^2`` never violates, so "no entry < 0" is "no pair < 0".
    With ``numpy`` the states may be stacked over leading axes (→ (...) bool).

    Args:
        a, w, c: the state (or, with numpy, stacked states).
        xp: array namespace.

    Returns:
        A boolean scalar (or array over the stacked states).
    """
    margins = inner_product_margins(a, w, c, xp)
    inner_ok = xp.all(margins > 0, axis=-1)
    if xp is not jnp:
        return inner_ok & ~xp.any(angle_violated(angle_matrix(w, c, xp)), axis=(-2, -1))
    # the false branch returns inner_ok (False there): it keeps shard_map's typing
    return jax.lax.cond(
        inner_ok, lambda: ~jnp.any(angle_violated(angle_matrix(w, c))), lambda: inner_ok
    )


# violating pairs a watch keeps between steps (see watch_final_stage)
WITNESSES = 8


def witness_pairs(m1: int, members: int | None = None):
    """The empty witness list of :func:`watch_final_stage`: ``(K, 2)`` int32 zeros
    (``(members, K, 2)`` with ``members``), ``K = min(WITNESSES, m1^2)``; a pair
    ``(j, j)`` is never violated, so the first check forms the Gram matrix."""
    k = min(WITNESSES, m1 * m1)
    return jnp.zeros((k, 2) if members is None else (members, k, 2), jnp.int32)


def watch_final_stage(a, w, c, pairs):
    """One step of tracking the final-stage entry: the verdict of
    :func:`final_stage_holds` at a fraction of its cost, and the pairs to try next.

    The ``(m1 x m1)`` Gram matrix of the angle constraint costs ``m1^2 m2`` per
    step (~``m1 / n`` gradients) and, once the inner-product constraint holds,
    would be formed at every step until the entry.  A violation, though, usually
    lasts: the most negative pairs of the last Gram matrix (``pairs``, its
    *witnesses*) are tried first, in ``O(K m2)``; a witness still negative beyond
    rounding (``4 m2 eps |u_i| |u_j|``, far outside any difference between a dot
    product and the same entry of a matrix product) proves the condition false
    there.  Only when no witness is, the Gram matrix is formed: its verdict is
    :func:`final_stage_holds`'s and its most negative pairs are the new witnesses.
    So the verdict is the same as :func:`final_stage_holds` at every step.
    Derived here (an implementation choice, not from the paper).

    Args:
        a, w, c: one state (``a`` (m2,), ``W`` (m2, m1), ``c = B z`` (m1,)), jax.
        pairs: (K, 2) int32 column pairs (:func:`witness_pairs` to start).

    Returns:
        ``(holds, pairs)``: the verdict (boolean scalar) and the witnesses.
    """
    inner_ok = jnp.all(inner_product_margins(a, w, c) > 0)

    def check():
        s = jnp.sign(c)
        ui = w[:, pairs[:, 0]] * s[pairs[:, 0]]
        uj = w[:, pairs[:, 1]] * s[pairs[:, 1]]
        values = jnp.sum(ui * uj, axis=0)
        rounding = 4.0 * w.shape[0] * jnp.finfo(w.dtype).eps
        bound = rounding * jnp.linalg.norm(ui, axis=0) * jnp.linalg.norm(uj, axis=0)
        witnessed = jnp.any(values < -bound)

        def gram():
            angles = angle_matrix(w, c)
            m1 = angles.shape[-1]
            upper = jnp.where(jnp.triu(jnp.ones((m1, m1), bool), 1), angles, jnp.inf)
            # each row's most negative pair, then the K most negative rows: two
            # passes over the matrix (a top-k over all m1^2 entries is a sort)
            col = jnp.argmin(upper, axis=1)
            row_min = jnp.take_along_axis(upper, col[:, None], axis=1)[:, 0]
            k = min(pairs.shape[0], m1)
            _, rows = jax.lax.top_k(-row_min, k)
            new = jnp.stack([rows, col[rows]], axis=1).astype(pairs.dtype)
            new = jnp.concatenate([new, pairs[k:]])  # (m1 < K: the rest stay (j, j)-like)
            return ~jnp.any(angle_violated(angles)), new

        # the first branch returns ~witnessed (False there): it keeps shard_map's typing
        return jax.lax.cond(witnessed, lambda: (~witnessed, pairs), gram)

    return jax.lax.cond(inner_ok, check, lambda: (inner_ok, pairs))


def holds_with_witnesses(a, w, c, pairs=None):
    """:func:`watch_final_stage` for one numpy state: ``(holds, pairs)``, the verdict
    of :func:`final_stage_holds` and the witnesses to try at the next state.

    The inner-product constraint first (``O(m1 m2)``); then the witness ``pairs``
    (None: none yet), a negative one beyond rounding proving the angle constraint
    false; only then the Gram matrix ``W^T W`` (one BLAS product), whose most
    negative pairs become the new witnesses.

    >>> import numpy as np
    >>> w = np.array([[1.0, 1.0], [0.0, 1.0]])
    >>> holds_with_witnesses(np.array([1.0, 2.0]), w, np.array([1.0, 1.0]))
    (True, None)
    >>> holds_with_witnesses(np.array([1.0, 0.0]), w, np.array([1.0, -1.0]))[0]
    False
    >>> v = np.array([[1.0, -1.0], [0.0, 1.0]])  # columns 135 degrees apart
    >>> holds_with_witnesses(np.array([1.0, 2.0]), v, np.array([1.0, 1.0]))
    (False, array([[0, 1]]))
    """
    s = np.sign(c)
    if not np.all(s * (a @ w) > 0):
        return False, pairs
    if pairs is not None and len(pairs):
        ui = w[:, pairs[:, 0]] * s[pairs[:, 0]]
        uj = w[:, pairs[:, 1]] * s[pairs[:, 1]]
        rounding = 4.0 * w.shape[0] * np.finfo(w.dtype).eps
        bound = rounding * np.linalg.norm(ui, axis=0) * np.linalg.norm(uj, axis=0)
        if np.any(np.sum(ui * uj, axis=0) < -bound):
            return False, pairs
    angles = (s[:, None] * s[None, :]) * (w.T @ w)
    bad = angle_violated(angles)
    if not bad.any():
        return True, pairs
    rows, cols = np.nonzero(np.triu(bad, 1))
    worst = np.argsort(angles[rows, cols], kind="stable")[:WITNESSES]
    return False, np.stack([rows[worst], cols[worst]], axis=1)
