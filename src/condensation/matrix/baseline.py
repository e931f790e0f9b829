"""Minimum-nuclear-norm completion by ADMM with singular value thresholding."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from condensation.matrix.problems import Problem


# ---- baseline: minimum nuclear norm --------------------------------------------------
@dataclass(frozen=True)
class NuclearResult:
    x: np.ndarray
    iterations: int
    converged: bool
    constraint_residual: float  # |A(X) - y| / |y|


def _svt(z: np.ndarray, tau: float) -> np.ndarray:
    u, s, vt = np.linalg.svd(z, full_matrices=False)
    s = np.maximum(s - tau, 0.0)
    k = int(np.count_nonzero(s))
    return (u[:, :k] * s[:k]) @ vt[:k]


def min_nuclear_norm(
    problem: Problem,
    *,
    tol: float = 1e-6,
    max_iter: int = 5000,
    rho: float | None = None,
    relax: float = 1.6,
) -> NuclearResult:
    """``min |X|_*`` subject to ``A(X) = y`` (completion: ``P_Omega(X) = P_Omega(M)``).

    ADMM on ``|X|_* + indicator(A(Z) = y)`` with the split ``X = Z``: an SVT step,
    a projection onto the affine constraint set and a dual step; the penalty
    ``rho`` is adapted by residual balancing.  Stops when both the primal
    residual ``|X - Z|`` and the dual residual ``rho |Z - Z_prev|`` are below
    ``tol |M_O|_F``.
    """
    m_o = problem.m_obs
    scale = float(np.linalg.norm(m_o))
    if problem.kind == "completion":
        obs = problem.mask.astype(bool)
        target = problem.m

        def project(x):
            out = x.copy()
            out[obs] = target[obs]
            return out
    else:
        a = problem.a.reshape(problem.a.shape[0], -1)
        gram = np.linalg.cholesky(a @ a.T)

        def project(x):
            r = problem.y - a @ x.ravel()
            lam = np.linalg.solve(gram.T, np.linalg.solve(gram, r))
            return x + (a.T @ lam).reshape(x.shape)

    rho = rho if rho is not None else 0.3 / np.linalg.norm(m_o, 2)
    z = project(np.zeros_like(m_o))
    w = np.zeros_like(m_o)  # scaled dual
    converged = False
    iterations = 0
    for iterations in range(1, max_iter + 1):  # noqa: B007 (reported below)
        x = _svt(z - w, 1.0 / rho)
        z_prev = z
        x_relaxed = relax * x + (1.0 - relax) * z_prev  # over-relaxation (Boyd et al. §3.4.3)
        z = project(x_relaxed + w)
        w = w + x_relaxed - z
        r_primal = np.linalg.norm(x - z)
        r_dual = rho * np.linalg.norm(z - z_prev)
        if r_primal < tol * scale and r_dual < tol * scale:
            converged = True
            break
        if r_primal > 10 * r_dual:
            rho, w = rho * 2.0, w / 2.0
        elif r_dual > 10 * r_primal:
            rho, w = rho / 2.0, w * 2.0
    if problem.kind == "completion":
        res = float(np.linalg.norm(problem.mask * (z - problem.m)))
        ynorm = float(np.linalg.norm(m_o))
    else:
        res = float(np.linalg.norm(np.einsum("kij,ij->k", problem.a, z) - problem.y))
        ynorm = float(np.linalg.norm(problem.y))
    # report X (the thresholded iterate) snapped onto the constraint set
    return NuclearResult(project(x), iterations, converged, res / max(ynorm, 1e-300))
