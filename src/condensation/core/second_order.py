"""The second-order effective energy: the effective dynamics (THEORY §2) with its
two leading neglected terms put back (derived here, THEORY §9).

Gradient flow on ``R = 1/(2n) sum_i (f(x_i) - y_i)^2`` is gradient ascent of
``-R = mean(y f) - mean(f^2) / 2`` (up to a constant).  The effective dynamics
keeps only ``mean(y f1) = W_L ... W_1 z`` (times ``g^(L-1)``, ``g = sigma'(0)``),
``f1`` the network linearised at zero weights.  The two terms it drops first are
exactly the two terms of the fast-forward error estimate ``u^p + rms f / rms y``:

- the activation's curvature: with ``sigma(u) = g u + k2 u^2 + k3 u^3 + O(u^4)``,
  the first nonlinear term of hidden layer ``l`` (``1 <= l < L``), propagated
  linearly to the output, adds to ``f``

      f_nl(x) = sum_l A_l [k2 (P_l x)^2 + k3 (P_l x)^3]      (powers elementwise)

  with ``P_l = g^(l-1) W_l ... W_1`` (m_l, d) the linear pre-activations and
  ``A_l = g^(L-1-l) W_L ... W_(l+1)`` (1, m_l) the linear read-out after layer l
  (relative size ``u`` when ``k2 != 0``, ``u^2`` for odd activations);
- the residual: ``-mean(f1^2) / 2 = -P_L Sigma P_L^T / 2``,
  ``Sigma = mean(x x^T)`` (relative size ``|f| / |y|``).

So the second-order energy is

    E2 = P_L z + sum_l A_l [k2 M2(P_l) + k3 M3(P_l)] - P_L Sigma P_L^T / 2,

``Mq(R)_j = mean_i y_i (R_j . x_i)^q``: the data enter only through ``z``,
``Sigma`` and the moments ``mean(y x^(x)q)`` (d^q numbers; for large ``d`` the
moments are contracted sample by sample instead, :func:`data_moments`).  What it
still neglects is of relative size ``u^2 (u + |f|/|y|) + (|f|/|y|)^2`` (odd
activations: ``u^4 + u^2 |f|/|y| + (|f|/|y|)^2``), the square of what the
first-order dynamics neglects.  No evaluation touches the network's hidden
layers on the data: per evaluation the cost is that of the weight products and
of the moment contractions, independent of ``n`` when the moments are dense.
"""

from __future__ import annotations

from functools import cache
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

DENSE_MAX = 1 << 20  # largest moment tensor (entries) stored dense; above: sample by sample


class Moments(NamedTuple):
    """What :func:`second_order_energy` needs of the data (a pytree of arrays).

    ``m2``/``m3``: ``mean(y x (x) x)`` (d, d) and ``mean(y x (x) x (x) x)`` (d, d, d)
    when dense; None when not needed (``k2 = 0`` / ``k3 = 0``); an empty array when
    contracted from the samples ``x`` (n, d) and ``y`` (n,) instead (then those
    are set)."""

    z: jnp.ndarray  # (d,) mean(y x)
    sigma: jnp.ndarray  # (d, d) mean(x x^T)
    m2: jnp.ndarray | None
    m3: jnp.ndarray | None
    x: jnp.ndarray | None  # (n, d): only when a needed moment is not dense
    y: jnp.ndarray | None  # (n,)
    coef: jnp.ndarray  # (3,) g, k2, k3


@cache  # per activation function: its nested grads run op by op at every call
def taylor_coefficients(fn) -> tuple[float, float, float]:
    """``(g, k2, k3) = (sigma'(0), sigma''(0) / 2, sigma'''(0) / 6)`` of an activation."""
    d1 = jax.grad(fn)
    d2 = jax.grad(d1)
    d3 = jax.grad(d2)
    return float(d1(0.0)), float(d2(0.0)) / 2.0, float(d3(0.0)) / 6.0


def data_moments(x, y, coef, dense_max: int = DENSE_MAX) -> Moments:
    """:class:`Moments` of data ``x`` (n, d), ``y`` (n,) for Taylor coefficients
    ``coef = (g, k2, k3)``; a needed moment with more than ``dense_max`` entries is
    left to be contracted from the samples."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    n, d = x.shape
    _, k2, k3 = coef
    z = (y @ x) / n
    sigma = (x.T @ x) / n
    m2 = m3 = None
    if k2 != 0.0:
        m2 = np.einsum("i,ip,iq->pq", y, x, x) / n if d * d <= dense_max else np.zeros(0)
    if k3 != 0.0:
        m3 = np.einsum("i,ip,iq,ir->pqr", y, x, x, x) / n if d**3 <= dense_max else np.zeros(0)
    samples = any(m is not None and m.size == 0 for m in (m2, m3))
    return Moments(
        jnp.asarray(z),
        jnp.asarray(sigma),
        None if m2 is None else jnp.asarray(m2),
        None if m3 is None else jnp.asarray(m3),
        jnp.asarray(x) if samples else None,
        jnp.asarray(y) if samples else None,
        jnp.asarray(np.array(coef, dtype=np.float64)),
    )


def _moment(mom: Moments, rows, q: int):
    """``mean_i y_i (rows_j . x_i)^q`` for rows (m, d) -> (m,)."""
    dense = mom.m2 if q == 2 else mom.m3
    if dense.size:
        if q == 2:
            return jnp.einsum("jp,pq,jq->j", rows, dense, rows)
        return jnp.einsum("jp,jq,pqr,jr->j", rows, rows, dense, rows, optimize="optimal")
    h = rows @ mom.x.T  # (m, n)
    return jnp.mean(mom.y * h**q, axis=1)


def second_order_energy(params, mom: Moments) -> jnp.ndarray:
    """``E2`` of the module docstring at weights ``params`` (W_1 .. W_L, W_L of shape
    (1, m_(L-1))), a scalar."""
    g, k2, k3 = mom.coef[0], mom.coef[1], mom.coef[2]
    depth = len(params)
    prefix = [params[0]]  # P_l, (m_l, d)
    for w in params[1:]:
        prefix.append(g * (w @ prefix[-1]))
    readout = [params[-1]]  # A_l for l = L-1 down to 1, (1, m_l)
    for w in params[depth - 2 : 0 : -1]:
        readout.append(g * (readout[-1] @ w))
    readout.reverse()
    out = prefix[-1][0] @ mom.z
    for rows, a in zip(prefix[:-1], readout):
        if mom.m2 is not None:
            out = out + k2 * (a[0] @ _moment(mom, rows, 2))
        if mom.m3 is not None:
            out = out + k3 * (a[0] @ _moment(mom, rows, 3))
    v = prefix[-1][0]
    return out - 0.5 * v @ (mom.sigma @ v)


def second_order_field(params, mom: Moments):
    """``dE2/dW_k`` for every layer: the second-order effective vector field."""
    return jax.grad(second_order_energy)(tuple(params), mom)
