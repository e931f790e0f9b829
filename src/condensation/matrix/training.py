"""Initialisation, compiled ensembled GD on the factorisation, measurements, effective T*."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from condensation.config.matrix import ALIGNED, PLATEAU_EXIT, MatrixConfig
from condensation.core import matrix as cm
from condensation.core.final_stage import final_stage_holds
from condensation.matrix.problems import Problem, effective_rank_np, haar_columns
from condensation.store.checkpoint import Checkpoint
from condensation.training.devices import place_members
from condensation.training.engine import (
    VMAP,
    Handoff,
    Member,
    Model,
    before_handoff,
    check_snapshot_steps,
    drive,
    layout,
    snapshot_steps,
    start_from,
    tracks,
)


# ---- initialisation ------------------------------------------------------------------
def factor_shapes(n1: int, n2: int, depth: int, width: int) -> list[tuple[int, int]]:
    """Shapes of ``W1 .. WL``: (h, n2), (h, h), ..., (n1, h); depth 1: [(n1, n2)]."""
    dims = [n2] + [width] * (depth - 1) + [n1]
    return [(dims[k + 1], dims[k]) for k in range(depth)]


def init_factors(
    shapes: list[tuple[int, int]], scheme: str, eps: float, seed: int
) -> list[np.ndarray]:
    """One member's initial factors (float64); see :class:`MatrixInitConfig`."""
    rng = np.random.default_rng(seed)
    if scheme == "gaussian":
        return [eps * rng.standard_normal(s) for s in shapes]
    if scheme == "identity":
        return [eps * np.eye(*s) for s in shapes]
    # balanced: W1 = c O1 V^T, Wk = c Ok O_{k-1}^T, WL = c U O_{L-1}^T, all partial isometries
    depth = len(shapes)
    n1, n2 = shapes[-1][0], shapes[0][1]
    h = shapes[0][0] if depth > 1 else max(n1, n2)
    r0 = min(n1, n2, h)
    c = eps * math.sqrt(h)
    frames = [haar_columns(n2, r0, rng)]  # V, O1, ..., O_{L-1}, U
    frames += [haar_columns(h, r0, rng) for _ in range(depth - 1)]
    frames.append(haar_columns(n1, r0, rng))
    return [c * frames[k + 1] @ frames[k].T for k in range(depth)]


@dataclass(frozen=True)
class MatrixEnsemble:
    params: tuple[np.ndarray, ...]  # W_k stacked over members, (E, *shape_k)
    seeds: list[int]
    scales: list[float]

    @property
    def size(self) -> int:
        return len(self.seeds)


def init_ensemble(cfg: MatrixConfig, shape: tuple[int, int]) -> MatrixEnsemble:
    n1, n2 = shape
    width = cfg.model.width if cfg.model.width is not None else max(n1, n2)
    shapes = factor_shapes(n1, n2, cfg.model.depth, width)
    members = cfg.member_seeds_scales
    per = [init_factors(shapes, cfg.init.scheme, eps, s) for s, eps in members]
    params = tuple(np.stack([p[k] for p in per]) for k in range(len(shapes)))
    return MatrixEnsemble(params, [s for s, _ in members], [e for _, e in members])


# ---- compiled training ---------------------------------------------------------------
def _loss_fn(kind: str):
    return cm.completion_loss if kind == "completion" else cm.sensing_loss


@dataclass(frozen=True)
class MatrixModel(Model):
    """The factorisation's plug-in of the engine: full-batch GD on ``1/2 |A(X) - y|^2``;
    shared arrays ``(op0, op1, u1, v1)``.  The members run in lockstep
    (:data:`~condensation.training.engine.VMAP`: small factors); the escape keeps
    ``W1``; the depth-3 watch is the final-stage entry of the triple
    ``(W3^T u1, W2, W1 v1)``."""

    kind: str
    lr: float
    track_final_stage: bool

    members = VMAP
    keep_exit = False

    def update(self, k, params, aux, shared):
        op0, op1, _, _ = shared
        loss, g = jax.value_and_grad(_loss_fn(self.kind))(params, op0, op1)
        return loss, tuple(-(self.lr * gp) for gp in g), aux, aux  # p - lr g, bit for bit

    def keep(self, params):
        return params[0]

    def watch(self, k, params, fs_step, shared, alive):
        if not self.track_final_stage:
            return fs_step
        a, w, c = cm.reduced_triple(params, shared[2], shared[3])
        return jnp.where(alive & (fs_step < 0) & final_stage_holds(a, w, c), k, fs_step)


@partial(jax.jit, static_argnames=("kind",))
def _measure(params, op0, op1, m, test_mask, v1, *, kind):
    """Per-member measurements of one snapshot (vmapped over members)."""
    loss = _loss_fn(kind)
    n_test = jnp.maximum(jnp.sum(test_mask), 1.0)

    def one(p):
        x = cm.product(p)
        err = x - m
        cos = cm.row_alignment(p[0], v1)
        return {
            "loss": loss(p, op0, op1),
            "x": x,
            "test_rmse": jnp.sqrt(jnp.sum(test_mask * err * err) / n_test),
            "rel_fro_error": jnp.linalg.norm(err) / jnp.linalg.norm(m),
            "median_abs_cos_v1": jnp.median(cos),
            "frac_abs_cos_v1_above_0_95": jnp.mean(cos > ALIGNED),
        }

    return jax.vmap(one)(params)


@dataclass(frozen=True)
class FactorisationResult:
    """A GD run over an ensemble; arrays have a leading member axis (E)."""

    lr: float
    steps: int
    snapshot_steps: np.ndarray  # (K,)
    series: dict[str, np.ndarray]  # name -> (E, K, ...): loss, x, singular_values, ...
    tracked_singular_values: np.ndarray  # (E, K, r): u_k(T)^T X(t) v_k(T)
    final_params: list[np.ndarray]  # W_k (E, *shape_k)
    escape_step: np.ndarray  # (E,) first step with loss <= loss_0 / 2, -1 if never
    plateau_exit_step: np.ndarray  # (E,) first step with loss <= (1 - PLATEAU_EXIT) loss_0
    escape_w1: np.ndarray  # (E, h, n2) W1 at the escape step
    diverged_step: np.ndarray  # (E,) -1 if none
    final_stage_step: np.ndarray  # (E,) depth 3: first step in the final-stage set, -1 otherwise

    @property
    def snapshot_times(self) -> np.ndarray:
        return self.snapshot_steps * self.lr

    @property
    def escape_time(self) -> np.ndarray:
        return np.where(self.escape_step >= 0, self.escape_step * self.lr, np.nan)


def top_singular_pair(m_obs: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """``(s1, u1, v1)`` of ``M_O``."""
    u, s, vt = np.linalg.svd(m_obs)
    return float(s[0]), u[:, 0], vt[0]


def train_factorisation(
    problem: Problem,
    params0,
    *,
    lr: float,
    steps: int,
    snapshots: np.ndarray | None = None,
    dtype: str = "float64",
    progress: Callable[[int], None] | None = None,
    checkpoint: Checkpoint | None = None,
    handoff: Handoff | None = None,
) -> FactorisationResult:
    """Full-batch GD on ``1/2 |A(X) - y|^2`` for every member of ``params0``.

    The escape step, divergence and (depth 3) the final-stage entry of the
    triple ``(W3^T u1, W2, W1 v1)`` are checked at every step inside the
    compiled loop; everything else is measured at the ``snapshots`` steps
    (default: 60 log-spaced and 300 equally spaced).  ``checkpoint`` saves and
    resumes the loop as in :func:`condensation.training.network.train`.  ``handoff``
    (:class:`~condensation.training.network.Handoff`, from
    :func:`condensation.matrix.fastforward.plan`):
    each member's GD starts at its hand-off step; snapshots before it are measured
    on the effective trajectory.
    """
    dt = jnp.float64 if dtype == "float64" else jnp.float32
    depth = len(params0)
    steps_k = snapshot_steps(steps, 60, 300) if snapshots is None else snapshots
    steps_k = check_snapshot_steps(steps_k, steps)
    op0, op1 = (jnp.asarray(a, dt) for a in problem.operator())
    _, u1, v1 = top_singular_pair(problem.m_obs)
    u1j, v1j = jnp.asarray(u1, dt), jnp.asarray(v1, dt)
    mj, tmj = jnp.asarray(problem.m, dt), jnp.asarray(problem.test_mask, dt)
    n_members = int(np.shape(params0[0])[0])
    # rough: each factor entry takes part in products of length max(n1, n2), 3 times
    n_weights = sum(int(np.prod(np.shape(p)[1:])) for p in params0)
    flops = 6.0 * max(problem.shape) * n_weights * steps * n_members
    # members spread over the devices (padded)
    mesh, chunk, host = layout(n_members, flops=flops, chunk_flops=flops / steps)
    params = place_members(tuple(jnp.asarray(p, dt) for p in params0), mesh)

    meas = partial(_measure, kind=problem.kind)
    m0 = meas(params, op0, op1, mj, tmj, v1j)
    series = {k: [host(v)] for k, v in m0.items()}
    # each member's GD starts at its hand-off (if any); loss_0 stays
    params, first, fs0, _, _ = start_from(handoff, params, m0["loss"], mesh, dt)
    model = MatrixModel(problem.kind, float(lr), depth == 3)
    track = tracks.start(
        m0["loss"], model.keep(params), plateau_drop=PLATEAU_EXIT, keep_exit=model.keep_exit
    )

    def snapshot(j: int, carry) -> None:
        now = carry.params
        rows = before_handoff(handoff, steps_k[j])
        if rows is not None and rows.any():  # the effective trajectory's state before a hand-off
            rows, eff = place_members(
                (jnp.asarray(rows), tuple(jnp.asarray(s[:, j], dt) for s in handoff.snapshots)),
                mesh,
            )
            now = tuple(jnp.where(_rows(rows, p.ndim), e, p) for e, p in zip(eff, now))
        for k, v in meas(now, op0, op1, mj, tmj, v1j).items():
            series[k].append(host(v))

    carry = drive(
        model,
        Member(params, (), fs0, track, first),
        (op0, op1, u1j, v1j),
        steps_k,
        mesh=mesh,
        chunk=chunk,
        records=series,
        snapshot=snapshot,
        checkpoint=checkpoint,
        progress=progress,
        gd_from=0 if handoff is None else int(np.min(handoff.step)),
    )
    params = tuple(host(p) for p in carry.params)
    series = {k: np.stack(v, axis=1).astype(float) for k, v in series.items()}
    # singular values on the host: LAPACK's values-only SVD is far cheaper than XLA's
    sv = finite_singular_values(series["x"])  # (E, K, min(n1, n2)); NaN where X overflowed
    series["singular_values"] = sv
    series["effective_rank"] = effective_rank_np(sv)
    series["nuclear_norm"] = sv.sum(axis=-1)
    done = tracks.finish(
        carry.track, params[0], series["loss"][:, 0], series["loss"][:, -1], steps, host=host
    )
    # singular values in identity: project every snapshot on the final singular vectors
    tracked = []
    for e in range(n_members):
        x_e = series["x"][e]
        if not np.all(np.isfinite(x_e[-1])):  # a diverged member: nothing to track
            tracked.append(np.full((x_e.shape[0], min(x_e.shape[1:])), np.nan))
            continue
        u, _, vt = np.linalg.svd(x_e[-1], full_matrices=False)
        with np.errstate(over="ignore", invalid="ignore"):
            tracked.append(np.einsum("ik,tij,jk->tk", u, x_e, vt.T))
    return FactorisationResult(
        lr=float(lr),
        steps=int(steps),
        snapshot_steps=steps_k,
        series=series,
        tracked_singular_values=np.stack(tracked),
        final_params=[np.asarray(p, dtype=float) for p in params],
        escape_step=done["escape_step"],
        plateau_exit_step=done["exit_step"],
        escape_w1=done["escape_state"].astype(float),
        diverged_step=done["diverged_step"],
        final_stage_step=host(carry.watch),
    )


def _rows(rows, ndim: int):
    """(E,) member mask broadcast against an (E, ...) array of ``ndim`` axes."""
    return rows.reshape(rows.shape + (1,) * (ndim - 1))


# ---- post-hoc measurements -----------------------------------------------------------
def finite_singular_values(x: np.ndarray) -> np.ndarray:
    """Singular values over the last two axes of ``x`` (..., n1, n2); NaN for every
    matrix with a non-finite entry (a diverged member's overflowed product), whose
    SVD would not converge."""
    finite = np.all(np.isfinite(x), axis=(-2, -1))
    sv = np.full((*x.shape[:-2], min(x.shape[-2:])), np.nan)
    if finite.any():
        sv[finite] = np.linalg.svd(x[finite], compute_uv=False)
    return sv


def half_times(times: np.ndarray, tracked: np.ndarray) -> np.ndarray:
    """First time each tracked singular value reaches half its final value, (r,).

    ``tracked`` is (K, r); linear interpolation between snapshots; NaN where the
    final value is not positive.
    """
    out = np.full(tracked.shape[1], np.nan)
    for k in range(tracked.shape[1]):
        s = tracked[:, k]
        target = 0.5 * s[-1]
        if not s[-1] > 0:
            continue
        j = int(np.argmax(s >= target))
        if j == 0:
            out[k] = times[0]
            continue
        s0, s1 = s[j - 1], s[j]
        out[k] = times[j - 1] + (target - s0) / (s1 - s0) * (times[j] - times[j - 1])
    return out


def row_alignment_np(rows: np.ndarray, v: np.ndarray) -> np.ndarray:
    """``|cos(row_j, v)|`` for the rows of ``rows`` (m, d) and a unit vector ``v`` (numpy)."""
    nr = np.linalg.norm(rows, axis=-1)
    return np.abs(rows @ v) / np.where(nr > 0, nr, 1.0)


def longest_stretch_below(times: np.ndarray, values: np.ndarray, level: float):
    """Longest run of consecutive snapshots with ``values < level``: (t_start, t_end) or None."""
    best, start = None, None
    below = np.append(values < level, False)
    for j, b in enumerate(below):
        if b and start is None:
            start = j
        elif not b and start is not None:
            if best is None or times[j - 1] - times[start] > best[1] - best[0]:
                best = (float(times[start]), float(times[j - 1]))
            start = None
    return best


def effective_field_args(factors, m_o):
    return cm.effective_field(factors, m_o)


def effective_blowup(factors, m_o):
    """Integrate the effective dynamics ``W' = grad <M_O, W_L..W_1>`` through its blow-up.

    ``factors`` ``(W1, ..., WL)`` with L >= 3 (the field has degree L - 1 >= 2);
    returns the integrator's result (``.blew_up``, ``.T_star``,
    ``.T_star_rel_error``), in the GD time ``t = step * lr``; ``T_star`` is ``inf``
    where it is beyond float64 (a deep factorisation at a tiny init), its log10 given
    by :func:`condensation.effective.predictions.log10_t_star`.
    """
    depth = len(factors)
    if depth < 3:
        raise ValueError(f"the effective dynamics blows up only for depth >= 3, got {depth}")
    y0 = tuple(jnp.asarray(w, jnp.float64) for w in factors)
    return _blowup(effective_field_args, y0, depth - 1, jnp.asarray(m_o, jnp.float64))


def _blowup(fld, y0, degree, args):
    """The project's blow-up integrator on ``y' = fld(y, args)``, homogeneous of
    ``degree``, with its times taken in log space where they would overflow
    (:func:`condensation.effective.predictions.solve_blowups`)."""
    from condensation.effective.blowup import polar_problem, solve_polar
    from condensation.effective.predictions import solve_blowups
    from condensation.effective.theory import LOG_UNIT_LIMIT

    prob = polar_problem(fld, y0, degree, args)
    if -(degree - 1) * prob.r0 <= LOG_UNIT_LIMIT:  # r0 = log |y0|: the time unit is finite
        return solve_polar(prob)  # = blowup(fld, y0, degree, args)
    return solve_blowups([prob])[0]
