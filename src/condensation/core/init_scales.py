"""Per-layer initialisation scales and the two-layer phase-diagram coordinates.

Pure functions on numbers (THEORY §8).  A network
``f(x) = kappa W_L sigma(... sigma(W_1 x))`` draws layer k from ``N(0, s_k^2)``;
``s_k = m ** -g_k`` when given as exponents of the largest width ``m``.

Luo et al. (JMLR 2021) write the two-layer network as
``f = (1/alpha) sum_k a_k sigma(w_k . x)`` with ``a ~ N(0, beta1^2)``,
``w ~ N(0, beta2^2 I)`` and use the coordinates

    gamma  = -log(beta1 beta2 / alpha) / log m,
    gamma' = -log(beta1 / beta2) / log m.

Three scales, two coordinates: one exponent is free.  This project fixes the
output multiplier's exponent ``alpha = m ** alpha_exponent`` (default 0, i.e.
``kappa = 1``, the network the rest of the toolkit trains) and solves for the two
layer exponents (derived here; :func:`luo_layer_exponents`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def stds_from_gammas(gammas: Sequence[float], width: int) -> tuple[float, ...]:
    """``s_k = width ** -g_k`` for every layer."""
    return tuple(float(width) ** (-float(g)) for g in gammas)


def luo_layer_exponents(
    gamma: float, gamma_prime: float, alpha_exponent: float = 0.0
) -> tuple[float, float]:
    """``(g_W, g_a)`` with ``beta2 = m^-g_W`` (input layer), ``beta1 = m^-g_a`` (output),
    given ``alpha = m^alpha_exponent``.

    From ``beta1 beta2 / alpha = m^-gamma`` and ``beta1 / beta2 = m^-gamma'``:
    ``g_a + g_W = gamma - alpha_exponent``, ``g_a - g_W = gamma'``.
    """
    total = gamma - alpha_exponent
    return 0.5 * (total - gamma_prime), 0.5 * (total + gamma_prime)


def luo_coordinates(beta1: float, beta2: float, alpha: float, width: int) -> tuple[float, float]:
    """``(gamma, gamma')`` of a two-layer init at width ``width`` (the inverse map)."""
    lm = math.log(width)
    return -math.log(beta1 * beta2 / alpha) / lm, -math.log(beta1 / beta2) / lm


def two_layer_regime(gamma: float, gamma_prime: float, tol: float = 1e-9) -> str:
    """The theorems' regime (Luo et al. 2021, as THEORY §8 states them): ``linear`` if
    ``gamma < 1`` or ``gamma' > gamma - 1``, ``condensed`` if ``gamma > 1`` and
    ``gamma' < gamma - 1``, ``critical`` on the boundary between them."""
    if gamma < 1 - tol or gamma_prime > gamma - 1 + tol:
        return "linear"
    if gamma > 1 + tol and gamma_prime < gamma - 1 - tol:
        return "condensed"
    return "critical"


def boundary_distance(gamma: float, gamma_prime: float) -> float:
    """Euclidean distance of ``(gamma, gamma')`` to the boundary of the condensed
    phase: the rays ``gamma = 1, gamma' <= 0`` and ``gamma' = gamma - 1, gamma >= 1``."""
    # ray 1: points (1, t), t <= 0
    t = min(gamma_prime, 0.0)
    d1 = math.hypot(gamma - 1.0, gamma_prime - t)
    # ray 2: points (1 + s, s), s >= 0; projection of (gamma - 1, gamma') on (1, 1)/sqrt 2
    s = max(0.5 * ((gamma - 1.0) + gamma_prime), 0.0)
    d2 = math.hypot(gamma - 1.0 - s, gamma_prime - s)
    return min(d1, d2)


def line_distance(gamma: float, gamma_prime: float) -> float:
    """Distance to the nearer of the whole lines ``gamma = 1`` and ``gamma' = gamma - 1``
    (a stricter notion than :func:`boundary_distance`)."""
    return min(abs(gamma - 1.0), abs(gamma_prime - gamma + 1.0) / math.sqrt(2.0))
