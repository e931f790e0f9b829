"""The regime indicator of THEORY §8: relative distance RD_k and its width slope.

``RD_k(t) = |W_k(t) - W_k(0)|_F / |W_k(0)|_F`` for layer k's input weights (the
rows of ``W_k``, the bias column included).  Over widths ``m``, the slope
``S_k = d log RD_k / d log m`` (a least-squares fit) says how layer k trains as
the width grows: ``S_k < -threshold`` linear (kernel-like: the weights barely
move), ``S_k > threshold`` condensed, in between critical.  Pure numpy.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

SLOPE_THRESHOLD = 0.1  # |S| at most this: critical (stated in every table that uses it)


def relative_distance(w_t: np.ndarray, w_0: np.ndarray) -> np.ndarray:
    """``|W(t) - W(0)|_F / |W(0)|_F`` over the last two axes (leading axes kept)."""
    w_t, w_0 = np.asarray(w_t, dtype=float), np.asarray(w_0, dtype=float)
    num = np.sqrt(np.sum((w_t - w_0) ** 2, axis=(-2, -1)))
    den = np.sqrt(np.sum(w_0**2, axis=(-2, -1)))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def rd_over_snapshots(snapshots: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Per member and layer from snapshots ``W_k`` of shape (E, K_k, *shape_k) (each
    layer may store its own K_k snapshot times, first and last included): the end
    value ``RD_k(t_K)`` and the max over that layer's stored times; both (E, L)."""
    ends, maxes = [], []
    for w in snapshots:
        rd = relative_distance(w, w[:, :1])  # (E, K_k)
        ends.append(rd[:, -1])
        with np.errstate(invalid="ignore"):
            maxes.append(np.nanmax(np.where(np.isfinite(rd), rd, -np.inf), axis=1))
    return np.stack(ends, axis=-1), np.stack(maxes, axis=-1)


def geo_mean(values) -> float:
    """The geometric mean of the finite, positive ``values`` (e.g. RD over seeds);
    NaN when there are none.

    >>> geo_mean([1.0, 4.0, float("nan"), 0.0])
    2.0
    """
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v) & (v > 0)]
    return float(np.exp(np.mean(np.log(v)))) if v.size else math.nan


def width_slope(widths: Sequence[float], rd: Sequence[float]) -> float:
    """Least-squares slope of ``log rd`` against ``log width``; NaN with fewer than two
    finite positive values."""
    w, r = np.asarray(widths, dtype=float), np.asarray(rd, dtype=float)
    ok = np.isfinite(r) & (r > 0) & (w > 0)
    if np.count_nonzero(ok) < 2 or np.unique(w[ok]).size < 2:
        return float("nan")
    return float(np.polyfit(np.log(w[ok]), np.log(r[ok]), 1)[0])


def classify(slope: float, threshold: float = SLOPE_THRESHOLD) -> str:
    """``linear`` (S < -threshold), ``condensed`` (S > threshold), else ``critical``;
    ``unclassified`` for a NaN slope."""
    if not np.isfinite(slope):
        return "unclassified"
    if slope < -threshold:
        return "linear"
    if slope > threshold:
        return "condensed"
    return "critical"
