"""Compiled training over ensembles of networks: full-batch GD, SGD, momentum, Adam.

One jitted call runs all ensemble members (seeds x scales) from one snapshot
step to the next; Python only stitches the snapshot intervals together (and
drives the progress bar).  Inside the call, at every step, it records:

- the escape step ``min{k : loss_k <= loss_0 / 2}`` and the parameters there;
- divergence (non-finite loss or parameters): that member is frozen at its last
  finite parameters, marked, and stops computing; the others run on untouched;
- for depth 3, the first step at which the final-stage condition holds;
- the plateau exit ``min{k : loss_k <= (1 - plateau_drop) loss_0}`` and the
  parameters there, and the running peak of the median ``|cos(b_j, z)|`` over
  the first-layer rows with its step (:class:`PlateauTrack`, the last element
  of the loop's carry).

Time conventions: ``loss_k = R(theta_k)``, ``theta_{k+1} = theta_k - lr grad R``,
``t = k * lr``.

The update is an optax ``GradientTransformation`` (:mod:`condensation.training.optimizers`):
``gd`` (the default) is ``theta + (-lr) g``, bit for bit the plain GD step; ``sgd``,
``momentum`` and ``adam`` carry their optax state and, for mini-batches, the
epoch's sample permutation in one extra element of the loop carry
(:class:`OptCarry`).  ``loss_k``, the escape step and the final-stage check are
always those of the full-batch loss.

Layout, chosen by measurement (``benchmarks/bench_train.py``):

- The members are spread over the JAX devices, one per CPU core by default (see
  :mod:`condensation._jax_setup`), with ``shard_map``: XLA runs a program on one
  core, so this is what puts every core to work.  The ensemble is padded with
  copies of member 0 to a whole number per device; the copies are dropped.
- Each device runs its members one after another (``lax.map``), each through
  the whole interval in a ``while_loop``.  A member's weights and activations
  (about 0.4 MB at widths 100/100 in float64) then stay in the core's cache for
  the whole interval; a vmapped step over all members streams each operation
  through every member's arrays and ran 1.5x slower.
- A step costs about three (n x m) @ (m x m) products per hidden-to-hidden
  layer and little else.  The loss is written with activations feature-major,
  (m_k, n), so the first layer's products with the shared inputs need no
  transposes (autodiff then needs none either); it equals
  :func:`condensation.core.network.loss` up to rounding.  Recording the escape
  parameters is a branch taken in one step only.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from condensation.core.alignment import median_abs_cos
from condensation.core.final_stage import final_stage_holds
from condensation.core.metrics import abs_cos_to
from condensation.core.network import loss as loss_fn
from condensation.store.checkpoint import Checkpoint, chunk_steps, chunks
from condensation.training.devices import member_mesh, on_host, over_members, place_members
from condensation.training.optimizers import Optimizer, epoch_permutation

GD = Optimizer()
_NOT_KEPT = np.zeros(0)  # the record of a snapshot a layer does not keep


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
    plateau_drop: float = 0.1
    plateau_exit_step: np.ndarray | None = None  # (E,) first loss_k <= (1-drop) loss_0, -1 never
    plateau_exit_params: list[np.ndarray] | None = None  # W_k there (initial params if never)
    peak_median_abs_cos: np.ndarray | None = None  # (E,) max over steps of median |cos(b_j,z)|
    peak_median_abs_cos_step: np.ndarray | None = None  # (E,) the (first) step of that max
    # per layer, the indices into snapshot_steps of the stored snapshots (None: all)
    snapshot_index: list[np.ndarray | None] | None = None
    measures: dict[str, np.ndarray] | None = None  # measure(params) at every snapshot (E, K, ...)

    def layer_steps(self, k: int) -> np.ndarray:
        """The steps of the stored snapshots of layer ``k`` (0-based): axis 1 of
        ``snapshots[k]``."""
        idx = None if self.snapshot_index is None else self.snapshot_index[k]
        return self.snapshot_steps if idx is None else self.snapshot_steps[idx]

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

    @property
    def plateau_exit_time(self) -> np.ndarray:
        """``plateau_exit_step * lr``; NaN where the loss never fell by ``plateau_drop``."""
        return np.where(self.plateau_exit_step >= 0, self.plateau_exit_step * self.lr, np.nan)


def feature_major_loss(params, x, y, act: Callable):
    """``R`` of one network with activations kept feature-major: ``h_k^T`` of shape
    (m_k, n), ``h_0^T = x^T``, so the first layer's products with the shared inputs
    need no transposes.  Same value as :func:`condensation.core.network.loss`."""
    h = x.T
    for w in params[:-1]:
        h = act(w @ h)  # (m_k, n)
    r = (params[-1] @ h)[0] - y
    return 0.5 * jnp.mean(r * r)


_loss_and_grad = jax.value_and_grad(feature_major_loss)
_grad = jax.grad(feature_major_loss)


def weighted_batch_loss(params, x, y, weights, act: Callable):
    """``(0.5 sum_i weights_i r_i^2, R)``: a mini-batch loss (weights 1/b on the
    batch, 0 elsewhere) and, from the same forward pass, the full-batch loss."""
    h = x.T
    for w in params[:-1]:
        h = act(w @ h)  # (m_k, n)
    r = (params[-1] @ h)[0] - y
    return 0.5 * jnp.sum(weights * r * r), 0.5 * jnp.mean(r * r)


_weighted_grad = jax.grad(weighted_batch_loss, has_aux=True)


class OptCarry(NamedTuple):
    """The optimizer's part of one member's loop state (every leaf has the member
    axis in the ensemble carry)."""

    state: Any  # optax state (empty for gd and sgd)
    stream: jnp.ndarray  # () int: the member's mini-batch stream
    perm: jnp.ndarray  # (n,) int: this epoch's sample permutation; (0,) for full batch


def all_finite(arrays) -> jnp.ndarray:
    """True where every entry of every array is finite."""
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(a)) for a in arrays]))


class Handoff(NamedTuple):
    """Where each member's GD starts when it does not start at step 0 (built by
    :mod:`condensation.training.fastforward`): the loop begins member ``e`` at ``step[e]``
    from ``params``; snapshots before that step are taken from ``snapshots``.
    Every array has the member axis first."""

    step: np.ndarray  # (E,) int: first GD step (0: plain GD from params0)
    params: tuple  # W_k (E, *shape_k) at that step
    snapshots: list[np.ndarray]  # W_k (E, K, *shape_k) at the snapshot steps (used before step)
    final_stage_step: np.ndarray  # (E,) entry into the final-stage set before step, -1 if none
    peak: np.ndarray  # (E,) max median |cos(b_j, z)| before step (-1: none)
    peak_step: np.ndarray  # (E,) its step
    snapshot_loss: np.ndarray  # (E, K) the loss of ``snapshots`` (used before step)


class PlateauTrack(NamedTuple):
    """Per-member loop state of the plateau exit and the peak alignment."""

    level: jnp.ndarray  # (1 - plateau_drop) * loss_0
    step: jnp.ndarray  # first step with loss <= level, -1 until then
    params: tuple  # the parameters at that step
    peak: jnp.ndarray  # running max of the median |cos(b_j, z)|
    peak_step: jnp.ndarray  # step of that max


def _track_plateau(track: PlateauTrack, k, loss, params, z) -> PlateauTrack:
    """Update the plateau exit and the peak alignment with step ``k``'s state."""
    exited_now = (track.step < 0) & (loss <= track.level)
    cos = median_abs_cos(params[0], z)
    higher = cos > track.peak
    return PlateauTrack(
        level=track.level,
        step=jnp.where(exited_now, k, track.step),
        # a real branch: the copy happens in the one step the loss crosses the level
        params=jax.lax.cond(exited_now, lambda: params, lambda: track.params),
        peak=jnp.where(higher, cos, track.peak),
        peak_step=jnp.where(higher, k, track.peak_step),
    )


def _make_member_interval(act: Callable, lr: float, track_final_stage: bool, opt: Optimizer):
    """One member's runner ``(state, x, y, z, start, stop) -> state``: steps
    ``start .. stop-1`` back to back, so the member's weights and activations stay
    in cache for the whole interval.  A diverged member stops at once."""
    tx = opt.transform(lr)

    def gradient(k, params, o: OptCarry, x, y):
        """Full-batch loss at ``params`` and the gradient the update uses."""
        if not opt.minibatch:
            loss, g = _loss_and_grad(params, x, y, act=act)
            return loss, g, o
        n, b = x.shape[0], opt.batch_size
        pos = k % (n // b)
        perm = jax.lax.cond(
            pos == 0,
            lambda: epoch_permutation(opt, n, o.stream, k // (n // b)).astype(o.perm.dtype),
            lambda: o.perm,
        )
        idx = jax.lax.dynamic_slice(perm, (pos * b,), (b,))
        if 3 * b > 2 * n:  # one pass over all n, the off-batch samples weighted 0
            w = jnp.zeros(n, x.dtype).at[idx].set(1.0 / b)
            g, loss = _weighted_grad(params, x, y, w, act=act)
        else:  # the full-batch loss_k (2 n flops per weight) and the batch's gradient (6 b)
            loss = feature_major_loss(params, x, y, act)
            g = _grad(params, x[idx], y[idx], act=act)
        return loss, g, o._replace(perm=perm)

    def step(carry, x, y, z):
        k, params, loss0, esc_step, esc_params, div_step, fs_step, opt_c, plateau = carry
        loss, g, opt_c = gradient(k, params, opt_c, x, y)
        updates, opt_state = tx.update(g, opt_c.state, params)
        new = optax.apply_updates(params, updates)
        ok = jnp.isfinite(loss) & all_finite(new)
        div_step = jnp.where(ok, div_step, k)
        escaped_now = (esc_step < 0) & (loss <= 0.5 * loss0)
        esc_step = jnp.where(escaped_now, k, esc_step)
        # a real branch: the copy happens in the one step the member escapes
        esc_params = jax.lax.cond(escaped_now, lambda: params, lambda: esc_params)
        if track_final_stage:  # checked until the member first enters
            b, w, a = params
            outside = fs_step < 0  # (returned as the False of the other branch)
            inside = jax.lax.cond(
                outside, lambda: final_stage_holds(a[0], w, b @ z), lambda: outside
            )
            fs_step = jnp.where(inside, k, fs_step)
        plateau = _track_plateau(plateau, k, loss, params, z)
        params, state = jax.lax.cond(ok, lambda: (new, opt_state), lambda: (params, opt_c.state))
        opt_c = opt_c._replace(state=state)
        return k + 1, params, loss0, esc_step, esc_params, div_step, fs_step, opt_c, plateau

    def interval(state, x, y, z, start, stop):
        def running(carry):
            return (carry[0] < stop) & (carry[5] < 0)

        # the last element of the state is the member's first GD step (its hand-off)
        *inner, first = state
        k0 = jnp.maximum(start, first)
        carry = jax.lax.while_loop(running, partial(step, x=x, y=y, z=z), (k0, *inner))
        return (*carry[1:], first)

    return interval


def _make_interval(act: Callable, lr: float, track_final_stage: bool, opt: Optimizer = GD):
    """The ensemble runner ``(carry, x, y, z, start, stop) -> carry``: the members
    one after another, each for the whole interval."""
    member = _make_member_interval(act, lr, track_final_stage, opt)

    def interval(carry, x, y, z, start, stop):
        return jax.lax.map(lambda state: member(state, x, y, z, start, stop), carry)

    return interval


@partial(jax.jit, static_argnames=("act", "lr", "track_final_stage", "mesh", "opt"))
def _run_interval(carry, x, y, z, start, stop, *, act, lr, track_final_stage, mesh, opt=GD):
    interval = _make_interval(act, lr, track_final_stage, opt)
    # random.permutation does not declare its values as varying over devices
    return over_members(interval, mesh, 5, typed=not opt.minibatch)(carry, x, y, z, start, stop)


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
    plateau_drop: float = 0.1,
    progress: Callable[[int], None] | None = None,
    checkpoint: Checkpoint | None = None,
    optimizer: Optimizer | None = None,
    streams: Sequence[int] | None = None,
    handoff: Handoff | None = None,
    keep: Sequence[Sequence[int] | None] | None = None,
    measure: Callable[[list[np.ndarray]], dict[str, np.ndarray]] | None = None,
) -> TrainResult:
    """Train every ensemble member of ``params0`` (W_k of shape (E, ...)); full-batch
    GD unless ``optimizer`` says otherwise.

    ``snapshots``: steps at which all parameters are stored (default: 60
    log-spaced and 200 equally spaced).  ``progress(step)`` is called after each
    snapshot interval.  ``track_final_stage`` (default: depth == 3) checks the
    final-stage condition at every step until the member first enters it; the
    (m1 x m1) Gram matrix it needs is formed only in steps where the
    inner-product constraint already holds.  ``plateau_drop`` in (0, 1) sets
    the plateau exit, the first step with ``loss <= (1 - plateau_drop) loss_0``.
    Members are spread over
    ``jax.devices()`` (:mod:`condensation.training.devices`).  ``checkpoint``
    (:class:`condensation.store.checkpoint.Checkpoint`) saves the loop at snapshot
    boundaries and, when resuming, starts from its last save.  Long intervals run
    in chunks of bounded work, so an interrupt is handled within about a second.

    ``optimizer`` (default gd): the update rule (:mod:`condensation.training.optimizers`);
    ``streams`` (E,) ints (default all 0): each member's mini-batch stream, folded
    into the sampling key, so members with equal streams see the same batches.

    ``handoff`` (:class:`Handoff`, gd only): member ``e`` starts GD at step
    ``handoff.step[e]`` from ``handoff.params``; the loss of step 0 (the escape
    and plateau levels) is still that of ``params0``, and snapshots before the
    hand-off come from ``handoff.snapshots`` (:mod:`condensation.training.fastforward`).

    ``keep`` (per layer: snapshot indices, or None for all; default all): which
    snapshots of each layer are stored (:mod:`condensation.training.snapshots`); the others are
    not kept on the host.  ``measure(params)`` (host arrays W_k of shape (E, ...)) is
    called at every snapshot; its arrays (E, ...) are stacked into ``measures``.
    """
    opt = GD if optimizer is None else optimizer
    if not 0.0 < plateau_drop < 1.0:
        raise ValueError(f"plateau_drop must be in (0, 1), got {plateau_drop}")
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
    n_members, n = int(np.shape(params0[0])[0]), int(x.shape[0])
    if opt.minibatch and not 1 <= opt.batch_size <= n:
        raise ValueError(f"batch_size must be in [1, n = {n}], got {opt.batch_size}")
    # a GD step uses each weight in three products with the n samples: 6 n flops
    # (mini-batch: 6 per batch sample plus the full-batch loss, 2 n, at most 6 n)
    n_weights = sum(int(np.prod(np.shape(p)[1:])) for p in params0)
    per_weight = min(2.0 * n + 6.0 * opt.batch_size, 6.0 * n) if opt.minibatch else 6.0 * n
    mesh = member_mesh(n_members, flops=per_weight * n_weights * steps * n_members)
    params = tuple(jnp.asarray(p, dt) for p in params0)
    if handoff is not None and opt.name != "gd":
        raise ValueError(f"a hand-off is defined for plain GD, got optimizer {opt.name!r}")
    stream = jnp.zeros(n_members, jnp.int64) if streams is None else jnp.asarray(streams)
    if stream.shape != (n_members,):
        raise ValueError(f"streams: one per member ({n_members}) needed, got {stream.shape}")
    # the loop draws each epoch's permutation at the epoch's first step (step 0 here)
    perm = jnp.zeros((n_members, n if opt.minibatch else 0), jnp.int32)
    opt_c = OptCarry(jax.vmap(opt.transform(float(lr)).init)(params), stream, perm)
    params, opt_c = place_members((params, opt_c), mesh)
    loss0 = _losses(params, xj, yj, act=act)
    minus1 = jnp.full_like(loss0, -1, dtype=jnp.int64)
    peak0 = jnp.full_like(loss0, -1.0)  # below any |cos|: step 0 always sets the peak
    first, fs0, peak_step0 = jnp.zeros_like(minus1), minus1, minus1
    if handoff is not None:  # GD starts at each member's hand-off step, loss_0 stays
        params = place_members(tuple(jnp.asarray(p, dt) for p in handoff.params), mesh)
        first, fs0, peak0, peak_step0 = place_members(
            tuple(
                jnp.asarray(a, t)
                for a, t in (
                    (handoff.step, jnp.int64),
                    (handoff.final_stage_step, jnp.int64),
                    (handoff.peak, loss0.dtype),
                    (handoff.peak_step, jnp.int64),
                )
            ),
            mesh,
        )
    plateau = PlateauTrack((1.0 - plateau_drop) * loss0, minus1, params, peak0, peak_step0)
    carry = (params, loss0, minus1, params, minus1, fs0, opt_c, plateau, first)
    host = partial(on_host, n_members=n_members)

    kept = [
        None if keep is None or keep[k] is None else {int(i) for i in keep[k]} for k in range(depth)
    ]

    def record(index: int, params) -> None:
        """Store the snapshot ``index``; a layer not kept gets an empty placeholder
        (so every record list has one entry per snapshot, as the checkpoint needs)."""
        hp = [host(p) for p in params]
        for k, p in enumerate(hp):
            snaps[k].append(p if kept[k] is None or index in kept[k] else _NOT_KEPT)
        for name, v in (measure(hp) if measure is not None else {}).items():
            measured.setdefault(name, []).append(np.asarray(v))

    snaps: list[list[np.ndarray]] = [[] for _ in params]
    measured: dict[str, list[np.ndarray]] = {}
    record(0, params)
    snap_loss = [host(loss0)]
    run = partial(
        _run_interval,
        act=act,
        lr=float(lr),
        track_final_stage=bool(track_final_stage),
        mesh=mesh,
        opt=opt,
    )
    records = {
        **{f"W{k + 1}": s for k, s in enumerate(snaps)},
        "loss": snap_loss,
        **{f"measure:{name}": v for name, v in measured.items()},
    }
    first = 0
    if checkpoint is not None:
        first, carry = checkpoint.restore(carry, records)
        if first and progress is not None:
            progress(int(steps_k[first]))
    chunk = chunk_steps(6.0 * x.shape[0] * n_weights * n_members)
    gd_from = 0 if handoff is None else int(np.min(handoff.step))  # no member computes before
    for i, (start, stop) in enumerate(zip(steps_k[:-1], steps_k[1:])):
        if i < first:
            continue
        for a, b in chunks(max(start, gd_from), stop, chunk):
            carry = run(carry, xj, yj, zj, jnp.int64(a), jnp.int64(b))
            if b < stop:  # back in Python between chunks: a signal is handled here
                jax.block_until_ready(carry)
        if stop < gd_from:  # every member is still before its hand-off
            record(i + 1, [handoff.snapshots[k][:, i + 1] for k in range(depth)])
            snap_loss.append(handoff.snapshot_loss[:, i + 1])
        else:
            lk = _losses(carry[0], xj, yj, act=act)
            record(i + 1, carry[0])
            snap_loss.append(host(lk))
        if checkpoint is not None:
            checkpoint.save(i + 1, carry, records)
        if progress is not None:
            progress(int(stop))
    params, _, esc_step, esc_params, div_step, fs_step, _, plateau, _ = carry
    if handoff is not None:  # snapshots before a member's hand-off: the effective flow's
        _fill_before_handoff(snaps, snap_loss, steps_k, handoff, measured, measure, gd_from)
    # escape_step ranges over k = 0..steps; the loop saw 0..steps-1, so check loss_steps.
    esc_step = host(esc_step).copy()
    esc_params = [host(p).copy() for p in esc_params]
    div_step = host(div_step)
    late = (esc_step < 0) & (div_step < 0) & (snap_loss[-1] <= 0.5 * snap_loss[0])
    esc_step[late] = steps
    for k in range(depth):
        esc_params[k][late] = host(params[k])[late]
    pe_step, pe_params, peak, peak_step = _finish_plateau(
        plateau, params, snap_loss[-1], div_step, steps, z=np.asarray(zj), host=host
    )
    return TrainResult(
        lr=float(lr),
        steps=int(steps),
        snapshot_steps=steps_k,
        snapshots=[
            np.stack([w for j, w in enumerate(s) if kept[k] is None or j in kept[k]], axis=1)
            for k, s in enumerate(snaps)
        ],
        snapshot_loss=np.stack(snap_loss, axis=1),
        escape_step=esc_step,
        escape_params=esc_params,
        diverged_step=div_step,
        final_stage_step=host(fs_step),
        plateau_drop=float(plateau_drop),
        plateau_exit_step=pe_step,
        plateau_exit_params=pe_params,
        peak_median_abs_cos=peak,
        peak_median_abs_cos_step=peak_step,
        snapshot_index=[None if c is None else np.array(sorted(c)) for c in kept],
        measures={name: np.stack(v, axis=1) for name, v in measured.items()},
    )


def _fill_before_handoff(snaps, snap_loss, steps_k, handoff: Handoff, measured, measure, gd_from):
    """Replace, in place, each member's snapshots (and their losses and ``measure``
    values) at steps before its hand-off by the effective trajectory's
    (``handoff.snapshots``); a snapshot a layer does not keep stays a placeholder.
    Snapshots 1.. before ``gd_from`` (every member before its hand-off) were recorded
    from ``handoff.snapshots`` by the loop already and are left as they are."""
    steps_k = np.asarray(steps_k)
    before = steps_k[None, :] < np.asarray(handoff.step)[:, None]  # (E, K)
    done = (steps_k < gd_from) & (np.arange(steps_k.size) > 0)
    for j in np.flatnonzero(before.any(axis=0) & ~done):
        rows = before[:, j]
        for k, s in enumerate(snaps):
            if s[j].size == 0:  # not kept (condensation.training.snapshots)
                continue
            s[j] = np.array(s[j])
            s[j][rows] = handoff.snapshots[k][rows, j]
        snap_loss[j] = np.where(rows, handoff.snapshot_loss[:, j], snap_loss[j])
        if measure is not None:
            eff = measure([np.asarray(w[:, j]) for w in handoff.snapshots])
            for name, v in eff.items():
                mine = np.array(measured[name][j])
                mine[rows] = np.asarray(v)[rows]
                measured[name][j] = mine


def _finish_plateau(track: PlateauTrack, params, loss_last, div_step, steps, *, z, host):
    """The loop saw steps 0..steps-1: add step ``steps`` (the final parameters) to the
    plateau exit and the peak alignment, for members that did not diverge."""
    pe_step = host(track.step).copy()
    pe_params = [host(p).copy() for p in track.params]
    final = [host(p) for p in params]
    late = (pe_step < 0) & (div_step < 0) & (loss_last <= host(track.level))
    pe_step[late] = steps
    for k, p in enumerate(final):
        pe_params[k][late] = p[late]
    peak, peak_step = host(track.peak).copy(), host(track.peak_step).copy()
    # (E,) median |cos(b_j, z)| of the final first layers (E, m1, d); rows rescaled, so a
    # frozen diverged member's huge finite weights do not overflow
    cos_last = np.median(abs_cos_to(final[0], z), axis=-1)
    higher = (div_step < 0) & (cos_last > peak)
    peak[higher], peak_step[higher] = cos_last[higher], steps
    return pe_step, pe_params, peak, peak_step
