"""The effective trajectories fast-forward follows, and where on them GD takes over.

The error estimate ``err(theta) = u^p + rms f(x) / rms y`` at states on a
trajectory (:func:`error_estimate`); the trajectories, queried at GD steps
(:class:`Trajectory`): the depth-2 GD map on ``E2`` (:class:`SecondOrderMap`,
run by the engine's step loop), GD's modified flow of a field (:class:`Flow`)
and the second-order flow of depth >= 3 (:class:`SecondOrderFlow`).  The search
for the hand-off step on them is :mod:`condensation.training.ff_plan`.  See
:mod:`condensation.training.fastforward`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from functools import cache, partial

import jax
import jax.numpy as jnp
import numpy as np

from condensation import interrupts
from condensation.core.activations import Activation
from condensation.core.second_order import Moments, second_order_field, taylor_coefficients
from condensation.core.solve_memory import CACHE_FLOATS, CHUNK, QUERY_FLOATS, query_chunk
from condensation.effective.blowup import Blowup, PolarProblem, Tolerances, states_at
from condensation.training.engine import iterate
from condensation.training.ff_solve import SolveFailed, second_order_solve, step_reports

STAGES = 13  # vector-field evaluations per accepted Dopri8 step (14 stages, FSAL)
# CHUNK: times per state query (blowup.states_at pads to it); a wide trajectory's
# queries hold fewer states (condensation.core.solve_memory)


# ---- the error estimate ------------------------------------------------------------
def activation_power(activation: Activation) -> int:
    """``p`` of the error estimate: 2 when ``sigma''(0) = 0`` (odd-like), else 1."""
    return 2 if taylor_coefficients(activation.fn)[1] == 0.0 else 1


@partial(jax.jit, static_argnames=("act",))
def _forward_stats(params, x, y, *, act: Callable):
    """Largest |pre-activation|, rms output and loss at each state (leading axis)."""
    h = x.T  # (d, n)
    u = jnp.zeros(params[0].shape[0], x.dtype)
    for w in params[:-1]:
        pre = w @ h  # (T, m, n)
        u = jnp.maximum(u, jnp.max(jnp.abs(pre), axis=(-2, -1)))
        h = act(pre)
    f = (params[-1] @ h)[:, 0, :]  # (T, n)
    r = f - y
    return u, jnp.sqrt(jnp.mean(f * f, axis=-1)), 0.5 * jnp.mean(r * r, axis=-1)


def forward_stats(params, x, y, act: Callable) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`_forward_stats` as host arrays; the state count is padded to ``CHUNK``
    (states of a wide network: to 1) or the next power of two (repeating the last
    state), so queries of any length share one or a few programs."""
    ps = [np.asarray(p, np.float64) for p in params]
    t = ps[0].shape[0]
    floats = sum(int(np.prod(p.shape[1:])) for p in ps)
    least = CHUNK if CHUNK * floats <= QUERY_FLOATS else 1  # wide: no padding to 32 states
    size = max(least, 1 << max(t - 1, 0).bit_length())
    if size > t:
        ps = [np.concatenate([p, np.repeat(p[-1:], size - t, axis=0)]) for p in ps]
    out = _forward_stats(tuple(ps), np.asarray(x, np.float64), np.asarray(y, np.float64), act=act)
    return tuple(np.asarray(a)[:t] for a in out)


def estimate_from(u: np.ndarray, rms_f: np.ndarray, y, power: int) -> np.ndarray:
    rms_y = max(float(np.sqrt(np.mean(np.asarray(y) ** 2))), 1e-300)
    return u**power + rms_f / rms_y


def error_estimate(params, x, y, act: Callable, power: int) -> np.ndarray:
    """``err`` at states ``params`` (W_k with a leading state axis, (T, *shape_k)), (T,)."""
    u, rms_f, _ = forward_stats(params, x, y, act)
    return estimate_from(u, rms_f, y, power)


def state_losses(params, x, y, act: Callable) -> np.ndarray:
    """Network loss at states with a leading axis, (T,)."""
    return forward_stats(params, x, y, act)[2]


# ---- trajectories on the step grid --------------------------------------------------
class Trajectory:
    """One member's effective trajectory, queried at GD steps (``at(ks)`` -> W_k (T, ...));
    callers ask for at most ``chunk`` steps at a time."""

    evaluations: int = 0
    chunk: int = CHUNK

    def at(self, ks: np.ndarray) -> list[np.ndarray]:  # pragma: no cover - interface
        raise NotImplementedError


class SecondOrderMap(Trajectory):
    """Depth 2: GD itself on the second-order energy ``E2``
    (:mod:`condensation.core.second_order`), ``theta <- theta + lr grad E2``, step
    by step (the plateau is only ``O(log(1/eps) / (lr |z|))`` steps long): no
    time-discretisation error at all, only what ``E2`` neglects.  Queries continue
    from the nearest state already computed."""

    CACHE = 64  # states kept

    def __init__(self, params0, mom: Moments, lr: float):
        self.mom, self.lr = mom, lr
        self.cache: dict[int, tuple] = {0: tuple(jnp.asarray(p, jnp.float64) for p in params0)}

    def at(self, ks):
        ks = np.asarray(ks, dtype=np.int64)
        out: list[list[np.ndarray]] = [[] for _ in self.cache[0]]
        for k in ks:
            k = int(k)
            k0 = max(c for c in self.cache if c <= k)
            p = self.cache[k0]
            if k > k0:
                p = _gd_map_steps(p, self.mom, self.lr, k - k0)
                self.evaluations += k - k0
                if len(self.cache) >= self.CACHE:
                    del self.cache[max(c for c in self.cache if c != 0 and c != max(self.cache))]
                self.cache[k] = p
            for o, w in zip(out, p):
                o.append(np.asarray(w))
        return [np.stack(o) for o in out]


def growth_steps(est0: float, rate: float) -> int:
    """Depth 2: a step count by which an error estimate growing like ``(1 + rate)^k``
    from ``est0`` has passed 1 (where the doubling search for the hand-off starts)."""
    return int(math.ceil(math.log(max(1.0 / max(est0, 1e-300), 10.0)) / math.log1p(rate)))


@jax.jit
def _gd_map_steps(params, mom: Moments, lr, n):
    """``n`` GD steps on ``-E2`` (ascent of ``E2``) from ``params``."""

    def step(_, p):
        g = second_order_field(p, mom)
        return tuple(a + lr * b for a, b in zip(p, g))

    return iterate(step, tuple(params), 0, n)[1]  # the engine's step loop


@cache
def modified_polar(fld: Callable):
    """Polar form of GD's modified flow ``y' = F - (lr/2) J_F F`` for a field ``F``
    homogeneous of degree ``k`` (args ``(field args, lr, r0, k)``).

    GD with step ``lr`` follows this flow to ``O(lr^2)`` (backward error analysis;
    for a gradient field it is the gradient of ``E - (lr/4) |grad E|^2``).  At
    ``y = e^R u``, ``F(y) / e^(kR) = F(u)`` and ``(J_F F)(y) / e^(kR) =
    e^((k-1) R) (J_F F)(u)``, so the change of variables of :mod:`condensation.effective.blowup`
    applies unchanged, with the correction growing as the state does.
    """

    def polar(u, r, args):
        fargs, lr, r0, k = args
        f = fld(u, fargs)
        jf = jax.jvp(lambda v: fld(v, fargs), (u,), (f,))[1]
        w = jnp.exp((k - 1) * (r0 + r))
        g = jax.tree.map(lambda a, b: a - 0.5 * lr * w * b, f, jf)
        rate = sum(jnp.vdot(a, b) for a, b in zip(jax.tree.leaves(u), jax.tree.leaves(g)))
        return jax.tree.map(lambda gi, ui: gi - rate * ui, g, u), rate

    return polar


class Flow(Trajectory):
    """Depth >= 3: GD's modified effective flow, queried through
    :func:`condensation.effective.blowup.states_at` (the blow-up solve ``sol`` of the plain
    flow maps times to the solver's variable; Newton's method absorbs the difference)."""

    def __init__(self, base: PolarProblem, fld, fargs, to_params, sol: Blowup, lr, tol):
        """``base``: the plain flow's polar problem (``fld(y, fargs)`` homogeneous);
        ``to_params(y)``: network weights from states with a leading axis."""
        self.sol, self.lr, self.tol, self.to_params = sol, lr, tol, to_params
        args = (fargs, lr, base.r0, base.k)
        self.prob = dataclasses.replace(base, polar=modified_polar(fld), args=args)
        self.evaluations = STAGES * sol.n_steps

    def at(self, ks):
        ks = np.asarray(ks)
        out: list[list[np.ndarray]] = []
        for i in range(0, len(ks), CHUNK):
            part = ks[i : i + CHUNK] * self.lr
            _, y = states_at(self.prob, self.sol, part, tol=self.tol)
            # each query re-integrates up to its last time (Newton refines a few times)
            self.evaluations += STAGES * self.sol.n_steps
            out.append(list(self.to_params(y)))
        return [np.concatenate([o[k] for o in out]) for k in range(len(out[0]))]


class SecondOrderFlow(Trajectory):
    """Depth >= 3: GD's modified *second-order* effective flow (full form, every
    weight; :mod:`condensation.core.second_order`) from ``theta_0``, integrated in
    time ``t`` by Dopri8 and queried at GD steps.  Each query restarts from the
    latest state already computed at or before its first time: the states of the
    latest query, those pinned (:meth:`remember`), and older ones while they fit in
    ``CACHE_FLOATS`` numbers (oldest dropped first, theta_0 always); so the
    trajectory is integrated about once, and a query's bracket is narrowed from
    its own states.  A ``watch`` (with ``unseen(k0, k1)``, the grid steps in
    ``(k0, k1]`` it still wants, and ``see(ks, states)``) is shown the states at
    those steps whenever a solve passes them: the run's snapshots are read during
    the hand-off search, not by a second pass.

    A solve saves at most ``chunk`` states (:mod:`condensation.core.solve_memory`);
    a vector-field evaluation costs a few products with the weights, ``O(P)``."""

    CACHE_FLOATS = CACHE_FLOATS  # states kept besides the latest query's (a class knob)

    def __init__(self, params0, mom: Moments, lr: float, tol: Tolerances, reached=None):
        """``reached(step)``: called with the furthest GD step the solve has reached."""
        self.reached, self.watch = reached, None
        p0 = tuple(np.asarray(p, np.float64) for p in params0)
        self.n0 = float(np.sqrt(sum(float(np.sum(p * p)) for p in p0)))
        self.k = len(p0) - 1
        self.unit = self.n0 ** (self.k - 1)  # tau = t * unit
        self.args = (mom, lr, self.n0, float(self.k))
        self.lr, self.tol = lr, tol
        self.floats = sum(p.size for p in p0)
        self.chunk = query_chunk(self.floats)
        self.cache: list[tuple[float, tuple]] = [(0.0, tuple(p / self.n0 for p in p0))]
        self.latest: list[tuple[float, tuple]] = []  # the latest query's states
        self.pinned: list[tuple[float, tuple]] = []
        self._dt: tuple[float, float] | None = None  # (end time, step size) of the last solve
        self.t_invalid = math.inf  # first queried time found past the validity event

    def remember(self, k: int, state) -> None:
        """Keep the state (network weights) at grid step ``k`` for later queries."""
        self.pinned.append((k * self.lr * self.unit, tuple(np.asarray(w) / self.n0 for w in state)))

    def _start(self, tau: float):
        known = (c for c in (*self.cache, *self.latest, *self.pinned) if c[0] <= tau)
        return max(known, key=lambda c: c[0])

    def _solve(self, start, taus: np.ndarray):
        """States (scaled) at ``taus`` (sorted, at most ``chunk``, >= the start's time)
        from ``start = (tau0, w0)``, and which are finite (inf: past validity)."""
        tau0, w0 = start
        if taus[-1] <= tau0:  # every time is the start point itself
            ys = [np.repeat(np.asarray(w)[None], len(taus), axis=0) for w in w0]
            return ys, np.ones(len(taus), bool)
        pad = np.concatenate([taus, np.full(self.chunk - len(taus), taus[-1])])
        def report(tau: float) -> None:  # progress during one long solve, step by step
            self.reached(int(tau / (self.unit * self.lr)))

        # a solve continuing the last one starts at its step size (a fresh start's
        # guess and ramp-up cost ~3 steps per piece)
        dt0 = self._dt[1] if self._dt is not None and self._dt[0] == tau0 else None
        with step_reports(None if self.reached is None else report):
            ys, n_steps, failed = second_order_solve(
                w0, tau0, jnp.asarray(pad), self.args, dt0, tol=self.tol
            )
            jax.block_until_ready(ys)
        if interrupts.pending():  # the solve stopped for a signal: its handler raises
            raise KeyboardInterrupt("signal during the second-order solve")
        self.evaluations += STAGES * int(n_steps)
        ys = [np.asarray(y)[: len(taus)] for y in ys]
        finite = np.all([np.all(np.isfinite(y), axis=tuple(range(1, y.ndim))) for y in ys], 0)
        if finite.all() and int(n_steps) > 0:  # half the mean step: steps shrink toward T*
            self._dt = (float(taus[-1]), 0.5 * (float(taus[-1]) - tau0) / int(n_steps))
        if not finite.all() and bool(failed):
            raise SolveFailed(
                f"the second-order effective solve reached max_steps = "
                f"{self.tol.max_steps} before t = {taus[~finite][0] / self.unit:.6g}"
            )
        return ys, finite

    def _chunk(self, ks: np.ndarray) -> list[np.ndarray]:
        """States at the sorted steps ``ks`` (at most ``chunk``); the watch's steps on
        the way are solved for too, ``chunk`` times per solve."""
        valid = ks * self.lr < self.t_invalid
        out = [np.full((len(ks), *np.shape(w)), np.inf) for w in self.cache[0][1]]
        if not valid.any():
            return out
        kv = ks[valid]
        start = self._start(float(kv[0] * self.lr * self.unit))
        k0 = int(math.floor(start[0] / (self.lr * self.unit)))
        extra = np.zeros(0, np.int64) if self.watch is None else self.watch.unseen(k0, int(kv[-1]))
        every = np.union1d(kv, extra)
        got: dict[int, tuple] = {}
        latest: list[tuple[float, tuple]] = []
        for i in range(0, len(every), self.chunk):
            pk = every[i : i + self.chunk]
            pt = pk * self.lr * self.unit
            ys, finite = self._solve(start, pt)
            self._keep(pt, ys, finite)
            seen = np.isin(pk, extra) & finite
            if seen.any():
                self.watch.see(pk[seen], [self.n0 * y[seen] for y in ys])
            for j in np.nonzero(np.isin(pk, kv) & finite)[0]:
                got[int(pk[j])] = tuple(y[j] for y in ys)
                latest.append((float(pt[j]), got[int(pk[j])]))
            if not finite.all():  # past the validity event: later times are too
                self.t_invalid = min(self.t_invalid, float(pk[~finite][0] * self.lr))
                break
            start = (float(pt[-1]), tuple(y[-1] for y in ys))
        self.latest = latest
        for j in np.nonzero(valid)[0]:
            state = got.get(int(ks[j]))
            if state is not None:
                for o, y in zip(out, state):
                    o[j] = self.n0 * y
        return out

    def _keep(self, taus, ys, finite) -> None:
        """Keep the finite states of a solve (scaled): all of them, older ones within
        ``CACHE_FLOATS`` (the oldest dropped first, never theta_0)."""
        for i in np.nonzero(finite)[0]:
            self.cache.append((float(taus[i]), tuple(y[i] for y in ys)))
        room = max(self.CACHE_FLOATS // max(self.floats, 1), int(finite.sum()) + 1, 2)
        excess = len(self.cache) - room
        if excess > 0:
            del self.cache[1 : 1 + excess]

    def at(self, ks):
        ks = np.asarray(ks, dtype=np.int64)
        order = np.argsort(ks, kind="stable")
        c = self.chunk
        parts = [self._chunk(ks[order[i : i + c]]) for i in range(0, len(ks), c)]
        out = [np.concatenate([p[j] for p in parts]) for j in range(len(parts[0]))]
        inverse = np.empty_like(order)
        inverse[order] = np.arange(len(order))
        return [o[inverse] for o in out]
