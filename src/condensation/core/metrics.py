"""Condensation measurements on network parameters (numpy, post hoc).

All functions take one member's parameters ``(W1, ..., WL)`` or arrays derived
from them; :func:`snapshot_metrics` maps them over members and snapshots.
"""

from __future__ import annotations

import numpy as np
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.linalg import eigh
from scipy.sparse.linalg import svds
from scipy.spatial.distance import squareform

from condensation.core import alignment

ALIGNED = 0.95  # |cos| above which a neuron counts as aligned / in one cluster
COVER = 0.9  # clusters are counted until they hold this share of the neurons


def _unit_scale(rows: np.ndarray) -> np.ndarray:
    """``rows`` divided by each row's largest magnitude: cosines are scale-free, and
    this keeps the norms of huge (or tiny) rows from overflowing (underflowing);
    non-finite entries become 0.  Rows of ordinary size are not rescaled."""
    rows = np.nan_to_num(np.asarray(rows, dtype=float), nan=0.0, posinf=0.0, neginf=0.0)
    big = np.max(np.abs(rows), axis=-1, keepdims=True) if rows.size else rows
    return rows / np.where(_extreme(big), big, 1.0)


def _extreme(big: np.ndarray) -> np.ndarray:
    """Where a largest magnitude is far enough from 1 that squares could leave the
    float64 range (rows of ordinary size are left bit-for-bit as they are)."""
    return (big > 0) & ((big > 1e100) | (big < 1e-100))


def abs_cos_to(rows: np.ndarray, z: np.ndarray) -> np.ndarray:
    """``|cos(b_j, z)|`` for each row ``b_j`` of ``rows`` (..., m, d) → (..., m): the
    core's :func:`condensation.core.alignment.abs_cos_to` in numpy, on rows first
    rescaled (non-finite entries 0, huge or tiny rows by their largest entry)."""
    return alignment.abs_cos_to(_unit_scale(rows), z, xp=np)


def cosine_matrix(rows: np.ndarray) -> np.ndarray:
    """Cosine similarity of the rows of a (m, d) matrix → (m, m)."""
    rows = _unit_scale(rows)
    n = np.linalg.norm(rows, axis=1, keepdims=True)
    u = rows / np.where(n > 0, n, 1.0)
    return np.clip(u @ u.T, -1.0, 1.0)


def eigen_order(cos: np.ndarray) -> np.ndarray:
    """Order neurons by their entry in the leading eigenvector of ``cos``.

    Neurons pointing the same way get similar entries, so sorted blocks show;
    a neuron and its opposite land at the two ends.
    """
    m = cos.shape[0]
    if m < GRAM_MIN_SIZE:
        vec = np.linalg.eigh(cos)[1][:, -1]
    else:  # the leading eigenvector alone: about 3x faster at m = 1000
        vec = eigh(cos, subset_by_index=[m - 1, m - 1])[1][:, 0]
    return np.argsort(vec, kind="stable")


def row_order(rows: np.ndarray) -> np.ndarray:
    """:func:`eigen_order` of ``cosine_matrix(rows)`` for (m, d) rows, without the
    (m, m) matrix where ``d < m``: that matrix is ``U U^T`` (``U`` the unit rows),
    whose leading eigenvector is ``U``'s leading left singular vector, an SVD of
    ``O(m d^2)`` in place of an eigensolver over ``O(m^2)`` entries (width 4000:
    milliseconds against seconds).  The same order up to its direction (the
    eigenvector's sign) and to ties."""
    rows = np.nan_to_num(_unit_scale(np.asarray(rows, dtype=float)), posinf=0.0, neginf=0.0)
    m, d = rows.shape
    if d >= m:
        return eigen_order(np.nan_to_num(cosine_matrix(rows)))
    n = np.linalg.norm(rows, axis=1, keepdims=True)
    u = rows / np.where(n > 0, n, 1.0)
    vec = np.linalg.svd(u, full_matrices=False)[0][:, 0]
    return np.argsort(vec, kind="stable")


def count_clusters(rows: np.ndarray, threshold: float = ALIGNED, cover: float = COVER) -> int:
    """Number of orientation clusters among the rows of ``rows``.

    How it decides: orientations are lines, so ``b`` and ``-b`` count as one;
    complete-linkage clustering on the distance ``1 - |cos|`` is cut so that
    every pair inside a cluster has ``|cos| >= threshold``; the answer is how
    many of the largest clusters it takes to hold ``cover`` (90%) of the neurons,
    so a few stragglers do not count, while an uncondensed layer (every neuron
    its own orientation) gives about ``0.9 m``.
    """
    return _clusters_of_cosines(cosine_matrix(rows), threshold, cover)


def _clusters_of_cosines(cos: np.ndarray, threshold: float, cover: float) -> int:
    """:func:`count_clusters` from the (m, m) cosine matrix of the rows."""
    m = cos.shape[0]
    if m == 1:
        return 1
    dist = 1.0 - np.abs(cos)
    np.fill_diagonal(dist, 0.0)
    dist = np.maximum((dist + dist.T) / 2, 0.0)
    labels = fcluster(
        linkage(squareform(dist, checks=False), "complete"), 1 - threshold, "distance"
    )
    sizes = np.sort(np.bincount(labels))[::-1]
    return int(np.searchsorted(np.cumsum(sizes), cover * m - 1e-9) + 1)


def cluster_counts(
    rows: np.ndarray, threshold: float = ALIGNED, cover: float = COVER, *, batch: int = 32
) -> np.ndarray:
    """:func:`count_clusters` of every (m, d) matrix in a stack ``rows`` (..., m, d) →
    (...) ints.  The cosine matrices are formed ``batch`` at a time in one batched
    product; the clustering itself (scipy's complete linkage, O(m^2) per matrix)
    runs once per matrix."""
    rows = np.asarray(rows)
    lead, (m, d) = rows.shape[:-2], rows.shape[-2:]
    flat = rows.reshape(-1, m, d)
    out = np.empty(flat.shape[0], dtype=np.int64)
    for a in range(0, flat.shape[0], batch):
        for j, cos in enumerate(cosine_matrices(flat[a : a + batch])):
            out[a + j] = _clusters_of_cosines(cos, threshold, cover)
    return out.reshape(lead)


def cosine_matrices(rows: np.ndarray) -> np.ndarray:
    """:func:`cosine_matrix` of every matrix in a stack (..., m, d) → (..., m, m)."""
    rows = _unit_scale(rows)
    n = np.linalg.norm(rows, axis=-1, keepdims=True)
    u = rows / np.where(n > 0, n, 1.0)
    return np.clip(u @ np.swapaxes(u, -1, -2), -1.0, 1.0)


def sigma_ratio(w: np.ndarray) -> float:
    """``sigma_2 / sigma_1`` of a matrix (0 for a rank-one one)."""
    return float(sigma_ratios(np.asarray(w, dtype=float)))


GRAM_MIN_SIZE = 256  # from this min(m, n) up, the top two singular values come from Lanczos


def sigma_ratios(w: np.ndarray) -> np.ndarray:
    """``sigma_2 / sigma_1`` of every matrix in a stack (..., m, n) → (...): NaN where
    a matrix has a non-finite entry, 0 where it is rank one (or zero).

    Matrices with ``min(m, n) < GRAM_MIN_SIZE`` go through one batched SVD; larger
    ones through their top two singular values alone (Lanczos, :func:`_top_two_ratio`;
    at width 2000, 0.12 s against 0.56 s for the Gram's eigenvalues on a condensed
    matrix), equal to the full SVD's ratio to about 1e-15.
    """
    w = np.asarray(w, dtype=float)
    lead, shape = w.shape[:-2], w.shape[-2:]
    finite = np.all(np.isfinite(w), axis=(-2, -1))
    big = np.max(np.abs(np.where(finite[..., None, None], w, 0.0)), axis=(-2, -1), initial=0.0)
    scale = np.where(_extreme(big), big, 1.0)[..., None, None]
    w = np.where(finite[..., None, None], w, 0.0) / scale  # extreme matrices rescaled
    if min(shape) < 2:
        out = np.zeros(lead)
    elif min(shape) < GRAM_MIN_SIZE:
        s = np.linalg.svd(w, compute_uv=False)  # (..., r)
        out = np.where(s[..., 0] > 0, s[..., 1] / np.where(s[..., 0] > 0, s[..., 0], 1), 0)
    else:
        flat = w.reshape(-1, *shape)
        out = np.array([_top_two_ratio(a) for a in flat]).reshape(lead)
    out = np.asarray(out, dtype=float)
    out[~finite] = np.nan
    return out


def _top_two_ratio(a: np.ndarray) -> float:
    """``sigma_2 / sigma_1`` of one matrix from its top two singular values by
    Lanczos (scipy's ``svds``, ARPACK, from a fixed start: deterministic).  A few
    (m x m) matrix-vector products: 5-20x faster than the Gram's eigenvalues where
    the spectrum is condensed (the matrices this measures after the escape), as
    fast near a random initialisation; equal to the full SVD's ratio to ~1e-15."""
    if not np.any(a):
        return 0.0
    start = np.full(min(a.shape), 1.0 / np.sqrt(min(a.shape)))
    b = a if a.shape[0] >= a.shape[1] else a.T  # start vector on the smaller side
    lo, hi = np.sort(svds(b, k=2, tol=0, return_singular_vectors=False, v0=start))
    return float(lo / hi) if hi > 0 else 0.0


def top_direction_alignment(rows: np.ndarray) -> float:
    """Median over the rows ``b_j`` of ``|cos(b_j, v_1)|``, ``v_1`` the top right-singular
    vector of ``rows`` (m, d): condensation onto a common direction that need not be z."""
    if not np.any(rows):
        return 0.0
    v1 = np.linalg.svd(rows, full_matrices=False)[2][0]
    return float(np.median(abs_cos_to(rows, v1)))


def condensation_metrics(params, z: np.ndarray) -> dict[str, float | int | None]:
    """The per-state numbers reported at the escape step and every snapshot."""
    cosines = abs_cos_to(params[0], z)
    return {
        "median_abs_cos": float(np.median(cosines)),
        "frac_abs_cos_above_0_95": float(np.mean(cosines > ALIGNED)),
        "w_sigma_ratio": sigma_ratio(params[1]) if len(params) >= 3 else None,
        "n_clusters": count_clusters(params[0]),
    }


def layer_norms(snapshots) -> np.ndarray:
    """Frobenius norms of the layers ``W_k`` (..., *shape_k) → (..., L), inf where a
    layer's norm overflows."""
    with np.errstate(over="ignore", invalid="ignore"):
        return np.stack([np.linalg.norm(w, axis=(-2, -1)) for w in snapshots], -1)


def alignment_metrics(rows: np.ndarray, z: np.ndarray) -> dict[str, np.ndarray]:
    """``median_abs_cos`` and ``frac_abs_cos_above_0_95`` of the first-layer rows
    (..., m1, d) with ``z`` → (...) each."""
    cosines = abs_cos_to(rows, z)  # (..., m1)
    return {
        "median_abs_cos": np.median(cosines, axis=-1),
        "frac_abs_cos_above_0_95": np.mean(cosines > ALIGNED, axis=-1),
    }


def snapshot_metrics(snapshots, z: np.ndarray) -> dict[str, np.ndarray]:
    """Metrics over (E, K) snapshots: alignment, sigma ratio, clusters, layer norms."""
    out = {
        **alignment_metrics(snapshots[0], z),
        "layer_norms": layer_norms(snapshots),
        "n_clusters": cluster_counts(snapshots[0]),
    }
    if len(snapshots) >= 3:
        out["w_sigma_ratio"] = sigma_ratios(snapshots[1])
    return out
