"""How far training has moved from where it started, in the measures the field uses
(issue 24, THEORY §10): lazy vs rich, activation patterns, balancedness.

- **Kernel distance** ``1 - <K_t, K_0> / (|K_t| |K_0|)`` of the empirical tangent
  kernel ``K = J J^T`` (``J = df(x_i)/dtheta``, n x P) on the data: 0 while training
  is lazy (the kernel does not move), towards 1 when it is rich.  Formed layer by
  layer from n x m factors, never the n x P Jacobian, and ``chunk`` rows of ``K``
  at a time (memory ``O(n (chunk + sum_l m_l))``, cost ``O(n^2 sum_l m_l)``).
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


def _layer_factors(params, x, act: Callable):
    """Per layer l: its inputs ``H_l`` (n, m_{l-1}) and ``D_l = df(x_i)/dz_l`` (n, m_l),
    the derivative of the output by the layer's pre-activations, by one backward
    pass (each output depends on its own sample only, so the gradient of the sum
    holds every sample's row)."""

    def total(offsets):
        h, inputs = x, []
        for w, o in zip(params[:-1], offsets[:-1]):
            inputs.append(h)
            h = act(h @ w.T + o)
        inputs.append(h)
        return jnp.sum(h @ params[-1].T + offsets[-1]), inputs

    offsets = [jnp.zeros((x.shape[0], w.shape[0]), x.dtype) for w in params]
    ds, hs = jax.grad(total, has_aux=True)(offsets)
    return hs, ds


_LAYER_FACTORS = jax.jit(_layer_factors, static_argnums=2)


def kernel_distance(
    params_t: Sequence, params_0: Sequence, x, act: Callable, *, chunk: int = 1024
) -> float:
    """``1 - <K_t, K_0>_F / (|K_t|_F |K_0|_F)`` of the tangent kernels at ``params_t``
    and ``params_0`` on the inputs ``x`` (n, d).

    A layer's weights ``W_l`` enter the output through ``z_l = W_l h_{l-1}``, so
    ``K = sum_l (D_l D_l^T) * (H_l H_l^T)`` (elementwise), with ``H_l`` the layer's
    inputs and ``D_l`` the output's derivative by ``z_l`` (:func:`_layer_factors`):
    n x m matrices, never the n x P Jacobian.  ``K`` itself is formed ``chunk``
    rows at a time and reduced at once.

    Args:
        params_t: the weights ``(W1, ..., WL)`` now.
        params_0: the weights at the start.
        x: (n, d) inputs.
        act: the activation.
        chunk: rows of the kernels per block.

    Returns:
        The distance in [0, 1] (NaN where a kernel is zero).
    """
    x = jnp.asarray(x)
    ft = [(np.asarray(h), np.asarray(d)) for h, d in zip(*_LAYER_FACTORS(list(params_t), x, act))]
    f0 = [(np.asarray(h), np.asarray(d)) for h, d in zip(*_LAYER_FACTORS(list(params_0), x, act))]

    def rows(factors, r: slice) -> np.ndarray:
        return sum((d[r] @ d.T) * (h[r] @ h.T) for h, d in factors)

    cross = norm_t = norm_0 = 0.0
    for a in range(0, x.shape[0], chunk):
        kt, k0 = rows(ft, slice(a, a + chunk)), rows(f0, slice(a, a + chunk))
        cross += float(np.sum(kt * k0))
        norm_t += float(np.sum(kt * kt))
        norm_0 += float(np.sum(k0 * k0))
    den = np.sqrt(norm_t) * np.sqrt(norm_0)
    return float(1.0 - cross / den) if den > 0 else float("nan")


def pattern_distance(params_t: Sequence, params_0: Sequence, x, act: Callable) -> float:
    """The fraction of (sample, hidden unit) pairs, over every hidden layer, whose
    pre-activation has a different sign at ``params_t`` than at ``params_0``, each
    network's hidden states propagated through its activation ``act`` (for ReLU:
    the Hamming distance of the activation patterns)."""
    changed = total = 0
    ht = h0 = np.asarray(x, dtype=float)
    for wt, w0 in zip(params_t[:-1], params_0[:-1]):
        pt, p0 = ht @ np.asarray(wt, dtype=float).T, h0 @ np.asarray(w0, dtype=float).T
        changed += int(np.sum((pt > 0) != (p0 > 0)))
        total += pt.size
        ht, h0 = np.asarray(act(pt)), np.asarray(act(p0))
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
    b = layer_balances(norms)
    scale = sq[:, 1:] + sq[:, :-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.abs(b - b[0]) / np.where(scale > 0, scale, np.nan)
    return np.nanmax(rel, axis=0) if rel.size else np.zeros(0)
