"""Integrating homogeneous ODEs through a finite-time blow-up.

For ``y' = F(y)`` with ``F`` homogeneous of degree ``k`` (``F(l y) = l^k F(y)``)
write ``y = exp(r) u`` and change time by ``ds = |y|^(k-1) dt``:

    du/ds = F(u) - u <u, F(u)>,     dr/ds = <u, F(u)>,     dt/ds = exp(-(k-1) r).

This is an exact change of variables (``y = exp(r) u`` solves the original ODE
whatever ``|u|`` is, so the gauge needs no re-normalisation), every variable
stays of order one, and a blow-up at ``T*`` becomes an infinitely long solve in
``s`` along which ``t`` converges to ``T*``.  Time is measured in units of
``|y0|^-(k-1)``, so the solve does not depend on the initial scale at all: two
initial conditions that differ only by scale take the same steps, and
``T* ~ |y0|^-(k-1)`` holds to rounding (for three layers, ``T* ~ 1/eps``).

Near a type-I blow-up ``|y| ~ (T* - t)^(-1/(k-1))``, so ``d r/dt = 1/((k-1)(T* - t))``:
at every step the remaining time is estimated as ``1/((k-1) dr/dt)``.  The solve
stops when that estimate falls below ``tol`` times the elapsed time; the
estimates at growth factors 10, 100, ... form the convergence report.

A degree-1 field (two layers, linear) never blows up; the solve then runs until
the norm has grown by ``norm_growth`` and reports the exponential rate.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache, partial

import diffrax
import jax
import jax.numpy as jnp
import numpy as np

from condensation.errors import NumericalError
from condensation.training.devices import member_mesh, over_members, place_members

Field = Callable  # (y, args) -> dy/dt, homogeneous of degree k in y
Diagnostic = Callable  # (y, args) -> dict of scalars, evaluated at every step


def _vdot(a, b):
    return sum(jnp.vdot(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


@dataclass(frozen=True)
class Tolerances:
    """Solver tolerances; ``rtol`` applies to the normalised state, so it is a
    relative accuracy of the whole trajectory, and ``t_tol`` ends a blow-up solve
    once the estimated remaining time is below ``t_tol * t``."""

    rtol: float = 1e-12
    atol: float = 1e-14
    t_tol: float = 1e-14
    max_steps: int = 20_000
    equilibrium_tol: float = 1e-11  # |F(u)| / |F(u0)| below this: an equilibrium
    max_time_factor: float = 1e7  # give up at t > this x the natural time scale
    norm_growth: float = 1e6  # degree-1 fields: stop at this norm growth

    def __post_init__(self):
        for name in ("rtol", "atol", "t_tol", "equilibrium_tol", "max_time_factor"):
            v = getattr(self, name)
            if not v > 0:
                raise ValueError(f"Tolerances.{name} must be > 0, got {v}")
        if self.max_steps < 10:
            raise ValueError(f"Tolerances.max_steps must be >= 10, got {self.max_steps}")


@dataclass(frozen=True)
class Blowup:
    """Result of one solve, in the original time ``t``.

    ``steps`` holds per-step arrays (trimmed to the steps taken): ``s``, ``t``,
    ``log_growth`` (``log |y|/|y0|``), ``rate`` (``d log|y| / dt``), ``T_est``
    (the remaining-time extrapolation of T*), and whatever the diagnostic
    function returned.
    """

    status: str
    blew_up: bool
    T_star: float  # NaN unless blew_up
    T_star_rel_error: float  # the solver's own estimate (see ``convergence``)
    degree: int
    time_scale: float  # |y0|^-(k-1): the unit of time of the solve
    n_steps: int
    steps: dict[str, np.ndarray] = field(repr=False)
    convergence: list[dict[str, float]] = field(repr=False)
    growth_rate: float = float("nan")  # degree 1: d log|y|/dt at the end
    time_to_norm: float = float("nan")  # degree 1: time to grow the norm by norm_growth


@cache
def homogeneous_polar(fld: Field):
    """The polar form ``(du/ds, dr/ds)`` of a field homogeneous of some degree."""

    def polar(u, r, args):
        f = fld(u, args)
        rate = _vdot(u, f)
        return jax.tree.map(lambda fi, ui: fi - rate * ui, f, u), rate

    return polar


def scale_lift(u, big_r, args):
    """``y = exp(R) u``: the state of a homogeneous field from its polar variables."""
    return jax.tree.map(lambda x: jnp.exp(big_r) * x, u)


def _polar_vf(k: int, polar):
    def vf(s, state, args):
        u, r, t = state
        du, rate = polar(u, r, args)
        return du, rate, jnp.exp(-(k - 1) * r)

    return vf


def _remaining(k, r, rate):
    """Estimated T* - t (in solve units) from the type-I rate; inf if not growing."""
    return jnp.where(rate > 0, jnp.exp(-(k - 1) * r) / ((k - 1) * rate), jnp.inf)


def _speed(du, rate):
    return jnp.sqrt(_vdot(du, du) + rate * rate)


def _solve_impl(u0, r0, args, f0norm, *, polar, lift, diag: Diagnostic | None, k: int, tol):
    """One solve of the polar system from ``(u0, r = 0, t = 0)``.

    ``polar(u, r, args) -> (du/ds, dr/ds)``; ``lift(u, r0 + r, args)`` rebuilds
    the original state for ``diag``; ``f0norm`` is the polar speed at the start.
    """
    vf = _polar_vf(k, polar)
    t_max = tol.max_time_factor / f0norm

    def blew_up(s, state, args, **kw):
        u, r, t = state
        _, rate = polar(u, r, args)
        return (k > 1) & (r > 1.0) & (_remaining(k, r, rate) < tol.t_tol * t)

    def at_equilibrium(s, state, args, **kw):
        u, r, t = state
        return _speed(*polar(u, r, args)) < tol.equilibrium_tol * f0norm

    def norm_reached(s, state, args, **kw):
        return (k == 1) & (state[1] > jnp.log(tol.norm_growth))

    def too_long(s, state, args, **kw):
        return state[2] > t_max

    def save(s, state, args):
        u, r, t = state
        du, rate = polar(u, r, args)
        out = {
            "s": s,
            "t": t,
            "log_growth": r,
            "rate_s": rate,
            "field_norm": _speed(du, rate),
            "T_est": t + _remaining(k, r, rate),
        }
        if diag is not None:
            out.update(diag(lift(u, r0 + r, args), args))
        return out

    event = diffrax.Event(
        {"blow-up": blew_up, "equilibrium": at_equilibrium, "norm": norm_reached, "time": too_long}
    )
    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(vf),
        diffrax.Dopri8(),
        t0=0.0,
        t1=jnp.inf,
        dt0=None,
        y0=(u0, jnp.zeros(()), jnp.zeros(())),
        args=args,
        stepsize_controller=diffrax.PIDController(rtol=tol.rtol, atol=tol.atol),
        saveat=diffrax.SaveAt(subs=[diffrax.SubSaveAt(t0=True, steps=True, fn=save)]),
        event=event,
        max_steps=tol.max_steps,
        throw=False,
        adjoint=diffrax.ForwardMode(),  # never differentiated: the plainest loop compiles fastest
    )
    return sol.ys[0], sol.stats["num_accepted_steps"], sol.event_mask


def _normalise(y0):
    # numpy, not op-by-op JAX (each distinct shape would compile a program), and as a
    # product with 1/n0, which is what XLA makes of the division: the same bits as before
    n0 = float(np.sqrt(sum(np.sum(np.asarray(x) ** 2) for x in jax.tree.leaves(y0))))
    return jax.tree.map(lambda x: np.asarray(x, np.float64) * (1.0 / n0), y0), n0


def _finish(saved, n_steps, mask, k, n0, tol) -> Blowup:
    scale = n0 ** (-(k - 1))
    n = int(n_steps) + 1  # + the t0 save
    steps = {key: np.asarray(v)[:n].copy() for key, v in saved.items()}
    for key in ("t", "T_est"):
        steps[key] = steps[key] * scale
    steps["rate"] = steps.pop("rate_s") * np.exp((k - 1) * steps["log_growth"]) / scale
    bad = [key for key, v in steps.items() if key != "T_est" and not np.all(np.isfinite(v))]
    if bad:
        raise NumericalError(f"the effective solve produced non-finite values in {bad}")
    mask = {key: bool(v) for key, v in mask.items()}
    status = (
        "blow-up"
        if mask["blow-up"]
        else "equilibrium"
        if mask["equilibrium"]
        else "norm-reached"
        if mask["norm"]
        else "max-time"
        if mask["time"]
        else "max-steps"
    )
    conv, seen = [], set()
    if k > 1:
        for j in range(1, 40):
            idx = np.nonzero(steps["log_growth"] >= j * np.log(10))[0]
            if idx.size == 0:
                break
            if idx[0] in seen:
                continue
            seen.add(idx[0])
            conv.append(
                {
                    "norm_growth": float(np.exp(steps["log_growth"][idx[0]])),
                    "t": float(steps["t"][idx[0]]),
                    "T_star_est": float(steps["T_est"][idx[0]]),
                }
            )
    T_star, rel = float("nan"), float("nan")
    if status == "blow-up":
        T_star = float(steps["T_est"][-1])
        prev = conv[-2]["T_star_est"] if len(conv) >= 2 else steps["T_est"][max(n - 2, 0)]
        rel = max(abs(T_star - prev) / T_star, 10 * tol.rtol)
    out = Blowup(
        status=status,
        blew_up=status == "blow-up",
        T_star=T_star,
        T_star_rel_error=rel,
        degree=k,
        time_scale=scale,
        n_steps=int(n_steps),
        steps=steps,
        convergence=conv,
    )
    if k == 1:
        growth = steps["log_growth"]
        target = np.log(tol.norm_growth)
        ttn = float(np.interp(target, growth, steps["t"])) if growth[-1] >= target else float("nan")
        out = dataclasses.replace(out, growth_rate=float(steps["rate"][-1]), time_to_norm=ttn)
    return out


@dataclass(frozen=True)
class PolarProblem:
    """A blow-up problem already in polar variables.

    ``polar(u, r, args) -> (du/ds, dr/ds)`` with ``dt/ds = exp(-(k-1) r)`` in units
    of ``exp(-(k-1) r0)``; ``lift(u, R, args)`` gives the original state at
    ``R = r0 + r``.  Homogeneous fields get theirs from :func:`polar_problem`;
    other reductions (a closed subsystem in another basis) supply their own.
    """

    polar: Callable
    lift: Callable
    k: int
    u0: object
    r0: float
    args: object = ()

    def f0(self) -> float:
        return float(_f0(self.u0, self.args, polar=self.polar))


@partial(jax.jit, static_argnames=("polar",))
def _f0(u0, args, *, polar):
    """The polar speed at the start: one compiled program per field and shape (run
    op by op, the field's every operation would be a program of its own)."""
    return _speed(*polar(u0, jnp.zeros(()), args))


def polar_problem(fld: Field, y0, degree: int, args=()) -> PolarProblem:
    """The polar form of ``y' = fld(y, args)``, homogeneous of ``degree``."""
    if degree < 1:
        raise ValueError(f"degree must be >= 1, got {degree}")
    u0, n0 = _normalise(y0)
    if n0 == 0 or not np.isfinite(n0):
        raise ValueError(f"the initial state must be non-zero and finite, got norm {n0}")
    return PolarProblem(homogeneous_polar(fld), scale_lift, degree, u0, float(np.log(n0)), args)


def solve_polar(
    prob: PolarProblem, *, diag: Diagnostic | None = None, tol: Tolerances = Tolerances()
) -> Blowup:
    """Integrate a polar problem through its blow-up (or to an equilibrium / norm)."""
    f0 = prob.f0()
    if f0 == 0.0:
        return _no_drive(prob.k, float(np.exp(prob.r0)))
    saved, n_steps, mask = _solve(
        prob.u0,
        prob.r0,
        prob.args,
        f0,
        polar=prob.polar,
        lift=prob.lift,
        diag=diag,
        k=prob.k,
        tol=tol,
    )
    return _finish(saved, n_steps, mask, prob.k, float(np.exp(prob.r0)), tol)


_STATIC = ("polar", "lift", "diag", "k", "tol")
_solve = jax.jit(_solve_impl, static_argnames=_STATIC)


@partial(jax.jit, static_argnames=(*_STATIC, "mesh"))
def _solve_many(members, *, polar, lift, diag, k, tol, mesh):
    """Many members ``(u0s, r0s, args, f0s)`` in one compiled program: spread over
    the devices of ``mesh``, one after another on each (``lax.map``), each with
    its own adaptive steps and stopping event.  (A vmapped solve, which carries
    every member through every step of the longest one, measured about 3x slower
    than this on CPU for widths ~100.)"""
    one = partial(_solve_impl, polar=polar, lift=lift, diag=diag, k=k, tol=tol)
    solve_share = partial(jax.lax.map, lambda m: one(*m))
    return over_members(solve_share, mesh, 0, typed=False)(members)


def solve_polar_batch(
    probs: list[PolarProblem], *, diag: Diagnostic | None = None, tol: Tolerances = Tolerances()
) -> list[Blowup]:
    """Problems of one structure (same functions and shapes), in one compiled solve.

    One compilation serves every member, each with its own adaptive steps and
    its own stopping event (no lockstep); since every solve starts at unit scale,
    a member whose T* is a thousand times later takes no more steps than the others.
    """
    p = probs[0]
    f0s = np.array([q.f0() for q in probs])
    live = [i for i in range(len(probs)) if f0s[i] > 0]
    out: list[Blowup | None] = [
        None if f0s[i] > 0 else _no_drive(q.k, float(np.exp(q.r0))) for i, q in enumerate(probs)
    ]
    if live:
        stack = partial(jax.tree.map, lambda *xs: np.stack([np.asarray(x) for x in xs]))
        u0s = stack(*[probs[i].u0 for i in live])
        args = stack(*[probs[i].args for i in live])
        r0s = jnp.asarray([probs[i].r0 for i in live])
        mesh = member_mesh(len(live))
        members = place_members((u0s, r0s, args, jnp.asarray(f0s[live])), mesh)
        saved, n_steps, mask = _solve_many(
            members,
            mesh=mesh,
            polar=p.polar,
            lift=p.lift,
            diag=diag,
            k=p.k,
            tol=tol,
        )
        saved, n_steps, mask = jax.tree.map(np.asarray, (saved, n_steps, mask))
        for j, i in enumerate(live):
            pick = partial(_take, i=j)
            out[i] = _finish(
                jax.tree.map(pick, saved),
                n_steps[j],
                jax.tree.map(pick, mask),
                p.k,
                float(np.exp(probs[i].r0)),
                tol,
            )
    return out


def blowup(
    fld: Field,
    y0,
    degree: int,
    args=(),
    *,
    diag: Diagnostic | None = None,
    tol: Tolerances = Tolerances(),
) -> Blowup:
    """Integrate ``y' = fld(y, args)`` (homogeneous of ``degree``) through its blow-up.

    ``fld`` and ``diag`` must be hashable module-level functions (they are
    static arguments of a compiled solve); array data goes in ``args``.

    >>> import jax.numpy as jnp
    >>> def square(y, args):
    ...     return y * y
    >>> round(blowup(square, jnp.array([0.5]), 2).T_star, 9)   # x' = x^2: T* = 1/x0
    2.0
    """
    return solve_polar(polar_problem(fld, y0, degree, args), diag=diag, tol=tol)


def blowup_batch(
    fld: Field,
    y0s,
    degree: int,
    args=(),
    *,
    diag: Diagnostic | None = None,
    tol: Tolerances = Tolerances(),
    args_batched: bool = False,
) -> list[Blowup]:
    """Many initial conditions (leading axis of every leaf of ``y0s``) in one vmapped solve.

    ``args_batched``: every leaf of ``args`` has a leading member axis too.
    """
    n = jax.tree.leaves(y0s)[0].shape[0]
    probs = [
        polar_problem(
            fld,
            jax.tree.map(partial(_take, i=i), y0s),
            degree,
            jax.tree.map(partial(_take, i=i), args) if args_batched else args,
        )
        for i in range(n)
    ]
    return solve_polar_batch(probs, diag=diag, tol=tol)


def _take(x, i):
    return None if x is None else np.asarray(x)[i]


def _no_drive(k: int, n0: float) -> Blowup:
    return Blowup(
        status="no-drive",
        blew_up=False,
        T_star=float("nan"),
        T_star_rel_error=float("nan"),
        degree=k,
        time_scale=n0 ** (-(k - 1)),
        n_steps=0,
        steps={},
        convergence=[],
    )


@partial(jax.jit, static_argnames=("polar", "k", "tol"))
def _states_at(u0, args, s_values, *, polar, k: int, tol: Tolerances):
    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(_polar_vf(k, polar)),
        diffrax.Dopri8(),
        t0=0.0,
        t1=s_values[-1],
        dt0=None,
        y0=(u0, jnp.zeros(()), jnp.zeros(())),
        args=args,
        stepsize_controller=diffrax.PIDController(rtol=tol.rtol, atol=tol.atol),
        saveat=diffrax.SaveAt(ts=s_values),
        max_steps=tol.max_steps,
        throw=False,
        adjoint=diffrax.ForwardMode(),  # never differentiated: the plainest loop compiles fastest
    )
    return sol.ys


def states_at(
    prob: PolarProblem,
    sol: Blowup,
    times,
    *,
    tol: Tolerances = Tolerances(),
    newton: int = 4,
    min_len: int = 0,
):
    """The state at the given times ``t < T*``, from further solves saved at chosen ``s``.

    Times are mapped to the solve's variable ``s`` through the recorded steps,
    then refined by Newton's method on ``t(s)`` (``dt/ds = exp(-(k-1) r)``) until
    the saved times match to about ``1e-13`` relative.  Returns
    ``(t_actual, states)``; the leaves of ``states`` have a leading axis over times.

    The query is padded (with its last time, which changes nothing in the solve) to
    a multiple of 32 times, and to at least ``min_len``: queries of one problem with
    different numbers of times then share one compiled solve.
    """
    times = np.asarray(times, dtype=float)
    s = np.interp(times, sol.steps["t"], sol.steps["s"])
    scale = sol.time_scale
    n = len(s)
    pad = 32 * math.ceil(max(n, min_len) / 32) - n  # to the multiple of 32 covering both
    for _ in range(newton + 1):
        s = np.maximum.accumulate(np.maximum(s, 1e-300))
        s_pad = np.concatenate([s, np.full(pad, s[-1])])
        u_pad, r_pad, t = _states_at(
            prob.u0, prob.args, jnp.asarray(s_pad), polar=prob.polar, k=prob.k, tol=tol
        )
        r, t = np.asarray(r_pad)[:n], np.asarray(t)[:n]
        t_actual = t * scale
        miss = times - t_actual
        if np.all(np.abs(miss) <= 1e-13 * np.maximum(np.abs(times), 1e-300)):
            break
        s = s + miss / scale * np.exp((prob.k - 1) * r)
    ys = _lift_all(u_pad, prob.r0 + r_pad, prob.args, lift=prob.lift)
    return t_actual, jax.tree.map(lambda x: np.asarray(x)[:n], ys)


@partial(jax.jit, static_argnames=("lift",))
def _lift_all(u, big_r, args, *, lift):
    """``lift`` at every queried time at once: one compiled program per lift and
    (padded) query length, instead of the lift's operations run time by time."""
    return jax.vmap(lift, in_axes=(0, 0, None))(u, big_r, args)


__all__ = [
    "Blowup",
    "PolarProblem",
    "Tolerances",
    "blowup",
    "blowup_batch",
    "polar_problem",
    "solve_polar",
    "solve_polar_batch",
    "states_at",
]
