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

from collections.abc import Callable
import dataclasses
from dataclasses import dataclass, field
from functools import partial

import diffrax
import jax
import jax.numpy as jnp
import numpy as np

Field = Callable  # (y, args) -> dy/dt, homogeneous of degree k in y
Diagnostic = Callable  # (y, args) -> dict of scalars, evaluated at every step

STATUS = ("blow-up", "equilibrium", "norm-reached", "max-time", "max-steps", "no-drive")


def _vdot(a, b):
    return sum(jnp.vdot(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def _norm(a):
    return jnp.sqrt(_vdot(a, a))


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


def _polar_field(k: int, fld: Field):
    def vf(s, state, args):
        u, r, t = state
        f = fld(u, args)
        rate = _vdot(u, f)
        du = jax.tree.map(lambda fi, ui: fi - rate * ui, f, u)
        return du, rate, jnp.exp(-(k - 1) * r)

    return vf


def _remaining(k, r, rate):
    """Estimated T* - t (in solve units) from the type-I rate; inf if not growing."""
    return jnp.where(rate > 0, jnp.exp(-(k - 1) * r) / ((k - 1) * rate), jnp.inf)


@partial(jax.jit, static_argnames=("fld", "diag", "k", "tol"))
def _solve(u0, r0, args, f0norm, *, fld: Field, diag: Diagnostic | None, k: int, tol: Tolerances):
    """One solve from the unit-scale state ``u0``; ``r0 = log|y0|`` only feeds ``diag``."""
    vf = _polar_field(k, fld)
    t_max = tol.max_time_factor / f0norm

    def blew_up(s, state, args, **kw):
        u, r, t = state
        rate = _vdot(u, fld(u, args))
        return (k > 1) & (r > 1.0) & (_remaining(k, r, rate) < tol.t_tol * t)

    def at_equilibrium(s, state, args, **kw):
        u, r, t = state
        return _norm(fld(u, args)) < tol.equilibrium_tol * f0norm * _norm(u) ** k

    def norm_reached(s, state, args, **kw):
        return (k == 1) & (state[1] > jnp.log(tol.norm_growth))

    def too_long(s, state, args, **kw):
        return state[2] > t_max

    def save(s, state, args):
        u, r, t = state
        f = fld(u, args)
        rate = _vdot(u, f)
        out = {
            "s": s,
            "t": t,
            "log_growth": r,
            "rate_s": rate,
            "field_norm": _norm(f),
            "T_est": t + _remaining(k, r, rate),
        }
        if diag is not None:
            y = jax.tree.map(lambda x: jnp.exp(r0 + r) * x, u)
            out.update(diag(y, args))
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
    )
    mask = sol.event_mask
    return sol.ys[0], sol.stats["num_accepted_steps"], mask, sol.result == diffrax.RESULTS.max_steps_reached


def _normalise(y0):
    n0 = float(np.sqrt(sum(np.sum(np.asarray(x) ** 2) for x in jax.tree.leaves(y0))))
    return jax.tree.map(lambda x: jnp.asarray(x, jnp.float64) / n0, y0), n0


def _finish(saved, n_steps, mask, k, n0, tol) -> Blowup:
    scale = n0 ** (-(k - 1))
    n = int(n_steps) + 1  # + the t0 save
    steps = {key: np.asarray(v)[:n].copy() for key, v in saved.items()}
    for key in ("t", "T_est"):
        steps[key] = steps[key] * scale
    steps["rate"] = steps.pop("rate_s") * np.exp((k - 1) * steps["log_growth"]) / scale
    if not all(np.all(np.isfinite(v)) for key, v in steps.items() if key != "T_est"):
        bad = [key for key, v in steps.items() if key != "T_est" and not np.all(np.isfinite(v))]
        from condensation.errors import NumericalError

        raise NumericalError(f"the effective solve produced non-finite values in {bad}")
    mask = {key: bool(v) for key, v in mask.items()}
    status = (
        "blow-up" if mask["blow-up"] else "equilibrium" if mask["equilibrium"]
        else "norm-reached" if mask["norm"] else "max-time" if mask["time"]
        else "max-steps"
    )
    conv = []
    if k > 1:
        for j in range(1, 40):
            idx = np.nonzero(steps["log_growth"] >= j * np.log(10))[0]
            if idx.size == 0:
                break
            i = idx[0]
            conv.append(
                {"norm_growth": 10.0**j, "t": float(steps["t"][i]), "T_star_est": float(steps["T_est"][i])}
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
        reached = np.nonzero(growth >= np.log(tol.norm_growth))[0]
        ttn = float(np.interp(np.log(tol.norm_growth), growth, steps["t"])) if reached.size else float("nan")
        out = dataclasses.replace(out, growth_rate=float(steps["rate"][-1]), time_to_norm=ttn)
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
    >>> sol = blowup(lambda y, a: y * y, jnp.array([0.5]), 2)   # x' = x^2, T* = 1/x0
    >>> round(sol.T_star, 9)
    2.0
    """
    if degree < 1:
        raise ValueError(f"degree must be >= 1, got {degree}")
    u0, n0 = _normalise(y0)
    if n0 == 0 or not np.isfinite(n0):
        raise ValueError(f"the initial state must be non-zero and finite, got norm {n0}")
    f0 = float(_norm(fld(u0, args)))
    if f0 == 0.0:
        return _no_drive(degree, n0)
    saved, n_steps, mask, _ = _solve(
        u0, jnp.log(n0), args, f0, fld=fld, diag=diag, k=degree, tol=tol
    )
    return _finish(saved, n_steps, mask, degree, n0, tol)


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

    Each member keeps its own adaptive step size; because every solve starts at
    unit scale, members whose T* differ by orders of magnitude (different eps)
    need the same number of steps, so batching wastes little.
    """
    leaves = jax.tree.leaves(y0s)
    n_members = leaves[0].shape[0]
    norms = np.sqrt(sum(np.sum(np.asarray(x).reshape(n_members, -1) ** 2, axis=1) for x in leaves))
    if np.any(norms == 0) or not np.all(np.isfinite(norms)):
        raise ValueError("every initial state must be non-zero and finite")
    u0s = jax.tree.map(lambda x: jnp.asarray(x, jnp.float64) / norms.reshape((-1,) + (1,) * (x.ndim - 1)), y0s)
    ax = 0 if args_batched else None
    f0s = jax.vmap(lambda u, a: _norm(fld(u, a)), in_axes=(0, ax))(u0s, args)
    solve = partial(_solve, fld=fld, diag=diag, k=degree, tol=tol)
    saved, n_steps, mask, _ = jax.vmap(solve, in_axes=(0, 0, ax, 0))(
        u0s, jnp.log(jnp.asarray(norms)), args, f0s
    )
    out = []
    for i in range(n_members):
        if float(f0s[i]) == 0.0:
            out.append(_no_drive(degree, float(norms[i])))
            continue
        pick = partial(_take, i=i)
        out.append(
            _finish(
                jax.tree.map(pick, saved), n_steps[i], jax.tree.map(pick, mask),
                degree, float(norms[i]), tol,
            )
        )
    return out


def _take(x, i):
    return np.asarray(x)[i]


def _no_drive(k: int, n0: float) -> Blowup:
    return Blowup(
        status="no-drive", blew_up=False, T_star=float("nan"), T_star_rel_error=float("nan"),
        degree=k, time_scale=n0 ** (-(k - 1)), n_steps=0, steps={}, convergence=[],
    )


@partial(jax.jit, static_argnames=("fld", "k", "tol"))
def _states_at(u0, args, s_values, *, fld: Field, k: int, tol: Tolerances):
    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(_polar_field(k, fld)),
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
    )
    return sol.ys


def states_at(
    fld: Field, y0, degree: int, sol: Blowup, times, args=(), *, tol: Tolerances = Tolerances()
):
    """The state at (approximately) the given times ``t < T*``, from a second solve.

    Times are mapped to the solve's variable ``s`` through the recorded steps;
    returns ``(t_actual, states)`` with ``states`` a pytree whose leaves have a
    leading axis over the requested times (``t_actual`` is where they really are).
    """
    times = np.asarray(times, dtype=float)
    s = np.interp(times, sol.steps["t"], sol.steps["s"])
    s = np.maximum.accumulate(np.maximum(s, 1e-300))
    u0, n0 = _normalise(y0)
    u, r, t = _states_at(u0, args, jnp.asarray(s), fld=fld, k=degree, tol=tol)
    y = jax.tree.map(lambda x: np.asarray(x) * (n0 * np.exp(np.asarray(r))).reshape((-1,) + (1,) * (x.ndim - 1)), u)
    return np.asarray(t) * sol.time_scale, y


__all__ = ["Blowup", "Tolerances", "blowup", "blowup_batch", "states_at"]
