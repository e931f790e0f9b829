"""The alignment ``|cos(b_j, z)|`` of first-layer rows with the drive ``z``: the one
formula every measurement of it calls.

Each function takes an array namespace ``xp`` (``jax.numpy``, the default, under
jit / vmap; ``numpy`` for post-hoc callers): one formula, evaluated by whichever
library the caller's arrays live in, so numpy callers get numpy's bits and traced
callers XLA's.  A row (or ``z``) of norm 0 has ``|cos| = 0``, not ``0/0``.
"""

from __future__ import annotations

import jax.numpy as jnp


def abs_cos(dot, norms, xp=jnp, squared=False):
    """``|dot| / norms``, 0 where ``norms`` is 0 (then ``dot`` is 0 too).

    Args:
        dot: inner products ``<b_j, z>`` (any shape).
        norms: the products ``|b_j| |z|`` (same shape), or their squares when
            ``squared`` (the guard then sits under the square root, so that
            ``x / sqrt(y)`` keeps its compiled form ``x * rsqrt(y)``).
        xp: array namespace (``jax.numpy`` or ``numpy``).
        squared: whether ``norms`` holds squared norms.

    Returns:
        ``|cos(b_j, z)|`` elementwise, in [0, 1] up to rounding.
    """
    safe = xp.where(norms > 0, norms, 1.0)
    return xp.abs(dot) / (xp.sqrt(safe) if squared else safe)


def abs_cos_to(rows, z, xp=jnp, dot=None):
    """``|cos(b_j, z)|`` for each row ``b_j`` of ``rows`` (..., m, d) → (..., m).

    Args:
        rows: the rows ``b_j``, shape (..., m, d).
        z: the direction, shape (d,).
        xp: array namespace (``jax.numpy`` or ``numpy``).
        dot: ``rows @ z`` when the caller has it already (else it is computed).

    Returns:
        (..., m) array; 0 for a zero row or a zero ``z``.
    """
    norms = xp.linalg.norm(rows, axis=-1) * xp.linalg.norm(z)
    return abs_cos(rows @ z if dot is None else dot, norms, xp)


def abs_cos_reduced(c, zz, bperp2, xp=jnp):
    """``|cos(b_j, z)|`` in the reduced coordinates ``c_j = <b_j, z>``,
    ``zz = |z|^2``, ``bperp2 = |b_j - c_j z / zz|^2``: ``|b_j|^2 |z|^2 = c_j^2 + zz bperp2``.

    Args:
        c: the inner products ``c_j`` (m,).
        zz: ``|z|^2`` (scalar).
        bperp2: squared norms of the rows' parts orthogonal to ``z`` (m,).
        xp: array namespace (``jax.numpy`` or ``numpy``).

    Returns:
        (m,) array, 0 where ``c_j = 0`` and ``bperp2_j = 0``.
    """
    return abs_cos(c, c * c + zz * bperp2, xp, squared=True)


def median_abs_cos(rows, z, xp=jnp):
    """Median over the rows ``b_j`` of ``rows`` (..., m, d) of ``|cos(b_j, z)|`` → (...)."""
    return xp.median(abs_cos_to(rows, z, xp), axis=-1)
