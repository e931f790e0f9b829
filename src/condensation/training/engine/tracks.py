"""The escape, plateau-exit, peak-alignment and divergence rules, written once.

Per member, at every step ``k`` (``loss_k = R(theta_k)``, before the update):

- escape: ``min{k : loss_k <= loss_0 / 2}`` and the state kept there;
- plateau exit: ``min{k : loss_k <= (1 - plateau_drop) loss_0}`` and the state
  kept there (when the trainer keeps it);
- peak alignment: the running maximum of a trainer's alignment measure (the
  median ``|cos(b_j, z)|`` of the network trainer) and its first step;
- divergence: the first step whose loss or update is not finite; the member is
  then frozen at its last finite parameters (:class:`condensation.training.engine.gd.GDStep`).

The loop sees steps ``0 .. steps-1``; :func:`finish` adds step ``steps`` (the
final parameters) to every rule, for members that did not diverge: the late
escape and late plateau exit.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from condensation.training.engine.loop import at_most_once


def escape_level(loss0):
    """The escape level ``loss_0 / 2``: a member has escaped once ``loss <= escape_level``."""
    return 0.5 * loss0


def exit_level(loss0, plateau_drop):
    """The plateau-exit level ``(1 - plateau_drop) loss_0``: a member has left its
    plateau once ``loss <= exit_level`` (also the hand-off predicate of fast-forward
    and train-to-tolerance's ``plateau`` stop)."""
    return (1.0 - plateau_drop) * loss0


class Track(NamedTuple):
    """One member's record of the rules (every leaf has the member axis in the
    ensemble carry)."""

    loss0: jnp.ndarray  # loss at step 0
    escape_step: jnp.ndarray  # -1 until the escape
    escape_state: tuple  # the kept state at the escape step
    diverged_step: jnp.ndarray  # -1 until a non-finite step
    exit_level: jnp.ndarray  # (1 - plateau_drop) loss_0
    exit_step: jnp.ndarray  # -1 until the plateau exit
    exit_state: tuple  # the kept state there (() when not kept)
    peak: jnp.ndarray  # running max of the alignment (-1: none yet)
    peak_step: jnp.ndarray  # its step


def start(loss0, kept, *, plateau_drop: float, keep_exit: bool, peak=None, peak_step=None):
    """The record before step 0 (or before a hand-off, with the ``peak`` seen so far).

    Args:
        loss0: (E,) the loss at step 0.
        kept: the kept state at the start (a pytree with the member axis).
        plateau_drop: the plateau exit's fraction, in (0, 1).
        keep_exit: whether the state at the plateau exit is kept.
        peak: (E,) peak alignment before the start (default -1: none).
        peak_step: (E,) its step (default -1).

    Returns:
        The :class:`Track`.
    """
    minus1 = jnp.full_like(loss0, -1, dtype=jnp.int64)
    peak = jnp.full_like(loss0, -1.0) if peak is None else peak  # below any |cos|
    return Track(
        loss0,
        minus1,
        kept,
        minus1,
        exit_level(loss0, plateau_drop),
        minus1,
        kept if keep_exit else (),
        peak,
        minus1 if peak_step is None else peak_step,
    )


def update(tr: Track, k, loss, ok, alive, kept, alignment=None) -> Track:
    """The record after step ``k`` of one member (inside the compiled loop).

    Args:
        tr: the record before the step.
        k: the step.
        loss: ``loss_k``, the loss at the step's parameters.
        ok: the step's loss and update are finite (and the member is alive).
        alive: the member computes this step (after its hand-off, not diverged).
        kept: the state to keep should the step be the escape or the exit; None
            where the loop keeps it itself (:func:`event` and :func:`settle`):
            the kept states are then left as they are.
        alignment: the step's alignment measure, or None (not tracked).

    Returns:
        The updated :class:`Track`.
    """
    escaped_now, exited_now = _crossed(tr, loss, alive)
    peak, peak_step = tr.peak, tr.peak_step
    if alignment is not None:
        higher = alive & (alignment > tr.peak)
        peak = jnp.where(higher, alignment, tr.peak)
        peak_step = jnp.where(higher, k, tr.peak_step)
    return Track(
        loss0=tr.loss0,
        escape_step=jnp.where(escaped_now, k, tr.escape_step),
        # a real branch (one member per loop): the copy happens in one step only
        escape_state=(
            tr.escape_state
            if kept is None
            else jax.lax.cond(escaped_now, lambda: kept, lambda: tr.escape_state)
        ),
        diverged_step=jnp.where(alive & ~ok, k, tr.diverged_step),
        exit_level=tr.exit_level,
        exit_step=jnp.where(exited_now, k, tr.exit_step),
        exit_state=(
            jax.lax.cond(exited_now, lambda: kept, lambda: tr.exit_state)
            if not _empty(tr.exit_state) and kept is not None
            else tr.exit_state
        ),
        peak=peak,
        peak_step=peak_step,
    )


def event(tr: Track, loss, alive):
    """The state-keeping events of a step with loss ``loss`` (int32 bits: 1 the
    escape, 2 the plateau exit; 0 when no state is to be kept).

    A loop that keeps the states itself (:func:`update` with ``kept=None``) does
    not take a step whose event is not 0: it stops there, records the events with
    :func:`settle` outside the per-step loop, and runs the step again.  The
    per-step loop then never carries a branch over the kept states (at width
    1000, two copies of ``W2`` per step)."""
    escaped_now, exited_now = _crossed(tr, loss, alive)
    if _empty(tr.exit_state):
        exited_now = jnp.zeros_like(exited_now)  # recorded by update: no state to keep
    return escaped_now.astype(jnp.int32) | (exited_now.astype(jnp.int32) << 1)


def settle(tr: Track, k, kept, code) -> Track:
    """The record with the events ``code`` of :func:`event` at step ``k``: their
    steps and the state ``kept`` (the parameters at step ``k``, before its update).

    The states are written only where ``code != 0``
    (:func:`condensation.training.engine.loop.at_most_once`): a ``cond`` between the
    kept state and the old one copied the whole state at every compiled call (at
    width 2000, two 32 MB copies of ``W2``)."""
    escaped, exited = (code & 1) != 0, (code & 2) != 0
    has_exit = not _empty(tr.exit_state)

    def write(states):
        esc, ex = states
        esc = jax.tree.map(lambda new, old: jnp.where(escaped, new, old), kept, esc)
        if has_exit:
            ex = jax.tree.map(lambda new, old: jnp.where(exited, new, old), kept, ex)
        return esc, ex

    esc, ex = at_most_once(code != 0, write, (tr.escape_state, tr.exit_state))
    return tr._replace(
        escape_step=jnp.where(escaped, k, tr.escape_step),
        escape_state=esc,
        exit_step=jnp.where(exited, k, tr.exit_step),
        exit_state=ex,
    )


def _crossed(tr: Track, loss, alive):
    """``(escaped now, exited now)``: the step's loss first at or below each level."""
    escaped_now = alive & (tr.escape_step < 0) & (loss <= escape_level(tr.loss0))
    exited_now = alive & (tr.exit_step < 0) & (loss <= tr.exit_level)
    return escaped_now, exited_now


def finish(tr: Track, final, loss_first, loss_last, steps: int, *, host, alignment_last=None):
    """The rules on the host, with step ``steps`` added (see the module docstring).

    Args:
        tr: the ensemble's record after the loop.
        final: the kept state of the final parameters (host arrays (E, ...)).
        loss_first: (E,) the recorded loss at step 0.
        loss_last: (E,) the recorded loss at step ``steps``.
        steps: the last step.
        host: ``array -> numpy``, the real members (padding dropped).
        alignment_last: (E,) the alignment of the final parameters, or None.

    Returns:
        A dict of numpy arrays: ``escape_step``, ``escape_state``, ``diverged_step``,
        ``exit_step``, ``exit_state`` (None when not kept), ``peak``, ``peak_step``.
    """
    div = host(tr.diverged_step)
    alive = div < 0

    def late_rule(step_arr, state, reached):
        step = host(step_arr).copy()
        late = (step < 0) & alive & reached
        step[late] = steps
        if _empty(state):
            return step, None
        out = jax.tree.map(lambda a: host(a).copy(), state)
        for leaf, end in zip(jax.tree.leaves(out), jax.tree.leaves(final)):
            leaf[late] = end[late]
        return step, out

    reached = loss_last <= escape_level(loss_first)
    esc, esc_state = late_rule(tr.escape_step, tr.escape_state, reached)
    ex, ex_state = late_rule(tr.exit_step, tr.exit_state, loss_last <= host(tr.exit_level))
    peak, peak_step = host(tr.peak).copy(), host(tr.peak_step).copy()
    if alignment_last is not None:
        higher = alive & (alignment_last > peak)
        peak[higher], peak_step[higher] = alignment_last[higher], steps
    return {
        "escape_step": esc,
        "escape_state": esc_state,
        "diverged_step": div,
        "exit_step": ex,
        "exit_state": ex_state,
        "peak": peak,
        "peak_step": peak_step,
    }


def _empty(state) -> bool:
    return isinstance(state, tuple) and len(state) == 0
