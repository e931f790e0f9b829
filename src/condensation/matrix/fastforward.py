"""Fast-forward for deep matrix factorisation (THEORY §6 and §9).

The effective dynamics of a factorisation is gradient ascent of
``<M_O, W_L ... W_1>`` (:func:`condensation.core.matrix.effective_field`); GD's
gradient differs from it by the measured part of the product, so the error
estimate at a state is ``|A(X)| / |A(M)|`` (completion: ``|P_Omega(X)|_F /
|M_O|_F``).  For depth >= 3 each member's GD-modified effective flow is
integrated (:mod:`condensation.training.fastforward`) up to the first step where that
estimate reaches ``delta`` (or the loss has fallen by the plateau drop), and GD
takes over there.  Depth 2 (linear, a plateau of order ``log(1/eps)``) runs
plain GD, and the plan says so.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from condensation.config.matrix import PLATEAU_EXIT
from condensation.core import matrix as cm
from condensation.core.final_stage import final_stage_holds
from condensation.effective.blowup import Tolerances, polar_problem, solve_polar_batch
from condensation.matrix.problems import Problem
from condensation.matrix.training import effective_field_args, top_singular_pair
from condensation.training import fastforward as ff
from condensation.training.engine import tracks


def _measured(problem: Problem, xs: np.ndarray) -> np.ndarray:
    """``|A(X)|`` for products ``xs`` (T, n1, n2), (T,)."""
    op0, op1 = problem.operator()
    if problem.kind == "completion":
        return np.linalg.norm(np.asarray(op1) * xs, axis=(-2, -1))
    a = np.asarray(op0)
    return np.linalg.norm(np.einsum("kij,tij->tk", a, xs), axis=-1)


def _products(ws) -> np.ndarray:
    x = ws[0]
    for w in ws[1:]:
        x = np.einsum("tij,tjk->tik", w, x)
    return x


def _loss(problem: Problem, xs: np.ndarray) -> np.ndarray:
    op0, op1 = (np.asarray(a) for a in problem.operator())
    if problem.kind == "completion":
        r = op1 * (xs - op0)
        return 0.5 * np.sum(r * r, axis=(-2, -1))
    r = np.einsum("kij,tij->tk", op0, xs) - op1
    return 0.5 * np.sum(r * r, axis=-1)


def plan(
    problem: Problem,
    params0,
    *,
    lr: float,
    steps: int,
    snapshots: np.ndarray,
    delta: float = ff.DEFAULT_HANDOFF,
    tol: Tolerances = Tolerances(),
) -> ff.Plan:
    """Every member's hand-off (see the module docstring)."""
    if not 0.0 < delta < 1.0:
        raise ValueError(f"delta must be in (0, 1), got {delta}")
    params0 = [np.asarray(p, dtype=np.float64) for p in params0]
    depth, e = len(params0), int(params0[0].shape[0])
    m_o = np.asarray(problem.m_obs, dtype=np.float64)
    scale = max(float(np.linalg.norm(_measured(problem, m_o[None]))), 1e-300)
    _, u1, v1 = top_singular_pair(m_o)
    members: list[ff.MemberPlan] = []
    trajs: list = [None] * e
    states: list = [None] * e
    if depth < 3:
        members = [
            ff.plain_gd_member(f"depth {depth}: no blow-up to fast-forward to; plain GD")
        ] * e
    else:
        probs = [
            polar_problem(
                effective_field_args,
                tuple(jnp.asarray(p[i]) for p in params0),
                depth - 1,
                jnp.asarray(m_o),
            )
            for i in range(e)
        ]
        sols = solve_polar_batch(probs, diag=None, tol=tol)
        for i in range(e):
            p_i = [p[i][None] for p in params0]
            loss0 = float(_loss(problem, _products(p_i))[0])

            def est(ws):
                return _measured(problem, _products(ws)) / scale

            def pred(ws, loss0=loss0):
                xs = _products(ws)
                out = _measured(problem, xs) / scale >= delta
                return out | (_loss(problem, xs) <= tracks.exit_level(loss0, PLATEAU_EXIT))

            sol = sols[i]
            if float(est(p_i)[0]) >= delta:
                members.append(ff.plain_gd_member(f"error estimate >= handoff {delta:g} at t = 0"))
                continue
            if not sol.blew_up:
                members.append(
                    ff.plain_gd_member(f"the effective dynamics does not blow up ({sol.status})")
                )
                continue
            traj = ff.Flow(probs[i], effective_field_args, jnp.asarray(m_o), list, sol, lr, tol)
            k_h, state = ff.flow_handoff(traj, sol, pred, lr, steps)
            e_h = float(est([w[None] for w in state])[0])
            trajs[i], states[i] = traj, state
            members.append(ff.MemberPlan(ff.FAST_FORWARD, None, k_h, k_h * lr, e_h, 0, sol.T_star))

    def holds(ws):
        out = []
        for t in range(ws[0].shape[0]):
            a, w, c = cm.reduced_triple([wk[t] for wk in ws], u1, v1)
            out.append(final_stage_holds(np.asarray(a), np.asarray(w), np.asarray(c), xp=np))
        return np.array(out)

    return ff.build_plan(
        members,
        trajs,
        states,
        params0,
        np.asarray(snapshots),
        delta,
        loss=lambda ws: _loss(problem, _products(ws)),
        holds=holds if depth == 3 else None,
    )
