"""Closed forms of the staircase of deep matrix factorisation (THEORY §10).

With ``M = diag(s_1, s_2, ...)`` fully observed (loss ``1/2 |X - M|_F^2``) and
every factor ``eps I``, gradient flow keeps ``X`` diagonal and each mode
``u = X_ii`` follows its own scalar flow

    u' = L u^p (s - u),    p = 2 - 2/L,    u(0) = u0 = eps^L,

(Saxe et al. 2014; Arora et al. 2019).  Its half-time (``u = s/2``) is exact:

- ``L = 2`` (logistic): ``ln(s/u0 - 1) / (2 s)``;
- any other ``L``: ``(F(1/2) - F(u0/s)) / (L s^p)`` with the antiderivative
  ``F(v) = v^(1-p) / (1-p) * 2F1(1, 1-p; 2-p; v)`` of ``v^-p / (1 - v)`` (term by
  term: ``sum_k v^(k+1-p) / (k+1-p)``, whose derivative is ``sum_k v^(k-p)``);

and for ``L >= 3`` the leading order is the blow-up time of ``u' = L s u^p``,
``eps^-(L-2) / ((L-2) s)``.  So stage i lasts in proportion to ``1/s_i`` and the
stages separate like ``eps^-(L-2)``.  Pure numpy/scipy.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import hyp2f1


def _antiderivative(v: float, p: float) -> float:
    """``F(v)`` with ``F' = v^-p / (1 - v)`` on (0, 1), for ``p`` not an integer >= 1."""
    return v ** (1.0 - p) / (1.0 - p) * float(hyp2f1(1.0, 1.0 - p, 2.0 - p, v))


def mode_half_time(s: float, u0: float, depth: int) -> float:
    """Exact time for ``u' = L u^(2-2/L) (s - u)`` to go from ``u0`` to ``s/2``.

    Args:
        s: the mode's target singular value (> 0).
        u0: its initial value, ``eps^L`` for identity init (0 < u0 < s/2).
        depth: L >= 1, the number of factors.

    Returns:
        The half-time (a time ``t = step * lr`` of gradient descent).

    >>> round(mode_half_time(1.0, 1e-4, 2), 6)  # ln(9999) / 2
    4.60512
    >>> abs(mode_half_time(2.0, 1e-9, 3) / blowup_time(2.0, 1e-3, 3) - 1) < 1e-2
    True
    """
    if not (s > 0 and 0 < u0 < s / 2 and depth >= 1):
        raise ValueError(f"need s > 0, 0 < u0 < s/2 and depth >= 1 (got {s}, {u0}, {depth})")
    if depth == 2:
        return math.log(s / u0 - 1.0) / (2.0 * s)
    p = 2.0 - 2.0 / depth
    return (_antiderivative(0.5, p) - _antiderivative(u0 / s, p)) / (depth * s**p)


def blowup_time(s: float, eps: float, depth: int) -> float:
    """Leading order of a mode's escape time for ``L >= 3``: ``eps^-(L-2) / ((L-2) s)``,
    the blow-up time of ``u' = L s u^(2-2/L)`` from ``u(0) = eps^L``."""
    if depth < 3:
        raise ValueError(f"the blow-up law holds for depth >= 3 (got {depth})")
    return eps ** (-(depth - 2)) / ((depth - 2) * s)


def diagonal_modes(m: np.ndarray, observed_all: bool, scheme: str, width: int) -> np.ndarray | str:
    """The modes ``s_1 >= s_2 >= ...`` of the closed form's setting, or why a matrix
    problem is outside it (one line).

    The setting: ``M`` square and diagonal with positive diagonal, every entry
    observed (completion with a full mask), identity init (``Wk = eps I``) and a
    width at least ``n`` (then ``X(0) = eps^L I``).

    >>> diagonal_modes(np.diag([1.0, 3.0]), True, "identity", 2)
    array([3., 1.])
    >>> diagonal_modes(np.diag([1.0, 3.0]), True, "gaussian", 2)
    'init.scheme is "gaussian": the closed form needs "identity"'
    """
    m = np.asarray(m, dtype=float)
    n = m.shape[0]
    if m.ndim != 2 or m.shape[1] != n:
        return f"M is {m.shape[0]} x {m.shape[1]}: the closed form needs a square M"
    if np.any(m - np.diag(np.diag(m))):
        return "M is not diagonal: the closed form needs M = diag(s_1, s_2, ...)"
    if not np.all(np.diag(m) > 0):
        return "M has a diagonal entry <= 0: the closed form needs s_i > 0"
    if not observed_all:
        return "not every entry of M is observed: the closed form needs full observation"
    if scheme != "identity":
        return f'init.scheme is "{scheme}": the closed form needs "identity"'
    if width < n:
        return f"model.width = {width} < n = {n}: the closed form needs width >= n"
    return np.sort(np.diag(m))[::-1]


# ---- stages of a measured loss curve ----------------------------------------------

GRID = 2000  # points of the uniform time grid the rule works on
WINDOW = 0.005  # the fall is measured over windows of this fraction of the horizon
ENTER = 0.05  # a drop starts where the loss falls by this factor (in log) over a window
EXIT = 0.01  # ... and lasts while it falls by this fraction of its plateau level per window
MIN_SHARE = 0.02  # ... and it counts if it takes this share of the loss's whole fall


def segment_stages(
    t: np.ndarray,
    loss: np.ndarray,
    *,
    enter: float = ENTER,
    exit_: float = EXIT,
    min_share: float = MIN_SHARE,
    window: float = WINDOW,
) -> list[dict]:
    """Split a loss curve into stages, each a plateau followed by a drop.

    The rule reads the running minimum ``L`` of the loss (so the small bumps of GD
    do not count) on a uniform grid of the horizon, in windows of ``window`` of
    it, and does not depend on the loss's scale or the time unit:

    - a drop starts where ``log L`` falls by more than ``enter`` over a window;
    - it lasts while ``L`` falls by more than ``exit_`` times its level at the
      drop's start (the plateau's level) per window, so a loss that goes on
      converging to zero after the drop is not part of it;
    - it counts as a stage if it takes at least ``min_share`` of the whole fall
      of ``L`` (the endless tail of a loss converging to zero does not).

    The plateau of a stage runs from the end of the previous drop (or the start)
    to its drop.  The horizon matters: the windows are fractions of the run as
    given (on a horizon ten times longer a slow decay can become a drop).

    Args:
        t: (K,) increasing times.
        loss: (K,) the loss at those times (non-finite or <= 0 samples ignored).

    Returns:
        One dict per stage: ``start_t`` (its plateau's start), ``drop_start_t``,
        ``drop_end_t``, ``loss_plateau`` (at the drop's start), ``loss_after`` (at
        its end) and ``share`` (its part of the whole fall of the loss).  Empty
        when the loss does not fall, or falls without a drop.

    >>> t = np.linspace(0, 30, 3001)
    >>> steps = 1 + 1 / (1 + np.exp(-5 * (t - 10))) + 1 / (1 + np.exp(-5 * (t - 20)))
    >>> stages = segment_stages(t, 4.0 - steps + 0.01)
    >>> [(round(s["drop_start_t"], 1), round(s["drop_end_t"], 1)) for s in stages]
    [(9.7, 10.6), (19.6, 20.7)]
    """
    t, loss = np.asarray(t, dtype=float), np.asarray(loss, dtype=float)
    ok = np.isfinite(t) & np.isfinite(loss) & (loss > 0)
    t, loss = t[ok], loss[ok]
    if t.size < 3 or not t[-1] > t[0]:
        return []
    y = np.minimum.accumulate(loss)
    fall = y[0] - y[-1]
    if not fall > 0:
        return []
    grid = np.linspace(t[0], t[-1], GRID + 1)
    yg = np.interp(grid, t, y)
    w = max(1, int(round(window * GRID)))
    drops: list[tuple[int, int]] = []
    i = 0
    while i + w <= GRID:
        if np.log(yg[i] / yg[i + w]) > enter:
            a, level = i, yg[i]
            while i + w <= GRID and yg[i] - yg[i + w] > exit_ * level:
                i += 1
            drops.append((a, min(i + w, GRID) if i + w > GRID else i))
        i += 1
    stages, prev_end = [], 0
    for a, b in drops:
        share = (yg[a] - yg[b]) / fall
        if share < min_share:
            continue
        stages.append(
            {
                "start_t": float(grid[prev_end]),
                "drop_start_t": float(grid[a]),
                "drop_end_t": float(grid[b]),
                "loss_plateau": float(yg[a]),
                "loss_after": float(yg[b]),
                "share": float(share),
            }
        )
        prev_end = b
    return stages
