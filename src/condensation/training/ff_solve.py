"""The second-order effective solve of fast-forward at depth >= 3: GD's modified
flow of ``E2`` (:mod:`condensation.core.second_order`) integrated by Dopri8 in
scaled variables, up to the end of its validity, polling for signals and
reporting progress once per solver step.  Queried through
:class:`condensation.training.ff_flows.SecondOrderFlow`.
"""

from __future__ import annotations

from contextlib import contextmanager
from functools import partial

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import io_callback

from condensation import interrupts
from condensation.core.second_order import second_order_field
from condensation.effective.blowup import Tolerances


class SolveFailed(RuntimeError):
    """The second-order solve stopped (max steps) before a requested time."""


def _second_order_vf(tau, w, args):
    """GD's modified second-order flow ``G = F - (lr/2) J_F F``, ``F = grad E2``
    (:mod:`condensation.core.second_order`), in the scaled variables ``w = y / n0``,
    ``tau = t n0^(k-1)`` (``k = L - 1``, the leading degree): ``dw/dtau = G(n0 w) / n0^k``.

    ``J_F F`` is a forward difference along ``F``, ``(F(y + h F) - F(y)) / h`` with
    ``h |F| = sqrt(eps) |y|``: one more evaluation of ``F`` where forward-mode
    differentiation of the gradient costs about four (at width 2000, ~2 against
    ~5 evaluations of ``F`` per step), with a relative error ~1e-8 in a term that is
    itself ``O(lr / (T* - t))`` of ``F``: far below the solve's tolerance."""
    mom, lr, n0, k = args
    y = jax.tree.map(lambda a: n0 * a, w)

    def fld(p):
        return second_order_field(p, mom)

    def norm(t):
        return jnp.sqrt(sum(jnp.vdot(a, a) for a in jax.tree.leaves(t)))

    f = fld(y)
    h = jnp.sqrt(jnp.finfo(jnp.float64).eps) * norm(y) / jnp.maximum(norm(f), 1e-300)
    shifted = fld(jax.tree.map(lambda a, b: a + h * b, y, f))
    jf = jax.tree.map(lambda a, b: (a - b) / h, shifted, f)
    scale = n0**k
    return jax.tree.map(lambda a, b: (a - 0.5 * lr * b) / scale, f, jf)


def _past_validity(tau, w, args, **kwargs):
    """Stop once the first layer's rms pre-activation on the data reaches 1: then
    ``u >= 1`` and the error estimate is past every tolerance in (0, 1); or at once
    when a signal arrived (:func:`condensation.interrupts.pending`, polled once per
    step: the solve returns and the signal's handler raises in the main thread)."""
    mom, _, n0, _ = args
    w1 = n0 * w[0]  # (m1, d)
    past = jnp.max(jnp.einsum("jp,pq,jq->j", w1, mom.sigma, w1)) >= 1.0
    stop = io_callback(_step_taken, jax.ShapeDtypeStruct((), jnp.bool_), tau, ordered=False)
    return past | stop


_ON_STEP: list = [None]  # (tau -> None) of the solve in progress: its progress


@contextmanager
def step_reports(report):
    """While the block runs, ``report(tau)`` is called at every step of a solve
    (from the solver's thread: keep it cheap); None reports nothing."""
    _ON_STEP[0] = report
    try:
        yield
    finally:
        _ON_STEP[0] = None


def _step_taken(tau):
    """Host side of each solver step: report the time reached, say whether to stop."""
    report = _ON_STEP[0]
    if report is not None:
        report(float(tau))
    return np.asarray(interrupts.pending())


@partial(jax.jit, static_argnames=("tol",))
def second_order_solve(w0, tau0, taus, args, dt0=None, *, tol: Tolerances):
    """States at the scaled times ``taus`` (>= tau0) from ``w0`` at ``tau0`` (first
    step ``dt0``; None: the solver's own guess); times past the validity event come
    back as inf.  Returns ``(states, steps, failed)``."""
    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(_second_order_vf),
        diffrax.Dopri8(),
        t0=tau0,
        t1=taus[-1],
        dt0=dt0,
        y0=w0,
        args=args,
        stepsize_controller=diffrax.PIDController(rtol=tol.rtol, atol=tol.atol),
        saveat=diffrax.SaveAt(ts=taus),
        event=diffrax.Event(_past_validity),
        max_steps=tol.max_steps,
        throw=False,
        adjoint=diffrax.ForwardMode(),
    )
    failed = sol.result == diffrax.RESULTS.max_steps_reached
    return sol.ys, sol.stats["num_steps"], failed
