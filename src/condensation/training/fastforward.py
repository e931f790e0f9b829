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

import numpy as np

from condensation.core.activations import Activation
from condensation.core.metrics import abs_cos_to
from condensation.core.second_order import data_moments, taylor_coefficients
from condensation.effective import theory
from condensation.effective.blowup import Tolerances
from condensation.effective.predictions import (
    blowups,
    effective_systems,
    log10_t_star,
    spectral_form,
)
from condensation.training.engine import tracks
from condensation.training.ff_flows import (  # noqa: F401  (re-exported)
    CHUNK,
    STAGES,
    Flow,
    SecondOrderFlow,
    SecondOrderMap,
    SolveFailed,
    Trajectory,
    activation_power,
    error_estimate,
    estimate_from,
    forward_stats,
    growth_steps,
    modified_polar,
    state_losses,
)
from condensation.training.ff_plan import (  # noqa: F401  (re-exported)
    FAST_FORWARD,
    PLAIN,
    FinalStageCheck,
    MemberPlan,
    Plan,
    SnapshotReader,
    build_plan,
    first_true,
    flow_handoff,
    grid_handoff,
    plain_gd_member,
)
from condensation.training.network import TrainResult, train
from condensation.training.tstar import beyond_step_grid

# the names these classes had in this module (tests reach them here)
_SecondOrderMap, _SecondOrderFlow, _SolveFailed = SecondOrderMap, SecondOrderFlow, SolveFailed

DEFAULT_HANDOFF = 1e-2  # the tolerance delta of THEORY §9 (= config.DEFAULT_HANDOFF)
AUTO_FACTOR = 1.0  # "auto": AUTO_FACTOR x max T* + AUTO_ROOM / |z| (GD escapes within O(1) of T*)
AUTO_ROOM = 40.0  # room after the escape, in units of 1/|z| (the post-plateau time scale)


FLOW_RTOL = 1e-9  # the second-order solve's rtol (atol 1e-2 of it): see flow_tolerances


def flow_tolerances(tol: Tolerances) -> Tolerances:
    """The second-order solve's tolerances: ``tol`` loosened to ``rtol`` 1e-9.  E2
    itself neglects terms of relative size ~``err^2`` (1e-4 at the default hand-off);
    on the default example (width 50, eps 1e-3) rtol 1e-9 moved the hand-off state
    by 1.2e-8 relative against rtol 1e-12, in 936 vector-field evaluations instead
    of 10543."""
    return dataclasses.replace(
        tol, rtol=max(tol.rtol, FLOW_RTOL), atol=max(tol.atol, 1e-2 * FLOW_RTOL)
    )


# ---- planning --------------------------------------------------------------------
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
    keep=None,
    measure=None,
    progress=None,
) -> Plan:
    """Every member's hand-off step and state (see the module docstring);
    ``final_stage=False`` skips the depth-3 final-stage entry before the hand-off;
    ``keep`` and ``measure`` are the run's stored snapshots and per-snapshot measures
    (:func:`build_plan`); ``progress(step)`` is called with the furthest step of the
    GD grid a depth >= 3 trajectory has reached (the same bar as GD's steps)."""

    def reached(step: int) -> None:
        if progress is not None:
            progress(min(step, steps))

    if not 0.0 < delta < 1.0:
        raise ValueError(f"delta must be in (0, 1), got {delta}")
    params0 = [np.asarray(p, dtype=np.float64) for p in params0]
    depth, e = len(params0), int(params0[0].shape[0])
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    z = (y @ x) / x.shape[0]
    act = activation.fn
    members: list[MemberPlan] = []
    trajs: list[Trajectory | None] = [None] * e
    states: list[list[np.ndarray] | None] = [None] * e
    snapshots = np.asarray(snapshots)

    def loss(ws):
        return state_losses(ws, x, y, act)

    def peak(ws):
        return np.median(abs_cos_to(ws[0], z), axis=-1)

    holds = FinalStageCheck(z) if depth == 3 and final_stage else None
    kept = [None] * depth if keep is None else [None if i is None else np.asarray(i) for i in keep]
    readers: list[SnapshotReader | None] = [None] * e
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
            # depth 3: the spectral form (one eigendecomposition, an O(m1) field),
            # which agrees with the reduced form to ~1e-11 and scales with width
            systems = effective_systems(params0, z, activation, spectral_form(depth))
            sols = blowups(systems, tol)
        for i in range(e):
            p_i = [p[i] for p in params0]
            loss0 = float(state_losses([p[None] for p in p_i], x, y, act)[0])
            est0 = float(error_estimate([p[None] for p in p_i], x, y, act, power)[0])

            def pred(ws, loss0=loss0):
                u, rms_f, loss = forward_stats(ws, x, y, act)
                est = estimate_from(u, rms_f, y, power)
                return (est >= delta) | (loss <= tracks.exit_level(loss0, plateau_drop))

            if not np.linalg.norm(z) > 0:
                members.append(plain_gd_member("no effective drive (z = 0)"))
                continue
            if est0 >= delta:
                members.append(
                    plain_gd_member(f"error estimate {est0:.3g} >= handoff {delta:g} at t = 0")
                )
                continue
            if depth == 2:
                traj: Trajectory = SecondOrderMap(p_i, moments, lr)
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
                traj = SecondOrderFlow(p_i, moments, lr, flow_tolerances(tol), reached)
                # the run's snapshots are read as the hand-off search passes them
                reader = SnapshotReader(
                    snapshots, kept, loss=loss, measure=measure, peak=peak, holds=holds
                )
                traj.watch, reader.traj, readers[i] = reader, traj, reader
                t_star = float(sol.T_star)
                try:
                    k_h, state = flow_handoff(traj, sol, pred, lr, steps)
                except SolveFailed as err:
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
        snapshots,
        delta,
        loss=loss,
        peak=peak,
        holds=holds,
        keep=keep,
        measure=measure,
        readers=readers,
    )


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
        keep=train_kw.get("keep"),
        measure=train_kw.get("measure"),
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
    is beyond float64, e.g. a T* that overflowed,
    :func:`condensation.effective.predictions.predicted_t_star`).

    >>> auto_steps([2.0, None], 4.0, 0.5), auto_steps([math.inf], 1.0, 0.1)
    (24, inf)
    """
    known = [t for t in t_stars if t is not None and not math.isnan(t)]
    if not known or not z_norm > 0:
        return None
    steps = (AUTO_FACTOR * max(known) + AUTO_ROOM / z_norm) / lr
    return int(math.ceil(steps)) if math.isfinite(steps) else math.inf
