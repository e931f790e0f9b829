"""The spectral form of the depth-3 effective dynamics (derived here): a closed
second-order system for ``c = B z`` alone, diagonal in the eigenbasis of the
conserved matrix ``K0``; each step costs O(m1) after one eigendecomposition.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from condensation.core.alignment import abs_cos_reduced
from condensation.core.final_stage import count_inner_violations, sign_margins
from condensation.effective.polar import PolarProblem
from condensation.errors import InputError

# With kappa = |c|^2 - |z|^2 |a|^2 and K0 = W^T W - c c^T / |z|^2 (both conserved),
#     c'' = (2 |c|^2 - kappa) c + |z|^2 K0 c,
# which is diagonal in the eigenbasis of K0.  Polar variables: c = e^R u,
# c' = e^(2R) w, ds = e^R dt, dR/ds = <u, w>; every right-hand side costs O(m1).


def _spectral_polar(u, r, args):
    uc, w = u
    lam, kappa, zz, r0 = args[0], args[1], args[2], args[3]
    e2 = jnp.exp(-2.0 * (r0 + r))
    rate = uc @ w
    acc = (2.0 * (uc @ uc) - kappa * e2) * uc + zz * e2 * lam * uc
    return (w - rate * uc, acc - 2.0 * rate * w), rate


def _spectral_lift(u, big_r, args):
    uc, w = u
    return (jnp.exp(big_r) * uc, jnp.exp(2.0 * big_r) * w)


def spectral_diag(y, args):
    """Per-step diagnostics of the spectral form (E, rho, the inner-product
    constraint, the alignment with z); ``args`` as :func:`spectral_problem` makes them."""
    lam, kappa, zz, r0, vecs, bperp2, rho_const = args
    c_hat, p_hat = y
    c, p = vecs @ c_hat, vecs @ p_hat
    # v = W^T a = c' / |z|^2: p is a positive multiple of v
    inner = count_inner_violations(sign_margins(p, c)).astype(jnp.float64)
    return {
        "E": (c_hat @ p_hat) / zz,
        "rho": 3.0 * (c_hat @ c_hat) / zz + rho_const,
        "fs_inner_violations": inner,
        "min_abs_cos": jnp.min(abs_cos_reduced(c, zz, bperp2)),
    }


def spectral_problem(b, w, a, z_eff):
    """The spectral form of the depth-3 network ``(B, W, a)`` with drive ``z_eff``.

    Args:
        b, w, a: the weights ``W1`` (m1, d), ``W2`` (m2, m1), ``W3`` (1, m2).
        z_eff: the effective drive ``g^2 z``, shape (d,), non-zero.

    Returns:
        ``(y0, args, b_perp, problem)``: the initial state ``(c_hat, p_hat)`` in the
        eigenbasis of ``K0``, the solver's arguments, the frozen rows of ``B``
        orthogonal to ``z`` and the :class:`~condensation.effective.polar.PolarProblem`
        (its per-step diagnostics: :func:`spectral_diag`).
    """
    zz = float(z_eff @ z_eff)
    c0, a0 = b @ z_eff, a[0]
    p0 = zz * (w.T @ a0)
    lam, vecs = np.linalg.eigh(w.T @ w - np.outer(c0, c0) / zz)
    kappa = float(c0 @ c0 - zz * (a0 @ a0))
    c_hat, p_hat = vecs.T @ c0, vecs.T @ p0
    n0 = float(np.linalg.norm(c_hat))
    if n0 == 0:
        raise InputError("W1", "B z = 0", "no first-layer neuron sees z", "use a random init")
    b_perp = b - np.outer(c0, z_eff) / zz
    bperp2 = np.sum(b_perp**2, axis=1)
    rho_const = float(np.sum(lam) + np.sum(bperp2) - kappa / zz)  # tr K0 + |B_perp|^2 - kappa/|z|^2
    args = (lam, kappa, zz, float(np.log(n0)), vecs, bperp2, rho_const)
    prob = PolarProblem(
        _spectral_polar,
        _spectral_lift,
        2,
        (jnp.asarray(c_hat / n0), jnp.asarray(p_hat / n0**2)),
        float(np.log(n0)),
        args,
    )
    return (c_hat, p_hat), args, b_perp, prob
