"""The effective dynamics' predictions of T*, the blow-up time at which gradient
descent from a small initialisation escapes its plateau: one implementation,
used by training (fast-forward, ``steps = "auto"``), the commands and the
experiments.

- :func:`t_star_predictions` / :func:`predicted_t_star`: each member's T* from
  one batched blow-up solve of its effective system (reduced form at depth 3,
  full otherwise), overflow-safe (:func:`solve_blowups`: a deep network at a tiny
  init has a T* beyond float64; :func:`log10_t_star` stays finite);
- :func:`t_star_lower_bound` / :func:`log10_t_star_lower_bound`: a lower bound
  with no solve, ``L^((L-2)/2) / ((L-2) |z_eff| r_0^(L-2))`` (at depth 3 the
  ``sqrt(3) / (|z| sqrt(rho_0))`` of THEORY §4,
  :func:`condensation.effective.theory.t_star_lower_bound_3`).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from condensation.core.activations import Activation
from condensation.effective import theory
from condensation.effective.blowup import Blowup, PolarProblem, Tolerances, solve_polar_batch
from condensation.effective.system import EffectiveSystem, build_system
from condensation.errors import InputError, NumericalError


def effective_systems(
    params0, z, activation: Activation, form: str | None = None
) -> list[EffectiveSystem]:
    """Each member's effective system: ``form`` (None: reduced for depth 3, full
    otherwise; ``"spectral"``, depth 3: one eigendecomposition and an O(m1) field,
    the form that scales with width; a member whose ``B z = 0`` keeps the reduced
    form)."""
    depth = len(params0)
    form = form or ("reduced" if depth == 3 else "full")
    e = int(np.shape(params0[0])[0])

    def one(i):
        state = [np.asarray(p[i]) for p in params0]
        try:
            return build_system(state, z, activation=activation, form=form)
        except InputError:
            if form != "spectral":
                raise
            return build_system(state, z, activation=activation, form="reduced")

    return [one(i) for i in range(e)]


def spectral_form(depth: int) -> str | None:
    """The form width-bound callers ask for: ``"spectral"`` at depth 3 (one
    eigendecomposition and an O(m1) field; ~1e-11 from the reduced form), else the
    default (None).

    >>> spectral_form(3), spectral_form(4)
    ('spectral', None)
    """
    return "spectral" if depth == 3 else None


def blowups(systems: list[EffectiveSystem], tol: Tolerances = Tolerances()) -> list[Blowup]:
    """One batched blow-up solve of every member's effective system (no diagnostics),
    overflow-safe (:func:`solve_blowups`)."""
    return solve_blowups([s.problem() for s in systems], tol)


def _scale_free(prob: PolarProblem) -> bool:
    """True for the polar form of a homogeneous field
    (:func:`condensation.effective.blowup.polar_problem`):
    its ``r0`` enters only the lift back to the original state, never the solve."""
    return getattr(prob.polar, "__qualname__", "") == "homogeneous_polar.<locals>.polar"


def in_time_unit(sol: Blowup, log_unit: float) -> Blowup:
    """A solve made at unit scale, its times converted to the unit ``e^log_unit`` in
    log space: ``T_star``, ``time_scale`` and ``steps["t"]`` / ``["T_est"]`` are
    ``inf`` where they exceed float64; ``steps["log10_t"]`` / ``["log10_T_est"]``
    keep them finite (see :func:`log10_t_star`)."""
    ln10 = math.log(10.0)

    def times(v):
        v = np.asarray(v, dtype=np.float64)
        with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
            logs = np.where(v > 0, np.log(np.where(v > 0, v, 1.0)) + log_unit, -np.inf)
            return np.where(v > 0, np.exp(logs), v), logs / ln10

    steps = dict(sol.steps)
    for key in ("t", "T_est"):
        if key in steps:
            steps[key], steps[f"log10_{key}"] = times(steps[key])
    if "rate" in steps:  # per unit time: divided by the unit (underflows to 0, never overflows)
        steps["rate"] = steps["rate"] * math.exp(-log_unit)
    conv = [
        {**c, "t": float(times(c["t"])[0]), "T_star_est": float(times(c["T_star_est"])[0])}
        for c in sol.convergence
    ]
    t_star = sol.T_star
    if sol.blew_up:
        t_star = theory.exp_or_inf(math.log(sol.T_star) + log_unit)
    return dataclasses.replace(
        sol,
        T_star=t_star,
        time_scale=theory.exp_or_inf(log_unit),
        steps=steps,
        convergence=conv,
    )


def solve_blowups(probs: list[PolarProblem], tol: Tolerances = Tolerances()) -> list[Blowup]:
    """:func:`condensation.effective.blowup.solve_polar_batch` (no diagnostics), safe from overflow.

    A solve runs in units of ``|y0|^-(k-1)``, which overflows float64 for a deep
    network at a tiny init (depth 16 at ``|y0| = 4e-25``: ``10^783``): a member whose
    unit is beyond ``e^theory.LOG_UNIT_LIMIT`` is solved at unit scale (for a
    homogeneous field the same solve) and its times converted in log space, so its
    ``T_star`` is ``inf`` only where T* itself is beyond float64, and
    :func:`log10_t_star` stays finite.  Every other member is solved exactly as by
    ``solve_polar_batch``."""
    log_units = [-(p.k - 1) * p.r0 for p in probs]  # r0 = log |y0|
    far = [i for i, u in enumerate(log_units) if u > theory.LOG_UNIT_LIMIT]
    near = [i for i in range(len(probs)) if i not in far]
    out: list[Blowup | None] = [None] * len(probs)
    if near:
        for i, sol in zip(near, solve_polar_batch([probs[i] for i in near], diag=None, tol=tol)):
            out[i] = sol
    if far:
        odd = [i for i in far if not _scale_free(probs[i])]
        if odd:
            power = log_units[odd[0]] / math.log(10)
            raise NumericalError(
                f"the effective solve's time unit |y0|^-(k-1) = 10^{power:.0f} is beyond "
                "float64 for a form whose solve depends on the scale; "
                'use form = "full" or a larger init scale'
            )
        unit = [dataclasses.replace(probs[i], r0=0.0) for i in far]
        for i, sol in zip(far, solve_polar_batch(unit, diag=None, tol=tol)):
            out[i] = in_time_unit(sol, log_units[i])
    return out


def log10_t_star(sol: Blowup) -> float | None:
    """``log10 T*`` of a solve, finite even where ``T_star`` itself overflowed to
    ``inf`` (:func:`solve_blowups`); None unless it blew up."""
    if not sol.blew_up:
        return None
    if math.isfinite(sol.T_star) and sol.T_star > 0:
        return math.log10(sol.T_star)
    logs = sol.steps.get("log10_T_est")
    return None if logs is None or len(logs) == 0 else float(logs[-1])


def t_star_predictions(
    params0, z, activation: Activation, form: str | None = None
) -> list[tuple[float, float] | None]:
    """Each member's effective blow-up time as ``(T*, log10 T*)``: ``T*`` is ``inf``
    where it is beyond float64, ``log10 T*`` always finite; None where there is no
    blow-up (an equilibrium, depth 2, an activation outside the theory).  ``form``:
    as :func:`effective_systems` (``"spectral"`` agrees with the reduced form to
    ~1e-11 relative at width 1000, in 2 s instead of 12)."""
    if activation.why_not_effective() is not None or len(params0) < 3:
        return [None] * int(np.shape(params0[0])[0])
    sols = blowups(effective_systems(params0, z, activation, form))
    return [(s.T_star, log10_t_star(s)) if s.blew_up else None for s in sols]


def predicted_t_star(params0, z, activation: Activation) -> list[float | None]:
    """Each member's effective blow-up time ``T*`` (None: no blow-up / outside the
    theory; ``inf``: beyond float64, see :func:`t_star_predictions`)."""
    return [None if p is None else p[0] for p in t_star_predictions(params0, z, activation)]


def rho0(params0) -> np.ndarray:
    """(E,) ``rho_0 = |theta_0|^2``, each member's squared norm over every layer."""
    return sum(np.sum(np.asarray(p, dtype=np.float64) ** 2, axis=tuple(range(1, np.ndim(p))))
               for p in params0)  # fmt: skip


def log10_t_star_lower_bound(params0, z, activation: Activation) -> np.ndarray | None:
    """(E,) ``log10`` of a lower bound on each member's T*, no solve needed, finite
    where the bound itself is beyond float64; None below depth 3, outside the
    theory, or for ``z = 0``.

    The effective energy ``E`` is multilinear in the ``L`` layers, so
    ``|dE/dW_k| <= |z_eff| prod_(j != k) |W_j|`` and, by Maclaurin's inequality,
    ``|grad E| <= |z_eff| sqrt(L) (rho / L)^((L-1)/2)``: the norm ``r = |theta|``
    grows at most like ``r' = |z_eff| L^((2-L)/2) r^(L-1)``, which blows up at

        T* >= L^((L-2)/2) / ((L-2) |z_eff| r_0^(L-2)),

    for ``L = 3`` the ``sqrt(3) / (|z| sqrt(rho_0))`` of THEORY §4.
    """
    depth = len(params0)
    if depth < 3 or activation.why_not_effective() is not None:
        return None
    z_eff = abs(activation.slope_at_zero) ** (depth - 1) * float(np.linalg.norm(z))
    if not z_eff > 0:
        return None
    k = depth - 2
    with np.errstate(divide="ignore"):  # rho underflowing to 0: T* >= inf
        log_rho = np.log10(rho0(params0))
    return 0.5 * k * math.log10(depth) - math.log10(k) - math.log10(z_eff) - 0.5 * k * log_rho


def t_star_lower_bound(params0, z, activation: Activation) -> np.ndarray | None:
    """(E,) a lower bound on each member's T* (no solve;
    :func:`log10_t_star_lower_bound`), ``inf`` where it is beyond float64: for three
    layers ``sqrt(3) / (|z_eff| sqrt(rho_0))`` (THEORY §4).  None below depth 3,
    outside the theory, or for ``z = 0``."""
    logs = log10_t_star_lower_bound(params0, z, activation)
    if logs is None:
        return None
    if len(params0) == 3:  # the closed form of THEORY §4, as it always was computed
        z_eff = activation.slope_at_zero**2 * float(np.linalg.norm(z))
        with np.errstate(divide="ignore", over="ignore"):
            return theory.t_star_lower_bound_3(z_eff, rho0(params0))
    with np.errstate(over="ignore"):
        return np.power(10.0, logs)


__all__ = [
    "blowups",
    "effective_systems",
    "in_time_unit",
    "log10_t_star",
    "log10_t_star_lower_bound",
    "predicted_t_star",
    "rho0",
    "solve_blowups",
    "spectral_form",
    "t_star_lower_bound",
    "t_star_predictions",
]
