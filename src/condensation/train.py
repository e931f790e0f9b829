"""Compiled full-batch gradient descent over ensembles of networks.

One jitted function runs all ensemble members (seeds x scales, vmapped) from
one snapshot step to the next with ``lax.fori_loop``; Python only stitches the
snapshot intervals together (and drives the progress bar).  Inside the loop,
at every step, it records:

- the escape step ``min{k : loss_k <= loss_0 / 2}`` and the parameters there;
- divergence (non-finite loss or parameters): that member is frozen at its last
  finite parameters and marked, the others run on untouched;
- for depth 3, the first step at which the final-stage condition holds.

Time conventions: ``loss_k = R(theta_k)``, ``theta_{k+1} = theta_k - lr grad R``,
``t = k * lr``.

Performance (``benchmarks/bench_train.py``): a step costs about three
(n x m) @ (m x m) products per hidden-to-hidden layer and little else.  The
loss is written with activations feature-major, (m_k, n), so the first layer's
products with the shared inputs need no transposes (autodiff then needs none
either); it equals :func:`condensation.core.network.loss` up to rounding.  The
bookkeeping runs once per step on the whole ensemble,
and recording escape parameters touches memory only in the step a member
escapes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from condensation.core.final_stage import final_stage_holds
from condensation.core.network import loss as loss_fn


def snapshot_steps(steps: int, n_log: int, n_linear: int) -> np.ndarray:
    """Sorted unique snapshot steps in [0, steps]: log-spaced plus equally spaced."""
    log = np.unique(np.round(np.geomspace(1, steps, n_log)).astype(np.int64))
    lin = np.round(np.linspace(0, steps, n_linear + 1)).astype(np.int64) if n_linear else []
    return np.unique(np.concatenate([[0, steps], log, lin]))


@dataclass(frozen=True)
class TrainResult:
    """Everything a GD run recorded, as numpy arrays with a leading member axis."""

    lr: float
    steps: int
    snapshot_steps: np.ndarray  # (K,)
    snapshots: list[np.ndarray]  # W_k of shape (E, K, *shape_k)
    snapshot_loss: np.ndarray  # (E, K)
    escape_step: np.ndarray  # (E,) int, -1 if never
    escape_params: list[np.ndarray]  # W_k at escape_step (initial params if never)
    diverged_step: np.ndarray  # (E,) first step with a non-finite update, -1 if none
    final_stage_step: np.ndarray  # (E,) first step in the final-stage set, -1 if never / n.a.

    @property
    def snapshot_times(self) -> np.ndarray:
        return self.snapshot_steps * self.lr

    @property
    def loss_initial(self) -> np.ndarray:
        return self.snapshot_loss[:, 0]

    @property
    def loss_final(self) -> np.ndarray:
        return self.snapshot_loss[:, -1]

    @property
    def escape_time(self) -> np.ndarray:
        """``escape_step * lr``; NaN where the member never escaped."""
        return np.where(self.escape_step >= 0, self.escape_step * self.lr, np.nan)


def _feature_major_loss(params, x, y, act: Callable):
    """``R`` of one network with activations kept feature-major: ``h_k^T`` of shape
    (m_k, n), ``h_0^T = x^T``, so the first layer's products with the shared inputs
    need no transposes.  Same value as :func:`condensation.core.network.loss`."""
    h = x.T
    for w in params[:-1]:
        h = act(w @ h)  # (m_k, n)
    r = (params[-1] @ h)[0] - y
    return 0.5 * jnp.mean(r * r)


_loss_and_grad = jax.value_and_grad(_feature_major_loss)


def _rows(mask, p):
    """A per-member mask broadcast against ``p`` (E, ...)."""
    return mask.reshape(mask.shape + (1,) * (p.ndim - 1))


def _member_all_finite(tree) -> jnp.ndarray:
    """(E,) True where every entry of the member's arrays is finite."""
    out = None
    for p in tree:
        ok = jnp.all(jnp.isfinite(p), axis=tuple(range(1, p.ndim)))
        out = ok if out is None else out & ok
    return out


def _copy_rows(dst, src, mask):
    """``dst[i] = src[i]`` for the members with ``mask[i]``: in-place row updates,
    a loop of zero trips (no memory traffic) in the steps where no member is set."""
    order = jnp.argsort(~mask, stable=True)  # masked members first

    def body(j, d):
        i = order[j]
        return tuple(jax.lax.dynamic_update_index_in_dim(a, b[i], i, 0) for a, b in zip(d, src))

    return jax.lax.fori_loop(0, jnp.sum(mask), body, dst)


def _make_interval(act: Callable, lr: float, track_final_stage: bool):
    """The ensemble interval runner ``(carry, x, y, z, start, stop) -> carry``."""
    loss_and_grad = jax.vmap(partial(_loss_and_grad, act=act), in_axes=(0, None, None))

    def step(k, carry, x, y, z):
        params, loss0, esc_step, esc_params, div_step, fs_step = carry
        l, g = loss_and_grad(params, x, y)
        new = tuple(p - lr * gp for p, gp in zip(params, g))
        alive = div_step < 0
        ok = alive & jnp.isfinite(l) & _member_all_finite(new)
        div_step = jnp.where(alive & ~ok, k, div_step)
        escaped_now = alive & (esc_step < 0) & (l <= 0.5 * loss0)
        esc_step = jnp.where(escaped_now, k, esc_step)
        esc_params = _copy_rows(esc_params, params, escaped_now)
        if track_final_stage:
            inside = jax.vmap(lambda b, w, a: final_stage_holds(a[0], w, b @ z))(*params)
            fs_step = jnp.where(alive & (fs_step < 0) & inside, k, fs_step)
        params = tuple(jnp.where(_rows(ok, n), n, p) for n, p in zip(new, params))
        return params, loss0, esc_step, esc_params, div_step, fs_step

    def interval(carry, x, y, z, start, stop):
        return jax.lax.fori_loop(start, stop, partial(step, x=x, y=y, z=z), carry)

    return interval


@partial(jax.jit, static_argnames=("act", "lr", "track_final_stage"))
def _run_interval(carry, x, y, z, start, stop, *, act, lr, track_final_stage):
    return _make_interval(act, lr, track_final_stage)(carry, x, y, z, start, stop)


@partial(jax.jit, static_argnames=("act",))
def _losses(params, x, y, *, act):
    return jax.vmap(lambda p: loss_fn(p, x, y, act))(params)


def train(
    params0: Sequence[np.ndarray],
    x: np.ndarray,
    y: np.ndarray,
    *,
    act: Callable,
    lr: float,
    steps: int,
    snapshots: np.ndarray | None = None,
    dtype: str = "float64",
    track_final_stage: bool | None = None,
    progress: Callable[[int], None] | None = None,
) -> TrainResult:
    """Full-batch GD for every ensemble member of ``params0`` (W_k of shape (E, ...)).

    ``snapshots``: steps at which all parameters are stored (default: 60
    log-spaced and 200 equally spaced).  ``progress(step)`` is called after each
    snapshot interval.  ``track_final_stage`` (default: depth == 3) checks the
    final-stage condition at every step; it costs one (m1 x m1) Gram matrix per
    step.
    """
    dt = jnp.float64 if dtype == "float64" else jnp.float32
    depth = len(params0)
    if track_final_stage is None:
        track_final_stage = depth == 3
    if track_final_stage and depth != 3:
        raise ValueError(f"the final-stage condition is defined for depth 3, got depth {depth}")
    steps_k = snapshot_steps(steps, 60, 200) if snapshots is None else np.asarray(snapshots)
    if steps_k[0] != 0 or steps_k[-1] != steps or np.any(np.diff(steps_k) <= 0):
        raise ValueError("snapshot steps must increase strictly from 0 to steps")
    xj, yj = jnp.asarray(x, dt), jnp.asarray(y, dt)
    zj = (yj @ xj) / xj.shape[0]
    params = tuple(jnp.asarray(p, dt) for p in params0)
    n_members = params[0].shape[0]
    loss0 = _losses(params, xj, yj, act=act)
    minus1 = -jnp.ones(n_members, dtype=jnp.int64)
    carry = (params, loss0, minus1, params, minus1, minus1)
    snaps = [[np.asarray(p)] for p in params]
    snap_loss = [np.asarray(loss0)]
    run = partial(_run_interval, act=act, lr=float(lr), track_final_stage=bool(track_final_stage))
    for start, stop in zip(steps_k[:-1], steps_k[1:]):
        carry = run(carry, xj, yj, zj, jnp.int64(start), jnp.int64(stop))
        lk = _losses(carry[0], xj, yj, act=act)
        for k, p in enumerate(carry[0]):
            snaps[k].append(np.asarray(p))
        snap_loss.append(np.asarray(lk))
        if progress is not None:
            progress(int(stop))
    params, _, esc_step, esc_params, div_step, fs_step = carry
    # escape_step ranges over k = 0..steps; the loop saw 0..steps-1, so check loss_steps.
    esc_step = np.asarray(esc_step).copy()
    esc_params = [np.asarray(p).copy() for p in esc_params]
    div_step = np.asarray(div_step)
    last = np.asarray(snap_loss[-1])
    late = (esc_step < 0) & (div_step < 0) & (last <= 0.5 * np.asarray(loss0))
    esc_step[late] = steps
    for k in range(depth):
        esc_params[k][late] = np.asarray(params[k])[late]
    return TrainResult(
        lr=float(lr),
        steps=int(steps),
        snapshot_steps=steps_k,
        snapshots=[np.stack(s, axis=1) for s in snaps],
        snapshot_loss=np.stack(snap_loss, axis=1),
        escape_step=esc_step,
        escape_params=esc_params,
        diverged_step=div_step,
        final_stage_step=np.asarray(fs_step),
    )
