"""Compiled training over ensembles of networks: full-batch GD, SGD, momentum, Adam.

The network trainer's loss, update and watches
(:mod:`condensation.training.network_model`) plugged into the one training engine
(:mod:`condensation.training.engine`): one jitted call runs all ensemble members
(seeds x scales) from one snapshot step to the next; Python only stitches the
snapshot intervals together (and drives the progress bar).  Inside the call, at
every step, the engine records:

- the escape step ``min{k : loss_k <= loss_0 / 2}`` and the parameters there;
- divergence (non-finite loss or parameters): that member is frozen at its last
  finite parameters, marked, and stops computing; the others run on untouched;
- for depth 3, the first step at which the final-stage condition holds;
- the plateau exit ``min{k : loss_k <= (1 - plateau_drop) loss_0}`` and the
  parameters there, and the running peak of the median ``|cos(b_j, z)|`` over
  the first-layer rows with its step.

Time conventions: ``loss_k = R(theta_k)``, ``theta_{k+1} = theta_k - lr grad R``,
``t = k * lr``.

Layout, chosen by measurement (``benchmarks/bench_train.py``):

- The members are spread over the JAX devices, one per CPU core by default (see
  :mod:`condensation.jax_setup`), with ``shard_map``: XLA runs a program on one
  core, so this is what puts every core to work.  The ensemble is padded with
  copies of member 0 to a whole number per device; the copies are dropped.
- Each device runs its members one after another (``lax.map``), each through
  the whole interval in a ``while_loop``.  A member's weights and activations
  (about 0.4 MB at widths 100/100 in float64) then stay in the core's cache for
  the whole interval; a vmapped step over all members streams each operation
  through every member's arrays and ran 1.5x slower.
- Recording the escape parameters is a branch taken in one step only.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from condensation.core.metrics import abs_cos_to
from condensation.store.checkpoint import Checkpoint
from condensation.training.devices import member_mesh, place_members
from condensation.training.engine import (
    Handoff,
    Member,
    before_handoff,
    check_snapshot_steps,
    drive,
    layout,
    scale,
    snapshot_steps,
    start_from,
    tracks,
)
from condensation.training.network_model import (
    FinalStageWatch,
    NetworkModel,
    OptCarry,
    ensemble_losses,
    layout_for,
    trainer_loss,
    weighted_batch_loss,
)
from condensation.training.optimizers import Optimizer

__all__ = [
    "GD",
    "Handoff",
    "OptCarry",
    "TrainResult",
    "trainer_loss",
    "snapshot_steps",
    "train",
    "weighted_batch_loss",
    "with_output_scale",
]

GD = Optimizer()
_NOT_KEPT = np.zeros(0)  # the record of a snapshot a layer does not keep


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
        """(K,) the snapshot times ``t = step * lr``."""
        return self.snapshot_steps * self.lr

    @property
    def loss_initial(self) -> np.ndarray:
        """(E,) each member's loss at step 0."""
        return self.snapshot_loss[:, 0]

    @property
    def loss_final(self) -> np.ndarray:
        """(E,) each member's loss at the last step."""
        return self.snapshot_loss[:, -1]

    @property
    def escape_time(self) -> np.ndarray:
        """``escape_step * lr``; NaN where the member never escaped."""
        return np.where(self.escape_step >= 0, self.escape_step * self.lr, np.nan)

    @property
    def plateau_exit_time(self) -> np.ndarray:
        """``plateau_exit_step * lr``; NaN where the loss never fell by ``plateau_drop``."""
        return np.where(self.plateau_exit_step >= 0, self.plateau_exit_step * self.lr, np.nan)


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
    output_scale: float = 1.0,
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
    in chunks of bounded time, so an interrupt is handled within about a second.

    ``optimizer`` (default gd): the update rule (:mod:`condensation.training.optimizers`);
    ``streams`` (E,) ints (default all 0): each member's mini-batch stream, folded
    into the sampling key, so members with equal streams see the same batches.

    ``handoff`` (:class:`Handoff`, gd only): member ``e`` starts GD at step
    ``handoff.step[e]`` from ``handoff.params``; the loss of step 0 (the escape
    and plateau levels) is still that of ``params0``, and snapshots before the
    hand-off come from ``handoff.snapshots`` (:mod:`condensation.training.fastforward`).

    ``keep`` (per layer: snapshot indices, or None for all; default all): which
    snapshots of each layer are stored (:mod:`condensation.core.snapshots`); the others are
    not kept on the host.  ``measure(params)`` (host arrays W_k of shape (E, ...)) is
    called at every snapshot; its arrays (E, ...) are stacked into ``measures``.
    """
    if output_scale != 1.0:  # train g on y / kappa at lr kappa^2 (engine.scale)
        y_g, lr_g = scale.as_unit_scale(y, lr, float(output_scale))
        result = train(
            params0, x, y_g, act=act, lr=lr_g, steps=steps, snapshots=snapshots, dtype=dtype,
            track_final_stage=track_final_stage, plateau_drop=plateau_drop, progress=progress,
            checkpoint=checkpoint, optimizer=optimizer, streams=streams, handoff=handoff,
            keep=keep, measure=measure,
        )  # fmt: skip
        return with_output_scale(result, lr, float(output_scale))
    opt = GD if optimizer is None else optimizer
    if not 0.0 < plateau_drop < 1.0:
        raise ValueError(f"plateau_drop must be in (0, 1), got {plateau_drop}")
    dt = jnp.float64 if dtype == "float64" else jnp.float32
    depth = len(params0)
    if track_final_stage is None:
        track_final_stage = depth == 3
    if track_final_stage and depth != 3:
        raise ValueError(f"the final-stage condition is defined for depth 3, got depth {depth}")
    steps_k = snapshot_steps(steps, 60, 200) if snapshots is None else snapshots
    steps_k = check_snapshot_steps(steps_k, steps)
    xj, yj = jnp.asarray(x, dt), jnp.asarray(y, dt)
    zj = (yj @ xj) / xj.shape[0]
    n_members, n = int(np.shape(params0[0])[0]), int(x.shape[0])
    if opt.minibatch and not 1 <= opt.batch_size <= n:
        raise ValueError(f"batch_size must be in [1, n = {n}], got {opt.batch_size}")
    # a GD step uses each weight in three products with the n samples: 6 n flops
    # (mini-batch: 6 per batch sample plus the full-batch loss, 2 n, at most 6 n)
    n_weights = sum(int(np.prod(np.shape(p)[1:])) for p in params0)
    per_weight = min(2.0 * n + 6.0 * opt.batch_size, 6.0 * n) if opt.minibatch else 6.0 * n
    mesh, chunk, host = layout(
        n_members,
        flops=per_weight * n_weights * steps * n_members,
        chunk_flops=6.0 * x.shape[0] * n_weights * n_members,
        mesh_of=member_mesh,  # this module's name: a caller may replace it
    )
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
    loss0 = ensemble_losses(params, xj, yj, act=act)
    # GD starts at each member's hand-off step (if any); loss_0 stays
    params, first, fs0, peak0, peak_step0 = start_from(handoff, params, loss0, mesh, dt)
    model = NetworkModel(act, float(lr), bool(track_final_stage), opt, layout_for(params))
    watch0 = FinalStageWatch.start(fs0, params[0].shape[1], lambda t: place_members(t, mesh))
    track = tracks.start(
        loss0,
        model.keep(params),
        plateau_drop=plateau_drop,
        keep_exit=model.keep_exit,
        peak=peak0,
        peak_step=peak_step0,
    )
    rec = _Recorder(depth, keep, measure, handoff, steps_k, host)
    rec.record(0, params, host(loss0))
    gd_from = 0 if handoff is None else int(np.min(handoff.step))  # no member computes before

    def snapshot(j: int, carry) -> None:
        if steps_k[j] < gd_from:  # every member is still before its hand-off
            rec.from_handoff(j)
        else:
            lk = ensemble_losses(carry.params, xj, yj, act=act)
            rec.record(j, carry.params, host(lk))

    carry = drive(
        model,
        Member(params, opt_c, watch0, track, first),
        (xj, yj, zj),
        steps_k,
        mesh=mesh,
        chunk=chunk,
        records=rec.records,
        snapshot=snapshot,
        checkpoint=checkpoint,
        progress=progress,
        gd_from=gd_from,
    )
    final = [host(p) for p in carry.params]
    snap_loss = rec.snap_loss
    # (E,) median |cos(b_j, z)| of the final first layers (E, m1, d); rows rescaled, so a
    # frozen diverged member's huge finite weights do not overflow
    cos_last = np.median(abs_cos_to(final[0], np.asarray(zj)), axis=-1)
    done = tracks.finish(
        carry.track, final, snap_loss[0], snap_loss[-1], steps, host=host, alignment_last=cos_last
    )
    kept = rec.kept
    return TrainResult(
        lr=float(lr),
        steps=int(steps),
        snapshot_steps=steps_k,
        snapshots=[
            np.stack([w for j, w in enumerate(s) if kept[k] is None or j in kept[k]], axis=1)
            for k, s in enumerate(rec.snaps)
        ],
        snapshot_loss=np.stack(snap_loss, axis=1),
        escape_step=done["escape_step"],
        escape_params=list(done["escape_state"]),
        diverged_step=done["diverged_step"],
        final_stage_step=host(carry.watch.step),
        plateau_drop=float(plateau_drop),
        plateau_exit_step=done["exit_step"],
        plateau_exit_params=list(done["exit_state"]),
        peak_median_abs_cos=done["peak"],
        peak_median_abs_cos_step=done["peak_step"],
        snapshot_index=[None if c is None else np.array(sorted(c)) for c in kept],
        measures={name: np.stack(v, axis=1) for name, v in rec.measured.items()},
    )


def with_output_scale(result: TrainResult, lr: float, kappa: float) -> TrainResult:
    """The run of ``f = kappa g`` from the run of ``g`` on targets ``y / kappa`` at
    ``lr kappa^2``: ``R_kappa(theta) = kappa^2 R_1(theta; y / kappa)``, so their
    gradient steps are the same steps exactly; only the loss (times ``kappa^2``) and
    the time ``t = step * lr`` differ.  ``kappa = 1`` returns ``result`` unchanged.

    Args:
        result: the run of ``g``.
        lr: the learning rate of ``f``.
        kappa: the output scale.

    Returns:
        The run of ``f``.
    """
    return scale.rescaled(result, lr, kappa)


class _Recorder:
    """The snapshots a run keeps, as named lists of host arrays (one entry per
    snapshot, as the checkpoint needs): ``W1..WL`` (an empty placeholder where a
    layer does not keep the snapshot), ``loss`` and ``measure:NAME``.  Members still
    before their hand-off at a snapshot get the effective trajectory's state, loss
    and measures (``handoff.snapshots``)."""

    def __init__(self, depth, keep, measure, handoff: Handoff | None, steps_k, host):
        self.kept = [
            None if keep is None or keep[k] is None else {int(i) for i in keep[k]}
            for k in range(depth)
        ]
        self.measure, self.handoff, self.steps_k, self.host = measure, handoff, steps_k, host
        self.snaps: list[list[np.ndarray]] = [[] for _ in range(depth)]
        self.snap_loss: list[np.ndarray] = []
        self.measured: dict[str, list[np.ndarray]] = {}
        self.records: dict[str, list] = {}

    def _store(self, index: int, hp, loss, measured=None) -> None:
        """Store snapshot ``index``: ``hp`` per layer (a host array, or None where the
        layer does not keep it); ``measured`` the measures, else ``measure(hp)``."""
        for k, p in enumerate(hp):
            keep = p is not None and (self.kept[k] is None or index in self.kept[k])
            self.snaps[k].append(p if keep else _NOT_KEPT)
        if measured is None and self.measure is not None:
            measured = self.measure(hp)
        for name, v in (measured or {}).items():
            self.measured.setdefault(name, []).append(np.asarray(v))
        self.snap_loss.append(loss)
        if not self.records:  # the names are known once snapshot 0 is measured
            self.records.update(
                {f"W{k + 1}": s for k, s in enumerate(self.snaps)},
                loss=self.snap_loss,
                **{f"measure:{name}": v for name, v in self.measured.items()},
            )

    def record(self, index: int, params, loss) -> None:
        """Store snapshot ``index`` of the device ``params`` with its host ``loss``."""
        self._store(index, [self.host(p) for p in params], loss)
        rows = before_handoff(self.handoff, self.steps_k[index])
        if rows is not None and rows.any():
            self._fill(index, rows)

    def _handoff_measures(self, j: int, layers) -> dict | None:
        """The measures of the hand-off's snapshot ``j`` (E, ...): as the hand-off
        carries them, else measured on its layers (which must all be there)."""
        h = self.handoff
        if h.measures is not None:
            return {name: v[:, j] for name, v in h.measures.items()}
        return None if self.measure is None else self.measure(layers)

    def from_handoff(self, index: int) -> None:
        """Store snapshot ``index`` from the hand-off's (every member before it)."""
        h = self.handoff
        layers = [h.layer_at(k, index) for k in range(len(h.snapshots))]
        measured = self._handoff_measures(index, layers)
        self._store(index, layers, h.snapshot_loss[:, index], measured)

    def _fill(self, j: int, rows) -> None:
        """Replace the ``rows`` of snapshot ``j`` (members before their hand-off) by the
        effective trajectory's; a snapshot a layer does not keep stays a placeholder."""
        h = self.handoff
        layers = [h.layer_at(k, j) for k in range(len(h.snapshots))]
        for k, s in enumerate(self.snaps):
            if s[j].size == 0:  # not kept (condensation.core.snapshots)
                continue
            s[j] = np.array(s[j])
            s[j][rows] = layers[k][rows]
        self.snap_loss[j] = np.where(rows, h.snapshot_loss[:, j], self.snap_loss[j])
        eff = self._handoff_measures(j, layers)
        for name, v in (eff or {}).items():
            mine = np.array(self.measured[name][j])
            mine[rows] = np.asarray(v)[rows]
            self.measured[name][j] = mine
