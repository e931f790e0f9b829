"""The GD engine: one member step with the rules, and the driver over snapshot intervals.

A trainer plugs in a *model* (:class:`Model`): its loss and update, the state
it keeps at the escape, its alignment measure and its per-step watches (the
final-stage entry).  :class:`GDStep` wraps it with everything every trainer
shares (divergence freeze, the escape / plateau-exit / peak rules of
:mod:`condensation.training.engine.tracks`, the hand-off), and :func:`drive`
runs it from one snapshot step to the next (:func:`condensation.training.engine.loop.run_interval`),
in chunks of bounded time (an interrupt is handled within about a second),
checkpointing at snapshot boundaries (:class:`condensation.store.checkpoint.Checkpoint`)
and resuming from the last save.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from condensation.store.checkpoint import Checkpoint, Pacer, chunk_steps
from condensation.training.devices import member_mesh, on_host, place_members
from condensation.training.engine import tracks
from condensation.training.engine.loop import MAP, Stepper, run_interval


def safe_update(params, updates, sizes=None) -> jnp.ndarray:
    """True where ``params + updates`` is provably finite: every update finite and
    ``max|p| + max|u|`` within the largest float, per layer.  Decided from the
    inputs alone, so the update can be written over ``params`` in place (a test
    of the new weights would keep the old ones alive: a copy of every layer at
    every step).  Refuses only steps at the edge of overflow (``max|p| + max|u|``
    beyond ``finfo.max``), which a diverging run reaches one step later anyway.

    ``sizes``: per layer, ``max|u|`` as the model computes it (GD: ``lr max|g|``,
    the same number, without the updates written out for the test: at width 2000
    a 32 MB array per step); None: taken from ``updates``."""
    ok = []
    leaves_u = jax.tree.leaves(updates)
    tops = [None] * len(leaves_u) if sizes is None else list(sizes)
    for p, u, top_u in zip(jax.tree.leaves(params), leaves_u, tops, strict=True):
        if top_u is None:
            top_u = jnp.max(jnp.abs(u), initial=0)
        top = jnp.max(jnp.abs(p), initial=0) + top_u
        ok.append(top <= jnp.finfo(p.dtype).max)  # False for inf and NaN
    return jnp.all(jnp.stack(ok))


def ordered_after(pred, trees) -> jnp.ndarray:
    """``pred``, unchanged, made to depend on one entry of every leaf of ``trees``.

    The step's update writes the weights in place only where everything else that
    reads them (the watches) is ordered before it by data: XLA does not reorder to
    avoid the hazard, it copies the weights (at width 1000, one ``W2`` per step).
    Gating the update by this ``pred`` orders the watches first.  ``c | ~c`` is
    True for any ``c`` (NaN included) and XLA does not fold it."""
    for leaf in jax.tree.leaves(trees):
        if leaf.size:
            c = jnp.ravel(leaf)[0] > 0
            pred = pred & (c | ~c)
    return pred


class Handoff(NamedTuple):
    """Where each member's GD starts when it does not start at step 0 (built by
    :mod:`condensation.training.fastforward`): the loop begins member ``e`` at ``step[e]``
    from ``params``; snapshots before that step are taken from ``snapshots``.
    Every array has the member axis first."""

    step: np.ndarray  # (E,) int: first GD step (0: plain GD from params0)
    params: tuple  # W_k (E, *shape_k) at that step
    # W_k (E, K_k, *shape_k) at the snapshot steps it keeps (used before step): all K
    # of them, or those of ``snapshot_index[k]`` (a layer stored at a subset only)
    snapshots: list[np.ndarray]
    final_stage_step: np.ndarray  # (E,) entry into the final-stage set before step, -1 if none
    peak: np.ndarray  # (E,) max median |cos(b_j, z)| before step (-1: none)
    peak_step: np.ndarray  # (E,) its step
    snapshot_loss: np.ndarray  # (E, K) the loss of ``snapshots`` (used before step)
    snapshot_index: tuple | None = None  # per layer: the indices ``snapshots`` holds (None: all)
    measures: dict | None = None  # name -> (E, K, ...): the run's measures at every snapshot

    def layer_at(self, k: int, j: int) -> np.ndarray | None:
        """Layer ``k`` (E, *shape_k) at snapshot ``j``, or None where not kept."""
        idx = None if self.snapshot_index is None else self.snapshot_index[k]
        if idx is None:
            return self.snapshots[k][:, j]
        pos = int(np.searchsorted(idx, j))
        return self.snapshots[k][:, pos] if pos < len(idx) and idx[pos] == j else None


class Member(NamedTuple):
    """One member's loop state (every leaf has the member axis in the ensemble)."""

    params: tuple  # W_k
    aux: Any  # the model's own state (optimizer state, ...)
    watch: Any  # the model's per-step watches (final-stage entry, ...)
    track: tracks.Track
    first: jnp.ndarray  # the member's first GD step (its hand-off; 0 otherwise)


class Model:
    """What a trainer plugs into the engine (subclasses: frozen dataclasses, hashable).

    ``members``: the loop layout (:mod:`condensation.training.engine.loop`);
    ``typed``: False where the step draws random numbers; ``keep_exit``: keep the
    state at the plateau exit too."""

    members: str = MAP
    typed: bool = True
    keep_exit: bool = True

    def update(self, k, params, aux, shared):  # pragma: no cover - interface
        """``(loss_k, updates, aux if the step is taken, aux if it is not)``: the
        step's new parameters are ``params + updates``, leaf by leaf.  A fifth
        element may give, per leaf, ``max|u|`` computed more cheaply than from the
        updates (:func:`safe_update`)."""
        raise NotImplementedError

    def keep(self, params):
        """The state kept at the escape (and the plateau exit): all of ``params``."""
        return params

    def alignment(self, params, shared):
        """The alignment measure whose peak is tracked, or None."""
        return None

    def watch(self, k, params, watch, shared, alive):
        """The per-step watches after step ``k`` (default: none)."""
        return watch


@dataclass(frozen=True)
class GDStep(Stepper):
    """One GD step of one member: the model's update, divergence freeze, the rules."""

    model: Model

    @property
    def members(self) -> str:
        return self.model.members

    @property
    def typed(self) -> bool:
        return self.model.typed

    def first(self, m: Member):
        return m.first

    def running(self, m: Member):
        return m.track.diverged_step < 0

    @property
    def events(self) -> bool:  # one member per loop: it can stop at its own events
        return self.model.members == MAP

    def step(self, k, m: Member, shared) -> Member:
        return self._step(k, m, shared, self.model.keep(m.params))[0]

    def step_or_event(self, k, m: Member, shared):
        """``(m after step k, 0)``, or ``(m, event)`` where step ``k`` is an escape or
        plateau exit whose state is kept (:func:`condensation.training.engine.tracks.event`):
        the step is then not taken; :meth:`settle` records it."""
        done, loss, alive = self._step(k, m, shared, None)
        code = tracks.event(m.track, loss, alive)
        # elementwise selects (fused into the update) rather than a branch over the weights
        return jax.tree.map(lambda a, b: jnp.where(code != 0, a, b), m, done), code

    def settle(self, k, m: Member, code) -> Member:
        """``m`` with the events ``code`` of step ``k`` recorded, the state there kept."""
        return m._replace(track=tracks.settle(m.track, k, self.model.keep(m.params), code))

    def _step(self, k, m: Member, shared, kept):
        """``(m after step k, loss_k, alive)``; ``kept``: the state to keep at an
        escape or exit in the loop (None: kept by :meth:`settle`)."""
        alive = (m.track.diverged_step < 0) & (k >= m.first)
        loss, updates, aux_ok, aux_kept, *sizes = self.model.update(k, m.params, m.aux, shared)
        align = self.model.alignment(m.params, shared)
        watch = self.model.watch(k, m.params, m.watch, shared, alive)
        ok = alive & jnp.isfinite(loss) & safe_update(m.params, updates, *sizes)
        ok = ordered_after(ok, (align, watch))
        new = jax.tree.map(lambda p, u: (p + u).astype(p.dtype), m.params, updates)
        track = tracks.update(m.track, k, loss, ok, alive, kept, align)
        # a diverged step is not taken: the member stays at its last finite state
        # (elementwise selects, fused into the update: a branch would copy the weights)
        params, aux = jax.tree.map(
            lambda a, b: jnp.where(ok, a, b), (new, aux_ok), (m.params, aux_kept)
        )
        return Member(params, aux, watch, track, m.first), loss, alive


def layout(n_members: int, flops: float, chunk_flops: float, *, mesh_of=member_mesh):
    """``(mesh, chunk, host)`` of an ensemble: the device mesh for a job of ``flops``
    (all members, all steps; ``mesh_of``: :func:`condensation.training.devices.member_mesh`
    or a trainer's replacement), the steps per compiled call at ``chunk_flops`` per
    step, and ``array -> numpy`` of the real members (padding dropped)."""
    mesh = mesh_of(n_members, flops=flops)
    return mesh, chunk_steps(chunk_flops), partial(on_host, n_members=n_members)


def start_from(handoff: Handoff | None, params, loss0, mesh, dt):
    """``(params, first, final_stage_step, peak, peak_step)`` where each member's GD
    starts: ``params`` from step 0, or ``handoff``'s states (placed on ``mesh``);
    the watches are -1 and the peak None without a hand-off."""
    minus1 = jnp.full_like(loss0, -1, dtype=jnp.int64)
    if handoff is None:
        return params, jnp.zeros_like(minus1), minus1, None, None
    params = place_members(tuple(jnp.asarray(p, dt) for p in handoff.params), mesh)
    first, fs0, peak, peak_step = place_members(
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
    return params, first, fs0, peak, peak_step


def drive(
    model: Model,
    carry: Member,
    shared: tuple,
    steps_k: np.ndarray,
    *,
    mesh,
    chunk: int,
    records: dict[str, list],
    snapshot: Callable[[int, Member], None],
    checkpoint: Checkpoint | None = None,
    progress: Callable[[int], None] | None = None,
    gd_from: int = 0,
) -> Member:
    """Run the ensemble ``carry`` through the snapshot intervals of ``steps_k``.

    Args:
        model: the trainer's :class:`Model`.
        carry: the ensemble's :class:`Member` state, placed on ``mesh``.
        shared: the arrays every member uses (replicated).
        steps_k: the snapshot steps, 0 .. steps.
        mesh: the device mesh (None: one device).
        chunk: the steps of the first compiled calls, and the fewest of any; later
            calls are sized by time (:class:`condensation.store.chunking.Pacer`).
        records: the named lists of host arrays, one entry per snapshot taken
            (snapshot 0 already in); checkpointed with the carry.
        snapshot: ``(index, carry)``, called at each snapshot step after 0; appends
            one entry to every list of ``records``.
        checkpoint: saves at snapshot boundaries; when resuming, the loop starts
            from its last save (``records`` are replaced in place).
        progress: called with the step reached after each interval.
        gd_from: no member computes before this step (the earliest hand-off).

    Returns:
        The carry at step ``steps_k[-1]``.
    """
    stepper = GDStep(model)
    first = 0
    if checkpoint is not None:
        first, carry = checkpoint.restore(carry, records)
        if first and progress is not None:
            progress(int(steps_k[first]))
    # run_interval donates its carry: the caller's arrays (which the carry may share,
    # e.g. the kept states are the initial weights) stay valid
    carry = jax.tree.map(jnp.copy, carry)
    pacer = Pacer(chunk)
    for i, (start, stop) in enumerate(zip(steps_k[:-1], steps_k[1:])):
        if i < first:
            continue
        for a, b in pacer.pieces(max(start, gd_from), stop):
            carry = run_interval(
                carry, shared, jnp.int64(a), jnp.int64(b), stepper=stepper, mesh=mesh
            )
            # back in Python after each chunk (a signal is handled here), which the
            # pacer times to size the next
            jax.block_until_ready(carry)
        snapshot(i + 1, carry)
        if checkpoint is not None:
            checkpoint.save(i + 1, carry, records)
        if progress is not None:
            progress(int(stop))
    return carry


def snapshot_steps(steps: int, n_log: int, n_linear: int) -> np.ndarray:
    """The default snapshot plan: sorted unique steps in [0, steps], ``n_log``
    log-spaced plus ``n_linear`` equally spaced intervals (0: none)."""
    log = np.unique(np.round(np.geomspace(1, steps, n_log)).astype(np.int64))
    lin = np.round(np.linspace(0, steps, n_linear + 1)).astype(np.int64) if n_linear else []
    return np.unique(np.concatenate([[0, steps], log, lin]))


def check_snapshot_steps(steps_k: np.ndarray, steps: int) -> np.ndarray:
    """``steps_k`` as an array, refused unless it increases strictly from 0 to ``steps``."""
    steps_k = np.asarray(steps_k)
    if steps_k[0] != 0 or steps_k[-1] != steps or np.any(np.diff(steps_k) <= 0):
        raise ValueError("snapshot steps must increase strictly from 0 to steps")
    return steps_k


def before_handoff(handoff: Handoff | None, step: int) -> np.ndarray | None:
    """(E,) bool: the members still before their hand-off at ``step`` (None: no hand-off)."""
    return None if handoff is None else np.asarray(step < np.asarray(handoff.step))
