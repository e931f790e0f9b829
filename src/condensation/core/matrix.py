"""Deep matrix factorisation: the product, the losses, the effective field (THEORY §6).

Orientation.  The factors are a tuple ``(W1, ..., WL)`` and the product is

    X = W_L ... W_1,     W1 (h, n2),  Wk (h, h),  WL (n1, h)

for a target ``M`` of shape (n1, n2) and hidden width ``h``; depth 1 is the
unfactorised matrix ``X = W1`` of shape (n1, n2).  This is the orientation of
the network parameters (``W1`` eats the input): the three-layer network
``a^T W B`` is the one-row case ``n1 = 1`` with ``(W1, W2, W3) = (B, W, a^T)``.

Losses (sums, no averaging):

- completion  ``1/2 |P_Omega(X - M)|_F^2``, ``P_Omega`` = multiplication by a 0/1 mask;
- sensing     ``1/2 sum_i (<A_i, X> - y_i)^2``.

Both are ``1/2 |A(X) - y|^2`` for a linear measurement map ``A``, and at ``X = 0``
their gradient is ``-A^*(y) = -M_O`` (``M_O = P_Omega(M)`` for completion).  With
all factors small the loss is ``const - <M_O, X> + O(|X|^2)``, so gradient
flow becomes gradient ascent of the effective energy ``E = <M_O, W_L ... W_1>``,
a form of degree L whose gradient field is homogeneous of degree L - 1.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def product(factors) -> jnp.ndarray:
    """``X = W_L ... W_1`` (n1, n2) for factors ``(W1, ..., WL)``."""
    x = factors[0]
    for w in factors[1:]:
        x = w @ x
    return x


def completion_loss(factors, m, mask) -> jnp.ndarray:
    """``1/2 |P_Omega(X - M)|_F^2``; ``mask`` is 1 on observed entries, 0 elsewhere."""
    r = mask * (product(factors) - m)
    return 0.5 * jnp.sum(r * r)


def sensing_residual(x, a, y) -> jnp.ndarray:
    """``A(X) - y`` for sensing matrices ``a`` (m, n1, n2) and measurements ``y`` (m,)."""
    return jnp.einsum("kij,ij->k", a, x) - y


def sensing_loss(factors, a, y) -> jnp.ndarray:
    """``1/2 sum_i (<A_i, X> - y_i)^2``."""
    r = sensing_residual(product(factors), a, y)
    return 0.5 * jnp.sum(r * r)


def effective_energy(factors, m_o) -> jnp.ndarray:
    """``E = <M_O, W_L ... W_1>``."""
    return jnp.sum(m_o * product(factors))


def effective_field(factors, m_o):
    """``dW_k/dt = dE/dW_k = (W_L..W_{k+1})^T M_O (W_{k-1}..W_1)^T`` (gradient ascent).

    For depth 3: ``W3' = M_O W1^T W2^T``, ``W2' = W3^T M_O W1^T``,
    ``W1' = W2^T W3^T M_O`` (THEORY §6).  With ``M_O = z^T`` (one row) this is
    :func:`condensation.core.effective.full_field` of the network.
    """
    return jax.grad(effective_energy)(tuple(factors), m_o)


def reduced_triple(factors, u1, v1):
    """``(a, W, c) = (W3^T u1, W2, W1 v1)`` of a depth-3 factorisation.

    ``u1, v1`` are the top singular pair of ``M_O`` (``M_O v1 = s1 u1``,
    ``M_O^T u1 = s1 v1``).  Under :func:`effective_field`

        a' = s1 W c,     c' = s1 W^T a,     W' = s1 a c^T + sum_{k>1} s_k (W3^T u_k)(W1 v_k)^T,

    the first two exactly, for any ``M_O``.  For rank-one ``M_O`` the triple is
    closed: it is the three-layer system of THEORY §2 with ``|z| -> s1`` once
    the network's ``c = B z`` is written with the unit direction (``c_net =
    |z| c`` with ``v1 = zhat`` turns ``c' = |z|^2 W^T a`` into ``c' = |z| W^T a``).
    The final-stage condition depends on ``c`` only through ``sign(c)`` and is
    applied to this triple unchanged.
    """
    w1, w2, w3 = factors
    return w3.T @ u1, w2, w1 @ v1


def effective_rank(s, eps: float = 1e-300) -> jnp.ndarray:
    """``exp(H(p))``, ``p = s / sum(s)``: the entropy effective rank (Roy & Vetterli)."""
    p = s / jnp.maximum(jnp.sum(s), eps)
    h = -jnp.sum(jnp.where(p > 0, p * jnp.log(jnp.where(p > 0, p, 1.0)), 0.0))
    return jnp.exp(h)


def tracked_singular_values(x, u, v) -> jnp.ndarray:
    """``u_k^T X v_k`` for fixed singular vectors (columns of ``u``, ``v``).

    Unlike sorted singular values these keep their identity when two cross.
    """
    return jnp.einsum("ik,ij,jk->k", u, x, v)


def row_alignment(rows, v) -> jnp.ndarray:
    """``|cos(row_j, v)|`` for every row of ``rows`` (m, d) and a unit vector ``v``."""
    nr = jnp.linalg.norm(rows, axis=-1)
    return jnp.abs(rows @ v) / jnp.where(nr > 0, nr, 1.0)
