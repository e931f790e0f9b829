"""The state of a solved blow-up problem at chosen times ``t < T*`` (parameter
snapshots along the effective dynamics), from further solves saved at chosen ``s``."""

from __future__ import annotations

import math
from functools import partial

import diffrax
import jax
import jax.numpy as jnp
import numpy as np

from condensation.effective.polar import PolarProblem, polar_vector_field
from condensation.effective.solution import Blowup, Tolerances


@partial(jax.jit, static_argnames=("polar", "k", "tol"))
def _states_at(u0, args, s_values, *, polar, k: int, tol: Tolerances):
    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(polar_vector_field(k, polar)),
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
