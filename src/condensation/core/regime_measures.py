"""How far training has moved from where it started, in the measures the field uses
(issue 24, THEORY §10): lazy vs rich, activation patterns, balancedness.

- **Kernel distance** ``1 - <K_t, K_0> / (|K_t| |K_0|)`` of the empirical tangent
  kernel ``K = J J^T`` (``J = df(x_i)/dtheta``, n x P) on the data: 0 while training
  is lazy (the kernel does not move), towards 1 when it is rich.  Formed in blocks
  of ``chunk`` samples, so neither ``K`` (n x n) nor ``J`` (n x P) is ever held:
  memory ``O(chunk P + chunk^2)``, cost ``(n / chunk)^2`` blocks.
- **Activation-pattern distance**: the fraction of (sample, hidden unit) pairs
  whose pre-activation changed sign (the Hamming distance of ReLU patterns).
- **Balancedness** ``|W_{k+1}|_F^2 - |W_k|_F^2`` per adjacent pair of layers (the
  trace of the matrix laws of :mod:`condensation.core.invariants`).  Gradient
  flow conserves it exactly for positively homogeneous activations (linear,
  ReLU); GD departs from it by ``O(lr)`` over a unit of time, so its drift
  measures GD's departure from the flow.  For tanh it is not conserved: its
  drift then also measures the nonlinearity.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from condensation.core.network import forward


def _jacobian_rows(params, x, act: Callable) -> jnp.ndarray:
    """``J`` for the samples ``x`` (b, d): (b, P), the parameters flattened in order."""

    def f_one(ps, xi):
        return forward(ps, xi[None], act)[0]

    grads = jax.vmap(jax.grad(f_one), in_axes=(None, 0))(list(params), x)
    return jnp.concatenate([g.reshape(x.shape[0], -1) for g in grads], axis=1)


_JACOBIAN_ROWS = jax.jit(_jacobian_rows, static_argnums=2)


def kernel_distance(
    params_t: Sequence, params_0: Sequence, x, act: Callable, *, chunk: int = 256
) -> float:
    """``1 - <K_t, K_0>_F / (|K_t|_F |K_0|_F)`` of the tangent kernels at ``params_t``
    and ``params_0`` on the inputs ``x`` (n, d), accumulated block by block.

    Args:
        params_t: the weights ``(W1, ..., WL)`` now.
        params_0: the weights at the start.
        x: (n, d) inputs.
        act: the activation.
        chunk: samples per block.

    Returns:
        The distance in [0, 1] (NaN where a kernel is zero).
    """
    x = jnp.asarray(x)
    n = x.shape[0]
    jac = _JACOBIAN_ROWS
    starts = list(range(0, n, chunk))
    cross = norm_t = norm_0 = 0.0
    for i, a in enumerate(starts):
        jt_a, j0_a = jac(params_t, x[a : a + chunk], act), jac(params_0, x[a : a + chunk], act)
        for b in starts[i:]:
            jt_b = jt_a if b == a else jac(params_t, x[b : b + chunk], act)
            j0_b = j0_a if b == a else jac(params_0, x[b : b + chunk], act)
            kt, k0 = jt_a @ jt_b.T, j0_a @ j0_b.T
            w = 1.0 if b == a else 2.0  # an off-diagonal block stands for its transpose too
            cross += w * float(jnp.sum(kt * k0))
            norm_t += w * float(jnp.sum(kt * kt))
            norm_0 += w * float(jnp.sum(k0 * k0))
    den = np.sqrt(norm_t) * np.sqrt(norm_0)
    return float(1.0 - cross / den) if den > 0 else float("nan")


def pattern_distance(params_t: Sequence, params_0: Sequence, x) -> float:
    """The fraction of (sample, hidden unit) pairs, over every hidden layer, whose
    pre-activation has a different sign at ``params_t`` than at ``params_0`` (the
    hidden states are taken as ReLU's)."""
    changed = total = 0
    ht = h0 = np.asarray(x, dtype=float)
    for wt, w0 in zip(params_t[:-1], params_0[:-1]):
        pt, p0 = ht @ np.asarray(wt, dtype=float).T, h0 @ np.asarray(w0, dtype=float).T
        changed += int(np.sum((pt > 0) != (p0 > 0)))
        total += pt.size
        ht, h0 = np.maximum(pt, 0.0), np.maximum(p0, 0.0)
    return changed / total if total else float("nan")


def layer_balances(norms: np.ndarray) -> np.ndarray:
    """``|W_{k+1}|_F^2 - |W_k|_F^2`` from layer norms (..., L) → (..., L-1)."""
    sq = np.asarray(norms, dtype=float) ** 2
    return sq[..., 1:] - sq[..., :-1]


def balance_drift(norms: np.ndarray) -> np.ndarray:
    """Per adjacent pair of layers, the largest change of the balance from its first
    value, relative to the pair's squared norms at that time:
    ``max_t |B_k(t) - B_k(0)| / (|W_k(t)|^2 + |W_{k+1}(t)|^2)`` from norms (K, L) →
    (L-1,).

    >>> balance_drift(np.array([[1.0, 2.0], [2.0, 2.5]]))  # B: 3 then 2.25
    array([0.07317073])
    """
    sq = np.asarray(norms, dtype=float) ** 2
    b = sq[:, 1:] - sq[:, :-1]
    scale = sq[:, 1:] + sq[:, :-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.abs(b - b[0]) / np.where(scale > 0, scale, np.nan)
    return np.nanmax(rel, axis=0) if rel.size else np.zeros(0)
