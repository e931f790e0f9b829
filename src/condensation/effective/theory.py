"""The theorems' checkable quantities (THEORY §3–§5), as reconstructed here.

The paper's exact statements were not available to this project; these are
the reconstructions of ``docs/THEORY.md``, each confirmed numerically.
"""

from __future__ import annotations

import math

import numpy as np

from condensation.errors import NumericalError

CRITERION_BLOWS_UP = "blows up"
CRITERION_CANNOT_TELL = "cannot tell"

LOG_FLOAT_MAX = math.log(np.finfo(np.float64).max)  # about 709.78
# a blow-up solve whose time unit |y0|^-(k-1) exceeds e^LOG_UNIT_LIMIT is converted to
# time in log space (its times would overflow float64 or come within a factor 1e58 of it)
LOG_UNIT_LIMIT = math.log(1e250)


# ---- times in log space (T* ~ |y0|^-(k-1) overflows float64 for deep, tiny inits) ----
def log_time_unit(n0: float, degree: int) -> float:
    """``log(|y0|^-(degree-1))``: the natural log of a blow-up solve's time unit
    (:mod:`condensation.effective.blowup`), finite for every ``n0 > 0`` where the power itself
    may overflow (depth 16, ``|y0| = 4e-25``: ``10^340``).

    >>> round(log_time_unit(1e-3, 3) / math.log(10), 9)
    6.0
    """
    return -(degree - 1) * math.log(n0)


def exp_or_inf(x: float) -> float:
    """``exp(x)``, ``inf`` where it exceeds float64 (``math.exp`` raises there).

    >>> exp_or_inf(0.0), exp_or_inf(1e4)
    (1.0, inf)
    """
    return math.exp(x) if x < LOG_FLOAT_MAX else math.inf


def format_time(t: float | None, log10: float | None = None, spec: str = ".6g") -> str:
    """A predicted time for a one-line message: ``format(t, spec)`` when finite;
    beyond float64, ``10^<log10>`` when its base-10 log is known, else ``> 1.8e308``.

    >>> format_time(12.5), format_time(math.inf, 353.21), format_time(math.inf)
    ('12.5', '10^353.2 (beyond float64)', '> 1.8e+308 (beyond float64)')
    """
    if t is None or math.isnan(t):
        return "unknown"
    if math.isfinite(t):
        return format(t, spec)
    if log10 is not None and math.isfinite(log10):
        return f"10^{log10:.1f} (beyond float64)"
    return f"> {np.finfo(np.float64).max:.2g} (beyond float64)"


# ---- the scaling law: T*(eps G) = T*(G) eps^-(L-2) exactly (degree L-1 homogeneity) ----
def t_star_at_unit_scale(t_star, eps, depth: int):
    """``T*(G)`` from ``T*(eps G)``: ``T* eps^(L-2)`` (the effective field of depth L
    is homogeneous of degree L - 1, so the law is exact).

    >>> t_star_at_unit_scale(1000.0, 0.1, 5)
    1.0000000000000002
    """
    return t_star * eps ** (depth - 2)


def eps_for_t_star(t_one, t, depth: int):
    """The init scale ``eps`` at which ``T*(eps G) = t``, given ``T*(G) = t_one``:
    ``(t_one / t)^(1/(L-2))`` (inverse of :func:`t_star_at_unit_scale`).

    >>> eps_for_t_star(1.0, 100.0, 4)
    0.1
    """
    return (t_one / t) ** (1.0 / (depth - 2))


def energy_ratio_limit(z_norm: float) -> float:
    """The limit (and upper bound) of ``E / rho^(3/2)``: ``|z| 3^(-3/2)``."""
    return z_norm * 3.0**-1.5


def t_star_lower_bound_3(z_norm: float, rho0):
    """``sqrt(3) / (|z| sqrt(rho0))``: a lower bound on the time to a depth-3 blow-up
    from a state of squared norm ``rho0`` (THEORY §4), no solve needed.

    Args:
        z_norm: ``|z|`` of the effective drive (``|g^2 z|``).
        rho0: the squared norm of the state: a float, or an array (one per member,
            computed elementwise with ``numpy``).

    Returns:
        The bound (a float, or an array like ``rho0``).

    >>> round(t_star_lower_bound_3(1.0, 3.0), 12)
    1.0
    """
    if isinstance(rho0, np.ndarray):
        return math.sqrt(3.0) / (z_norm * np.sqrt(rho0))
    return math.sqrt(3.0) / (z_norm * math.sqrt(rho0))


def t_star_bounds(t0: float, rho0: float, e0: float, z_norm: float) -> tuple[float, float]:
    """``t0 + sqrt(3)/(|z| sqrt(rho0)) <= T* <= t0 + rho0/(3 E0)``, valid when ``E0 > 0``."""
    if not e0 > 0:
        return float("nan"), float("nan")
    return t0 + t_star_lower_bound_3(z_norm, rho0), t0 + rho0 / (3.0 * e0)


def bounds_from_steps(steps: dict, z_norm: float) -> tuple[float, float, float]:
    """The bounds taken at the first recorded time with ``E > 0``: (t0, lower, upper)."""
    pos = np.nonzero(steps["E"] > 0)[0]
    if pos.size == 0:
        return float("nan"), float("nan"), float("nan")
    i = pos[0]
    lo, hi = t_star_bounds(
        float(steps["t"][i]), float(steps["rho"][i]), float(steps["E"][i]), z_norm
    )
    return float(steps["t"][i]), lo, hi


def blowup_criterion(a, w, c, z_norm: float, rel_tol: float = 1e-12) -> str:
    """Sufficient condition at t = 0 (THEORY §4), for depth 3.

    ``a a^T - W W^T`` not negative semidefinite AND ``W^T W - c c^T/|z|^2`` not
    positive semidefinite ⇒ "blows up"; otherwise "cannot tell" (the condition is
    sufficient, not necessary).
    """
    a, w, c = (np.asarray(v, dtype=float) for v in (a, w, c))
    p = np.outer(a, a) - w @ w.T
    q = w.T @ w - np.outer(c, c) / z_norm**2
    scale = rel_tol * (a @ a + np.sum(w * w) + c @ c / z_norm**2)
    not_nsd = np.linalg.eigvalsh(p)[-1] > scale
    not_psd = np.linalg.eigvalsh(q)[0] < -scale
    return CRITERION_BLOWS_UP if (not_nsd and not_psd) else CRITERION_CANNOT_TELL


def energy_ratio(steps: dict) -> np.ndarray:
    """``E / rho^(3/2)`` along the recorded steps."""
    return steps["E"] / steps["rho"] ** 1.5


def check_three_layer_run(
    steps: dict,
    t_star: float,
    bounds: tuple[float, float],
    z_norm: float,
    *,
    drift_tol: float = 1e-8,
    bound_slack: float = 1e-9,
) -> dict[str, float]:
    """Check a depth-3 effective solve against the theory; raise if it disagrees.

    - T* inside its bounds (relative slack ``bound_slack``),
    - conservation laws drift at most ``drift_tol`` (relative),
    - ``E / rho^(3/2)`` non-decreasing (to rounding) and at most ``|z| 3^(-3/2)``.
    Returns the measured numbers.
    """
    drifts = [float(np.max(steps[k])) for k in ("law_drift", "matrix_law_drift") if k in steps]
    drift = max(drifts, default=0.0)
    ratio = energy_ratio(steps)
    limit = energy_ratio_limit(z_norm)
    decrease = float(np.max(np.maximum(-np.diff(ratio), 0.0), initial=0.0) / limit)
    over = float(np.max(ratio) / limit - 1.0)
    out = {
        "max_invariant_drift": drift,
        "energy_ratio_max_decrease": decrease,
        "energy_ratio_final": float(ratio[-1]),
        "energy_ratio_limit": limit,
    }
    problems = []
    lo, hi = bounds
    if np.isfinite(t_star) and np.isfinite(lo):
        if t_star < lo * (1 - bound_slack) or t_star > hi * (1 + bound_slack):
            problems.append(f"T* = {t_star:.12g} outside its bounds [{lo:.12g}, {hi:.12g}]")
    if drift > drift_tol:
        problems.append(f"conservation laws drift by {drift:.2e} > {drift_tol:.0e}")
    if decrease > 1e-9:
        problems.append(f"E/rho^(3/2) decreased by {decrease:.2e} of its limit")
    if over > 1e-9:
        problems.append(f"E/rho^(3/2) exceeds its limit |z| 3^(-3/2) by {over:.2e} (relative)")
    if problems:
        raise NumericalError("effective solve disagrees with the theory: " + "; ".join(problems))
    return out
