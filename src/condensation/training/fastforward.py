"""Fast-forward through the plateau (THEORY §9, derived here).

On the plateau GD follows the effective dynamics (THEORY §2) to a relative
error that this module estimates, at a state ``theta``, as

    err(theta) = u^p + rms f(x) / rms y,

``u`` the largest pre-activation ``|(W_k h_{k-1})_{j,i}|`` over layers, neurons
and samples, ``f`` the network output, ``p = 2`` when ``sigma''(0) = 0`` (odd
activations such as tanh and sin: the first neglected term is cubic) and
``p = 1`` otherwise.  For each member a trajectory is computed from
``theta_0`` up to the hand-off step ``k_h``, the first step of the GD grid
``t = k lr`` at which ``err`` reaches the tolerance ``delta`` (``[train]
handoff``) or the loss of that state has already fallen by the plateau drop;
the weights there are handed to GD for the rest of the run.

The trajectory is not the first-order effective flow but the *second-order*
one, gradient ascent of ``E2`` (:mod:`condensation.core.second_order`): the
effective energy plus the two terms ``err`` measures, the activation's first
nonlinear term and the residual ``-mean(f^2)/2``, both through data moments
only.  Why: the first-order flow's error per unit time is ``~err``, and near the
blow-up ``err`` grows like ``(T* - t)^-2`` or faster, so what it accumulates up
to ``t_h`` is a time shift of ``~err(t_h) (T* - t_h)``: measured 0.03-0.05 time
units at the default ``delta`` on the default example, eps-independent, which on
the steep drop at the escape is a 3e-2 relative loss error.  ``E2`` neglects only
products of those terms (``u^4``, ``u^2 |f|/|y|``, ``(|f|/|y|)^2`` for odd
activations), and the loss after the hand-off agreed with plain GD to 3e-4
(teacher data) and 6e-5 (diabetes) at every step, at eps 1e-3 and 1e-4
(``benchmarks/bench_fastforward.py``).  The forms:

- depth 2: GD itself on ``E2`` (``theta <- theta + lr grad E2``), step by step:
  the plateau is only ``O(log(1/eps)/(lr |z|))`` steps, and this way the
  hand-off state has no time-discretisation error at all;
- depth >= 3: GD's modified flow ``G = F - (lr/2) J_F F`` of ``F = grad E2``
  (the flow GD follows to ``O(lr^2)``), every weight (``B``'s part orthogonal to
  ``z`` moves at second order), integrated in ``t`` by Dopri8 up to the first
  time the first layer's rms pre-activation reaches 1 (past every hand-off).
  The first-order blow-up solve (:mod:`condensation.effective.blowup`, reduced form for
  depth 3) still gives ``T*`` and brackets the hand-off on its steps.

None of these evaluates the network on the data: their evaluations are
``effective_evaluations``, not gradient evaluations.  Members whose effective
dynamics does not blow up (an equilibrium), whose activation is outside the
theory, whose initial state is already past the tolerance, or whose
second-order solve fails, run plain GD from step 0, and the plan says why.
Everything the trainer records from the hand-off on (escape, plateau exit,
final-stage entry, the peak alignment) is GD's; before it, the final-stage
entry and the peak alignment are read off the second-order trajectory on the
step grid (entry) and at the snapshot steps (peak).
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

from condensation.core.activations import Activation
from condensation.core.final_stage import final_stage_holds
from condensation.core.metrics import abs_cos_to
from condensation.core.second_order import (
    Moments,
    data_moments,
    second_order_field,
    taylor_coefficients,
)
from condensation.effective import theory
from condensation.effective.blowup import (
    Blowup,
    PolarProblem,
    Tolerances,
    solve_polar_batch,
    states_at,
)
from condensation.effective.system import EffectiveSystem, build_system
from condensation.errors import NumericalError
from condensation.training.engine import iterate
from condensation.training.network import Handoff, TrainResult, train

DEFAULT_HANDOFF = 1e-2  # the tolerance delta of THEORY §9 (= config.DEFAULT_HANDOFF)
STAGES = 13  # vector-field evaluations per accepted Dopri8 step (14 stages, FSAL)
CHUNK = 32  # times per state query: one compiled shape (blowup.states_at pads to 32)
AUTO_FACTOR = 1.0  # "auto": AUTO_FACTOR x max T* + AUTO_ROOM / |z| (GD escapes within O(1) of T*)
AUTO_ROOM = 40.0  # room after the escape, in units of 1/|z| (the post-plateau time scale)

PLAIN = "plain"
FAST_FORWARD = "fast-forward"


@dataclass(frozen=True)
class MemberPlan:
    """One member's hand-off: where GD starts and why (``mode`` plain or fast-forward)."""

    mode: str
    reason: str | None  # why plain GD; None when fast-forwarded
    handoff_step: int  # 0 for plain GD
    handoff_time: float
    error_estimate: float | None  # err(theta) at the hand-off (None: plain)
    effective_evaluations: int  # vector-field (or GD-map) evaluations of the effective dynamics
    t_star: float | None  # the effective blow-up time (depth >= 3), None otherwise

    def summary(self, steps: int, escape_step: int | None) -> dict:
        """The member's ``fast_forward`` summary entry."""
        gd = steps - self.handoff_step
        return {
            "mode": self.mode,
            "reason": self.reason,
            "handoff_step": self.handoff_step,
            "handoff_time": self.handoff_time,
            "handoff_error_estimate": self.error_estimate,
            "gradient_evaluations": gd,
            "gradient_evaluations_to_escape": (
                None if escape_step is None else max(escape_step - self.handoff_step, 0)
            ),
            "effective_evaluations": self.effective_evaluations,
            "effective_t_star": self.t_star,
        }


@dataclass(frozen=True)
class Plan:
    """The hand-offs of an ensemble and the GD
    :class:`~condensation.training.network.Handoff`."""

    delta: float
    members: list[MemberPlan]
    handoff: Handoff = field(repr=False)

    @property
    def notes(self) -> list[str]:
        """One line per member that runs plain GD, saying why."""
        return [
            f"member {i}: fast-forward not used, plain GD ({m.reason})"
            for i, m in enumerate(self.members)
            if m.mode == PLAIN
        ]


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


def _stats(params, x, y, act: Callable) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`_forward_stats` as host arrays; the state count is padded to ``CHUNK``
    or the next power of two (repeating the last state), so queries of any length
    share one or a few programs."""
    ps = [np.asarray(p, np.float64) for p in params]
    t = ps[0].shape[0]
    size = max(CHUNK, 1 << max(t - 1, 0).bit_length())
    if size > t:
        ps = [np.concatenate([p, np.repeat(p[-1:], size - t, axis=0)]) for p in ps]
    out = _forward_stats(tuple(ps), np.asarray(x, np.float64), np.asarray(y, np.float64), act=act)
    return tuple(np.asarray(a)[:t] for a in out)


def _estimate(u: np.ndarray, rms_f: np.ndarray, y, power: int) -> np.ndarray:
    rms_y = max(float(np.sqrt(np.mean(np.asarray(y) ** 2))), 1e-300)
    return u**power + rms_f / rms_y


def error_estimate(params, x, y, act: Callable, power: int) -> np.ndarray:
    """``err`` at states ``params`` (W_k with a leading state axis, (T, *shape_k)), (T,)."""
    u, rms_f, _ = _stats(params, x, y, act)
    return _estimate(u, rms_f, y, power)


def _losses(params, x, y, act: Callable) -> np.ndarray:
    """Network loss at states with a leading axis, (T,)."""
    return _stats(params, x, y, act)[2]


# ---- trajectories on the step grid --------------------------------------------------
class _Trajectory:
    """One member's effective trajectory, queried at GD steps (``at(ks)`` -> W_k (T, ...))."""

    evaluations: int = 0

    def at(self, ks: np.ndarray) -> list[np.ndarray]:  # pragma: no cover - interface
        raise NotImplementedError


class _SecondOrderMap(_Trajectory):
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


class Flow(_Trajectory):
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


class _SolveFailed(RuntimeError):
    """The second-order solve stopped (max steps) before a requested time."""


def _second_order_vf(tau, w, args):
    """GD's modified second-order flow ``G = F - (lr/2) J_F F``, ``F = grad E2``
    (:mod:`condensation.core.second_order`), in the scaled variables ``w = y / n0``,
    ``tau = t n0^(k-1)`` (``k = L - 1``, the leading degree): ``dw/dtau = G(n0 w) / n0^k``."""
    mom, lr, n0, k = args
    y = jax.tree.map(lambda a: n0 * a, w)

    def fld(p):
        return second_order_field(p, mom)

    f = fld(y)
    jf = jax.jvp(fld, (y,), (f,))[1]
    scale = n0**k
    return jax.tree.map(lambda a, b: (a - 0.5 * lr * b) / scale, f, jf)


def _past_validity(tau, w, args, **kwargs):
    """Stop once the first layer's rms pre-activation on the data reaches 1: then
    ``u >= 1`` and the error estimate is past every tolerance in (0, 1)."""
    mom, _, n0, _ = args
    w1 = n0 * w[0]  # (m1, d)
    return jnp.max(jnp.einsum("jp,pq,jq->j", w1, mom.sigma, w1)) >= 1.0


@partial(jax.jit, static_argnames=("tol",))
def _second_order_solve(w0, tau0, taus, args, *, tol: Tolerances):
    """States at the scaled times ``taus`` (>= tau0) from ``w0`` at ``tau0``; times
    past the validity event come back as inf.  Returns ``(states, steps, failed)``."""
    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(_second_order_vf),
        diffrax.Dopri8(),
        t0=tau0,
        t1=taus[-1],
        dt0=None,
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


class _SecondOrderFlow(_Trajectory):
    """Depth >= 3: GD's modified *second-order* effective flow (full form, every
    weight; :mod:`condensation.core.second_order`) from ``theta_0``, integrated in
    time ``t`` by Dopri8 and queried at GD steps.  Each query restarts from the
    latest state already computed at or before its first time (every state a
    query returned is kept, up to ``CACHE_FLOATS`` numbers, oldest dropped first),
    so the trajectory is integrated about once."""

    CACHE_FLOATS = 1 << 23  # at most 64 MB of states kept

    def __init__(self, params0, mom: Moments, lr: float, tol: Tolerances):
        p0 = tuple(np.asarray(p, np.float64) for p in params0)
        self.n0 = float(np.sqrt(sum(float(np.sum(p * p)) for p in p0)))
        self.k = len(p0) - 1
        self.unit = self.n0 ** (self.k - 1)  # tau = t * unit
        self.args = (mom, lr, self.n0, float(self.k))
        self.lr, self.tol = lr, tol
        self.cache: list[tuple[float, tuple]] = [(0.0, tuple(p / self.n0 for p in p0))]
        self.t_invalid = math.inf  # first queried time found past the validity event

    def _start(self, tau: float):
        return max((c for c in self.cache if c[0] <= tau), key=lambda c: c[0])

    def _chunk(self, ks: np.ndarray) -> list[np.ndarray]:
        taus = ks * self.lr * self.unit
        valid = ks * self.lr < self.t_invalid
        out = [np.full((len(ks), *np.shape(w)), np.inf) for w in self.cache[0][1]]
        if not valid.any():
            return out
        part = taus[valid]
        tau0, w0 = self._start(float(part[0]))
        if part[-1] > tau0:
            pad = np.concatenate([part, np.full(CHUNK - len(part), part[-1])])
            ys, n_steps, failed = _second_order_solve(
                w0, tau0, jnp.asarray(pad), self.args, tol=self.tol
            )
            self.evaluations += STAGES * int(n_steps)
            ys = [np.asarray(y)[: len(part)] for y in ys]
            finite = np.all([np.all(np.isfinite(y), axis=tuple(range(1, y.ndim))) for y in ys], 0)
            if not finite.all():
                if bool(failed):
                    raise _SolveFailed(
                        f"the second-order effective solve reached max_steps = "
                        f"{self.tol.max_steps} before t = {part[~finite][0] / self.unit:.6g}"
                    )
                self.t_invalid = min(self.t_invalid, float(ks[valid][~finite][0] * self.lr))
            self._keep(part, ys, finite)
        else:  # every time is the start point itself
            ys = [np.repeat(np.asarray(w)[None], len(part), axis=0) for w in w0]
        for o, y in zip(out, ys):
            o[valid] = self.n0 * y
        return out

    def _keep(self, taus, ys, finite) -> None:
        """Keep the finite states of a query (scaled), dropping the oldest beyond
        ``CACHE_FLOATS`` (never theta_0)."""
        size = sum(int(np.prod(np.shape(y)[1:])) for y in ys)
        for i in np.nonzero(finite)[0]:
            self.cache.append((float(taus[i]), tuple(y[i] for y in ys)))
        excess = len(self.cache) - max(self.CACHE_FLOATS // max(size, 1), 2)
        if excess > 0:
            del self.cache[1 : 1 + excess]

    def at(self, ks):
        ks = np.asarray(ks, dtype=np.int64)
        order = np.argsort(ks, kind="stable")
        parts = [self._chunk(ks[order[i : i + CHUNK]]) for i in range(0, len(ks), CHUNK)]
        out = [np.concatenate([p[j] for p in parts]) for j in range(len(parts[0]))]
        inverse = np.empty_like(order)
        inverse[order] = np.arange(len(order))
        return [o[inverse] for o in out]


def grid_handoff(traj: _Trajectory, pred, lo: int, hi: int, steps: int):
    """``(k_h, state)``: the first grid step in ``(lo, hi]`` where ``pred`` holds (it
    fails at ``lo``, holds at ``hi``), capped at the horizon ``steps`` (then the
    whole run is on the plateau and GD computes nothing)."""
    if hi > steps and (lo >= steps or not pred(traj.at(np.array([steps])))[0]):
        return steps, [w[0] for w in traj.at(np.array([steps]))]
    return _first_true(traj, pred, lo, min(hi, steps))


def flow_handoff(traj: _Trajectory, sol: Blowup, pred, lr: float, steps: int):
    """:func:`grid_handoff` of a blow-up solve, bracketed first on the solver's own
    steps (dense near T*), then on the step grid."""
    ks = np.unique(np.floor(sol.steps["t"][1:-1] / lr).astype(np.int64))
    ks = ks[(ks > 0) & (ks <= steps)]
    ok = np.zeros(0, bool)
    for i in range(0, len(ks), CHUNK):  # in time order, up to the first chunk that holds
        ok = np.concatenate([ok, pred(traj.at(ks[i : i + CHUNK]))])
        if ok[-1]:
            break
    ks = ks[: len(ok)]
    if ok.any():
        j = int(np.argmax(ok))
        lo, hi = (int(ks[j - 1]) if j > 0 else 0), int(ks[j])
    else:  # not reached on the solver's steps (or the horizon): up to just before T*
        lo = int(ks[-1]) if ks.size else 0
        hi = max(int(math.floor(sol.T_star / lr)), lo + 1)
    return grid_handoff(traj, pred, lo, hi, steps)


def _first_true(traj: _Trajectory, pred, lo: int, hi: int) -> tuple[int, list[np.ndarray]]:
    """The first step in ``(lo, hi]`` at which ``pred`` holds, given that it fails at
    ``lo`` and holds at ``hi`` (a monotone predicate on W_k (T, ...) -> (T,) bool),
    and the state there; narrowed CHUNK-fold per query."""
    state = None
    while hi - lo > 1:
        ks = np.unique(np.linspace(lo, hi, CHUNK + 1).round().astype(np.int64)[1:])
        ws = traj.at(ks)
        ok = pred(ws)
        j = int(np.argmax(ok)) if ok.any() else len(ks) - 1  # ks[-1] = hi holds
        lo, hi = (int(ks[j - 1]) if j > 0 else lo), int(ks[j])
        state = [w[j : j + 1] for w in ws]
    if state is None:
        state = traj.at(np.array([hi]))
    return hi, [w[0] for w in state]


# ---- planning --------------------------------------------------------------------
def plain_gd_member(reason: str, t_star: float | None = None, evals: int = 0) -> MemberPlan:
    return MemberPlan(PLAIN, reason, 0, 0.0, None, evals, t_star)


def effective_systems(params0, z, activation: Activation) -> list[EffectiveSystem]:
    """Each member's effective system: reduced form for depth 3, full form otherwise."""
    depth = len(params0)
    form = "reduced" if depth == 3 else "full"
    e = int(np.shape(params0[0])[0])
    return [
        build_system([np.asarray(p[i]) for p in params0], z, activation=activation, form=form)
        for i in range(e)
    ]


def blowups(systems: list[EffectiveSystem], tol: Tolerances = Tolerances()) -> list[Blowup]:
    """One batched blow-up solve of every member's effective system (no diagnostics),
    overflow-safe (:func:`solve_blowups`)."""
    return solve_blowups([s.problem() for s in systems], tol)


def _scale_free(prob: PolarProblem) -> bool:
    """True for the polar form of a homogeneous field
    (:func:`condensation.effective.blowup.polar_problem`):
    its ``r0`` enters only the lift back to the original state, never the solve."""
    return getattr(prob.polar, "__qualname__", "") == "homogeneous_polar.<locals>.polar"


def _in_time_unit(sol: Blowup, log_unit: float) -> Blowup:
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
            out[i] = _in_time_unit(sol, log_units[i])
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


def t_star_predictions(params0, z, activation: Activation) -> list[tuple[float, float] | None]:
    """Each member's effective blow-up time as ``(T*, log10 T*)``: ``T*`` is ``inf``
    where it is beyond float64, ``log10 T*`` always finite; None where there is no
    blow-up (an equilibrium, depth 2, an activation outside the theory)."""
    if activation.why_not_effective() is not None or len(params0) < 3:
        return [None] * int(np.shape(params0[0])[0])
    sols = blowups(effective_systems(params0, z, activation))
    return [(s.T_star, log10_t_star(s)) if s.blew_up else None for s in sols]


MAX_GRID_STEPS = 2**62  # step indices are int64: a T* / lr beyond this is off the grid


def beyond_step_grid(sol: Blowup, lr: float) -> bool:
    """True where a blow-up cannot be fast-forwarded to on GD's step grid: ``T* / lr``
    beyond :data:`MAX_GRID_STEPS` (or ``inf``), or a time unit so large that the
    second-order flow's scaled time ``t |y0|^(k-1)`` underflows."""
    return not sol.T_star / lr < MAX_GRID_STEPS or not (
        sol.time_scale <= math.exp(theory.LOG_UNIT_LIMIT)
    )


def predicted_t_star(params0, z, activation: Activation) -> list[float | None]:
    """Each member's effective blow-up time ``T*`` (None: no blow-up / outside the
    theory; ``inf``: beyond float64, see :func:`t_star_predictions`)."""
    return [None if p is None else p[0] for p in t_star_predictions(params0, z, activation)]


def _rho(params0) -> np.ndarray:
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
        log_rho = np.log10(_rho(params0))
    return 0.5 * k * math.log10(depth) - math.log10(k) - math.log10(z_eff) - 0.5 * k * log_rho


def t_star_lower_bound(params0, z, activation: Activation) -> np.ndarray | None:
    """(E,) a lower bound on each member's T* (no solve;
    :func:`log10_t_star_lower_bound`), ``inf`` where it is beyond float64: for three
    layers ``sqrt(3) / (|z_eff| sqrt(rho_0))`` (THEORY §4).  None below depth 3,
    outside the theory, or for ``z = 0``."""
    logs = log10_t_star_lower_bound(params0, z, activation)
    if logs is None:
        return None
    if len(params0) == 3:  # the closed form, as it always was computed
        z_eff = activation.slope_at_zero**2 * float(np.linalg.norm(z))
        with np.errstate(divide="ignore", over="ignore"):
            return math.sqrt(3.0) / (z_eff * np.sqrt(_rho(params0)))
    with np.errstate(over="ignore"):
        return np.power(10.0, logs)


def plan(
    params0,
    x: np.ndarray,
    y: np.ndarray,
    *,
    activation: Activation,
    lr: float,
    steps: int,
    snapshots: np.ndarray,
    delta: float = DEFAULT_HANDOFF,
    plateau_drop: float = 0.1,
    tol: Tolerances = Tolerances(),
    final_stage: bool = True,
) -> Plan:
    """Every member's hand-off step and state (see the module docstring);
    ``final_stage=False`` skips the depth-3 final-stage entry before the hand-off."""
    if not 0.0 < delta < 1.0:
        raise ValueError(f"delta must be in (0, 1), got {delta}")
    params0 = [np.asarray(p, dtype=np.float64) for p in params0]
    depth, e = len(params0), int(params0[0].shape[0])
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    z = (y @ x) / x.shape[0]
    act = activation.fn
    members: list[MemberPlan] = []
    trajs: list[_Trajectory | None] = [None] * e
    states: list[list[np.ndarray] | None] = [None] * e
    why = activation.why_not_effective()
    if why is not None:
        members = [plain_gd_member(f"outside the theory: {why}")] * e
    else:
        power = activation_power(activation)
        gain = activation.slope_at_zero ** (depth - 1)
        moments = data_moments(x, y, taylor_coefficients(act))
        if depth == 2:
            sols = [None] * e
        else:
            systems = effective_systems(params0, z, activation)
            sols = blowups(systems, tol)
        for i in range(e):
            p_i = [p[i] for p in params0]
            loss0 = float(_losses([p[None] for p in p_i], x, y, act)[0])
            est0 = float(error_estimate([p[None] for p in p_i], x, y, act, power)[0])

            def pred(ws, loss0=loss0):
                u, rms_f, loss = _stats(ws, x, y, act)
                est = _estimate(u, rms_f, y, power)
                return (est >= delta) | (loss <= (1 - plateau_drop) * loss0)

            if not np.linalg.norm(z) > 0:
                members.append(plain_gd_member("no effective drive (z = 0)"))
                continue
            if est0 >= delta:
                members.append(
                    plain_gd_member(f"error estimate {est0:.3g} >= handoff {delta:g} at t = 0")
                )
                continue
            if depth == 2:
                traj: _Trajectory = _SecondOrderMap(p_i, moments, lr)
                hi = growth_steps(est0, lr * abs(gain) * float(np.linalg.norm(z)))
                while hi <= steps and not pred(traj.at(np.array([hi])))[0]:
                    hi *= 2
                t_star = None
                k_h, state = grid_handoff(traj, pred, 0, hi, steps)
            else:
                sol = sols[i]
                if not sol.blew_up:
                    members.append(
                        plain_gd_member(f"the effective dynamics does not blow up ({sol.status})")
                    )
                    continue
                if beyond_step_grid(sol, lr):
                    when = theory.format_time(sol.T_star, log10_t_star(sol))
                    members.append(
                        plain_gd_member(
                            f"the effective T* = {when} is beyond any GD step count", sol.T_star
                        )
                    )
                    continue
                traj = _SecondOrderFlow(p_i, moments, lr, tol)
                t_star = float(sol.T_star)
                try:
                    k_h, state = flow_handoff(traj, sol, pred, lr, steps)
                except _SolveFailed as err:
                    members.append(plain_gd_member(str(err), t_star, traj.evaluations))
                    continue
            est_h = float(error_estimate([w[None] for w in state], x, y, act, power)[0])
            trajs[i], states[i] = traj, state
            members.append(MemberPlan(FAST_FORWARD, None, k_h, k_h * lr, est_h, 0, t_star))
    return build_plan(
        members,
        trajs,
        states,
        params0,
        np.asarray(snapshots),
        delta,
        loss=lambda ws: _losses(ws, x, y, act),
        peak=lambda ws: np.median(abs_cos_to(ws[0], z), axis=-1),
        holds=(lambda ws: _holds(ws, z)) if depth == 3 and final_stage else None,
    )


def build_plan(members, trajs, states, params0, snapshots, delta, *, loss, peak=None, holds=None):
    """The :class:`Plan` of per-member hand-offs: start states, pre-hand-off snapshots,
    and, read off the effective trajectory before the hand-off, the peak of
    ``peak(ws) -> (T,)`` at the snapshots and the first grid step where
    ``holds(ws) -> (T,) bool`` (the final-stage condition); ``loss(ws) -> (T,)``
    gives the snapshots' losses."""
    depth, e = len(params0), int(params0[0].shape[0])
    k_h = np.array([m.handoff_step for m in members], dtype=np.int64)
    start = [p.copy() for p in params0]
    snaps = [np.repeat(p[:, None], len(snapshots), axis=1) for p in params0]
    snap_loss = np.repeat(loss([p for p in params0])[:, None], len(snapshots), axis=1)
    fs = np.full(e, -1, dtype=np.int64)
    best, best_step = np.full(e, -1.0), np.full(e, -1, dtype=np.int64)
    out = []
    for i, (m, traj, state) in enumerate(zip(members, trajs, states)):
        if traj is None:
            out.append(m)
            continue
        for k in range(depth):
            start[k][i] = state[k]
        before = snapshots[snapshots < m.handoff_step]
        if before.size:
            ws = traj.at(before)
            for k in range(depth):
                snaps[k][i, : before.size] = ws[k]
            snap_loss[i, : before.size] = loss(ws)
            if peak is not None:
                cos = peak(ws)
                j = int(np.argmax(cos))
                best[i], best_step[i] = float(cos[j]), int(before[j])
            if holds is not None:
                fs[i] = _final_stage_entry(traj, ws, before, m.handoff_step, holds)
        out.append(
            MemberPlan(
                m.mode,
                m.reason,
                m.handoff_step,
                m.handoff_time,
                m.error_estimate,
                traj.evaluations,
                m.t_star,
            )
        )
    handoff = Handoff(k_h, tuple(start), snaps, fs, best, best_step, snap_loss)
    return Plan(delta, out, handoff)


def _holds(ws, z) -> np.ndarray:
    """The final-stage condition (:func:`condensation.core.final_stage.final_stage_holds`)
    at states W_k (T, ...), vectorised over T: (T,) bool."""
    b, w, a = ws
    return final_stage_holds(a[:, 0], w, b @ z, xp=np)


def _final_stage_entry(traj, ws, before, k_h: int, holds) -> int:
    """First grid step before ``k_h`` in the final-stage set (-1: not before ``k_h``);
    bracketed by the snapshot steps, then narrowed on the grid."""
    inside = holds(ws)
    end = holds(traj.at(np.array([k_h - 1])))[0] if k_h > 0 else False
    if not (inside.any() or end):
        return -1
    if inside.any():
        j = int(np.argmax(inside))
        if j == 0:
            return int(before[0])
        lo, hi = int(before[j - 1]), int(before[j])
    else:
        lo, hi = int(before[-1]), k_h - 1
    k, _ = _first_true(traj, holds, lo, hi)
    return k


def fast_forward_train(
    params0,
    x,
    y,
    *,
    activation: Activation,
    lr: float,
    steps: int,
    snapshots: np.ndarray,
    delta: float = DEFAULT_HANDOFF,
    plateau_drop: float = 0.1,
    **train_kw,
) -> tuple[TrainResult, Plan]:
    """Plan the hand-offs, then GD from them (:func:`condensation.training.network.train`)."""
    p = plan(
        params0,
        x,
        y,
        activation=activation,
        lr=lr,
        steps=steps,
        snapshots=snapshots,
        delta=delta,
        plateau_drop=plateau_drop,
        final_stage=train_kw.get("track_final_stage") is not False,
    )
    result = train(
        params0,
        x,
        y,
        act=activation.fn,
        lr=lr,
        steps=steps,
        snapshots=snapshots,
        plateau_drop=plateau_drop,
        handoff=p.handoff,
        **train_kw,
    )
    return result, p


def auto_steps(t_stars, z_norm: float, lr: float) -> int | float | None:
    """``steps = "auto"``: ``AUTO_FACTOR x max T* + AUTO_ROOM / |z|`` in steps (None
    when no member has a predicted T* or ``|z| = 0``; ``math.inf`` when the horizon
    is beyond float64, e.g. a T* that overflowed, :func:`predicted_t_star`).

    >>> auto_steps([2.0, None], 4.0, 0.5), auto_steps([math.inf], 1.0, 0.1)
    (24, inf)
    """
    known = [t for t in t_stars if t is not None and not math.isnan(t)]
    if not known or not z_norm > 0:
        return None
    steps = (AUTO_FACTOR * max(known) + AUTO_ROOM / z_norm) / lr
    return int(math.ceil(steps)) if math.isfinite(steps) else math.inf
