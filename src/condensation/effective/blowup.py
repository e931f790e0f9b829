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
from collections.abc import Callable
from functools import partial

import diffrax
import jax
import jax.numpy as jnp
import numpy as np

from condensation.effective.polar import (
    Field,
    PolarProblem,
    homogeneous_polar,
    polar_problem,
    polar_speed,
    polar_vector_field,
    scale_lift,
)
from condensation.effective.solution import Blowup, Tolerances
from condensation.effective.states import states_at
from condensation.errors import NumericalError
from condensation.training.devices import member_mesh, over_members, place_members

Diagnostic = Callable  # (y, args) -> dict of scalars, evaluated at every step


def _remaining(k, r, rate):
    """Estimated T* - t (in solve units) from the type-I rate; inf if not growing."""
    return jnp.where(rate > 0, jnp.exp(-(k - 1) * r) / ((k - 1) * rate), jnp.inf)


def _solve_impl(u0, r0, args, f0norm, *, polar, lift, diag: Diagnostic | None, k: int, tol):
    """One solve of the polar system from ``(u0, r = 0, t = 0)``.

    ``polar(u, r, args) -> (du/ds, dr/ds)``; ``lift(u, r0 + r, args)`` rebuilds
    the original state for ``diag``; ``f0norm`` is the polar speed at the start.
    """
    vf = polar_vector_field(k, polar)
    t_max = tol.max_time_factor / f0norm

    def blew_up(s, state, args, **kw):
        u, r, t = state
        _, rate = polar(u, r, args)
        return (k > 1) & (r > 1.0) & (_remaining(k, r, rate) < tol.t_tol * t)

    def at_equilibrium(s, state, args, **kw):
        u, r, t = state
        return polar_speed(*polar(u, r, args)) < tol.equilibrium_tol * f0norm

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
            "field_norm": polar_speed(du, rate),
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


__all__ = [
    "Blowup",
    "PolarProblem",
    "Tolerances",
    "blowup",
    "blowup_batch",
    "homogeneous_polar",
    "polar_problem",
    "scale_lift",
    "solve_polar",
    "solve_polar_batch",
    "states_at",
]
