"""Condensation measurements on network parameters (numpy, post hoc).

All functions take one member's parameters ``(W1, ..., WL)`` or arrays derived
from them; :func:`snapshot_metrics` maps them over members and snapshots.
"""

from __future__ import annotations

import numpy as np
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.spatial.distance import squareform

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
    """``|cos(b_j, z)|`` for each row ``b_j`` of ``rows`` (..., m, d) → (..., m)."""
    rows = _unit_scale(rows)
    nr = np.linalg.norm(rows, axis=-1) * np.linalg.norm(z)
    return np.abs(rows @ z) / np.where(nr > 0, nr, 1.0)


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
    _, vecs = np.linalg.eigh(cos)
    return np.argsort(vecs[:, -1], kind="stable")


def count_clusters(rows: np.ndarray, threshold: float = ALIGNED, cover: float = COVER) -> int:
    """Number of orientation clusters among the rows of ``rows``.

    How it decides: orientations are lines, so ``b`` and ``-b`` count as one;
    complete-linkage clustering on the distance ``1 - |cos|`` is cut so that
    every pair inside a cluster has ``|cos| >= threshold``; the answer is how
    many of the largest clusters it takes to hold ``cover`` (90%) of the neurons,
    so a few stragglers do not count, while an uncondensed layer (every neuron
    its own orientation) gives about ``0.9 m``.
    """
    m = rows.shape[0]
    if m == 1:
        return 1
    dist = 1.0 - np.abs(cosine_matrix(rows))
    np.fill_diagonal(dist, 0.0)
    dist = np.maximum((dist + dist.T) / 2, 0.0)
    labels = fcluster(
        linkage(squareform(dist, checks=False), "complete"), 1 - threshold, "distance"
    )
    sizes = np.sort(np.bincount(labels))[::-1]
    return int(np.searchsorted(np.cumsum(sizes), cover * m - 1e-9) + 1)


def sigma_ratio(w: np.ndarray) -> float:
    """``sigma_2 / sigma_1`` of a matrix (0 for a rank-one one)."""
    w = np.asarray(w, dtype=float)
    if not np.all(np.isfinite(w)):
        return float("nan")
    big = np.max(np.abs(w)) if w.size else 0.0
    s = np.linalg.svd(w / big if _extreme(np.asarray(big)) else w, compute_uv=False)
    return float(s[1] / s[0]) if s.size > 1 and s[0] > 0 else 0.0


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


def _layer_norms(snapshots) -> np.ndarray:
    """Frobenius norms (E, K, L), inf where a layer's norm overflows."""
    with np.errstate(over="ignore", invalid="ignore"):
        return np.stack([np.linalg.norm(w, axis=(-2, -1)) for w in snapshots], -1)


def snapshot_metrics(snapshots, z: np.ndarray) -> dict[str, np.ndarray]:
    """Metrics over (E, K) snapshots: alignment, sigma ratio, clusters, layer norms."""
    e, k = snapshots[0].shape[:2]
    cosines = abs_cos_to(snapshots[0], z)  # (E, K, m1)
    out = {
        "median_abs_cos": np.median(cosines, axis=-1),
        "frac_abs_cos_above_0_95": np.mean(cosines > ALIGNED, axis=-1),
        "layer_norms": _layer_norms(snapshots),
        "n_clusters": np.array(
            [[count_clusters(snapshots[0][i, j]) for j in range(k)] for i in range(e)]
        ),
    }
    if len(snapshots) >= 3:
        w = np.asarray(snapshots[1], dtype=float)
        finite = np.all(np.isfinite(w), axis=(-2, -1))  # (E, K)
        big = np.max(np.abs(np.where(finite[..., None, None], w, 0.0)), axis=(-2, -1))
        scale = np.where(_extreme(big), big, 1.0)[..., None, None]
        w = np.where(finite[..., None, None], w, 0.0) / scale
        s = np.linalg.svd(w, compute_uv=False)  # (E, K, r); extreme snapshots rescaled
        s[~finite] = np.nan
        out["w_sigma_ratio"] = np.where(
            s[..., 0] > 0, s[..., 1] / np.where(s[..., 0] > 0, s[..., 0], 1), 0
        )
    return out
