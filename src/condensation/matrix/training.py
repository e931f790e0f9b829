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
from condensation.store.checkpoint import Checkpoint, chunk_steps, chunks
from condensation.training.devices import member_mesh, on_host, over_members, place_members
from condensation.training.network import Handoff, all_finite, snapshot_steps


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


def _make_interval(kind: str, lr: float, track_final_stage: bool):
    loss = _loss_fn(kind)

    def step(k, carry, op0, op1, u1, v1):
        params, loss0, esc_step, esc_w1, div_step, fs_step, exit_step, first = carry
        l, g = jax.value_and_grad(loss)(params, op0, op1)
        new = tuple(p - lr * gp for p, gp in zip(params, g))
        alive = (div_step < 0) & (k >= first)  # a fast-forwarded member starts at its hand-off
        ok = alive & jnp.isfinite(l) & all_finite(new)
        div_step = jnp.where(alive & ~ok, k, div_step)
        escaped_now = alive & (esc_step < 0) & (l <= 0.5 * loss0)
        esc_step = jnp.where(escaped_now, k, esc_step)
        esc_w1 = jnp.where(escaped_now, params[0], esc_w1)
        left = alive & (exit_step < 0) & (l <= (1.0 - PLATEAU_EXIT) * loss0)
        exit_step = jnp.where(left, k, exit_step)
        if track_final_stage:
            a, w, c = cm.reduced_triple(params, u1, v1)
            fs_step = jnp.where(alive & (fs_step < 0) & final_stage_holds(a, w, c), k, fs_step)
        params = tuple(jnp.where(ok, n, p) for n, p in zip(new, params))
        return params, loss0, esc_step, esc_w1, div_step, fs_step, exit_step, first

    def interval(carry, op0, op1, u1, v1, start, stop):
        return jax.lax.fori_loop(start, stop, partial(step, op0=op0, op1=op1, u1=u1, v1=v1), carry)

    return interval


@partial(jax.jit, static_argnames=("kind", "lr", "track_final_stage", "mesh"))
def _run_interval(carry, op0, op1, u1, v1, start, stop, *, kind, lr, track_final_stage, mesh):
    f = jax.vmap(
        _make_interval(kind, lr, track_final_stage), in_axes=(0, None, None, None, None, None, None)
    )
    return over_members(f, mesh, 6)(carry, op0, op1, u1, v1, start, stop)


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
    steps_k = snapshot_steps(steps, 60, 300) if snapshots is None else np.asarray(snapshots)
    if steps_k[0] != 0 or steps_k[-1] != steps or np.any(np.diff(steps_k) <= 0):
        raise ValueError("snapshot steps must increase strictly from 0 to steps")
    op0, op1 = (jnp.asarray(a, dt) for a in problem.operator())
    _, u1, v1 = top_singular_pair(problem.m_obs)
    u1j, v1j = jnp.asarray(u1, dt), jnp.asarray(v1, dt)
    mj, tmj = jnp.asarray(problem.m, dt), jnp.asarray(problem.test_mask, dt)
    n_members = int(np.shape(params0[0])[0])
    # rough: each factor entry takes part in products of length max(n1, n2), 3 times
    n_weights = sum(int(np.prod(np.shape(p)[1:])) for p in params0)
    flops = 6.0 * max(problem.shape) * n_weights * steps * n_members
    mesh = member_mesh(n_members, flops=flops)  # members spread over the devices (padded)
    params = place_members(tuple(jnp.asarray(p, dt) for p in params0), mesh)
    host = partial(on_host, n_members=n_members)

    meas = partial(_measure, kind=problem.kind)
    m0 = meas(params, op0, op1, mj, tmj, v1j)
    series = {k: [host(v)] for k, v in m0.items()}
    minus1 = jnp.full_like(m0["loss"], -1, dtype=jnp.int64)
    first, fs0 = jnp.zeros_like(minus1), minus1
    if handoff is not None:  # each member's GD starts at its hand-off; loss_0 stays
        params = place_members(tuple(jnp.asarray(p, dt) for p in handoff.params), mesh)
        first, fs0 = place_members(
            (jnp.asarray(handoff.step), jnp.asarray(handoff.final_stage_step)), mesh
        )
    carry = (params, m0["loss"], minus1, params[0], minus1, fs0, minus1, first)
    first_any = 0 if handoff is None else int(np.min(handoff.step))
    run = partial(
        _run_interval, kind=problem.kind, lr=float(lr), track_final_stage=depth == 3, mesh=mesh
    )
    first = 0
    if checkpoint is not None:
        first, carry = checkpoint.restore(carry, series)
        if first and progress is not None:
            progress(int(steps_k[first]))
    chunk = chunk_steps(flops / steps)
    for i, (start, stop) in enumerate(zip(steps_k[:-1], steps_k[1:])):
        if i < first:
            continue
        for a, b in chunks(max(start, first_any), max(stop, first_any), chunk):
            carry = run(carry, op0, op1, u1j, v1j, jnp.int64(a), jnp.int64(b))
            if b < stop:  # back in Python between chunks: a signal is handled here
                jax.block_until_ready(carry)
        now = carry[0]
        if handoff is not None and np.any(stop < handoff.step):  # before a hand-off
            rows, eff = place_members(
                (
                    jnp.asarray(stop < handoff.step),
                    tuple(jnp.asarray(s[:, i + 1], dt) for s in handoff.snapshots),
                ),
                mesh,
            )
            now = tuple(jnp.where(_rows(rows, p.ndim), e, p) for e, p in zip(eff, now))
        mk = meas(now, op0, op1, mj, tmj, v1j)
        for k, v in mk.items():
            series[k].append(host(v))
        if checkpoint is not None:
            checkpoint.save(i + 1, carry, series)
        if progress is not None:
            progress(int(stop))
    params, _, esc_step, esc_w1, div_step, fs_step, exit_step, _ = (
        tuple(host(p) for p in carry[0]),
        *(host(a) for a in carry[1:]),
    )
    series = {k: np.stack(v, axis=1).astype(float) for k, v in series.items()}
    # singular values on the host: LAPACK's values-only SVD is far cheaper than XLA's
    sv = finite_singular_values(series["x"])  # (E, K, min(n1, n2)); NaN where X overflowed
    series["singular_values"] = sv
    series["effective_rank"] = effective_rank_np(sv)
    series["nuclear_norm"] = sv.sum(axis=-1)
    esc_step, esc_w1 = esc_step.copy(), esc_w1.copy()
    div_step = np.asarray(div_step)
    late = (esc_step < 0) & (div_step < 0) & (series["loss"][:, -1] <= 0.5 * series["loss"][:, 0])
    esc_step[late] = steps
    esc_w1[late] = params[0][late]
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
        escape_step=esc_step,
        plateau_exit_step=np.asarray(exit_step),
        escape_w1=esc_w1.astype(float),
        diverged_step=div_step,
        final_stage_step=np.asarray(fs_step),
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
    by :func:`condensation.training.fastforward.log10_t_star`.
    """
    depth = len(factors)
    if depth < 3:
        raise ValueError(f"the effective dynamics blows up only for depth >= 3, got {depth}")
    y0 = tuple(jnp.asarray(w, jnp.float64) for w in factors)
    return _blowup(effective_field_args, y0, depth - 1, jnp.asarray(m_o, jnp.float64))


def _blowup(fld, y0, degree, args):
    """The project's blow-up integrator on ``y' = fld(y, args)``, homogeneous of
    ``degree``, with its times taken in log space where they would overflow
    (:func:`condensation.training.fastforward.solve_blowups`)."""
    from condensation.effective.blowup import polar_problem, solve_polar
    from condensation.effective.theory import LOG_UNIT_LIMIT
    from condensation.training.fastforward import solve_blowups

    prob = polar_problem(fld, y0, degree, args)
    if -(degree - 1) * prob.r0 <= LOG_UNIT_LIMIT:  # r0 = log |y0|: the time unit is finite
        return solve_polar(prob)  # = blowup(fld, y0, degree, args)
    return solve_blowups([prob])[0]
