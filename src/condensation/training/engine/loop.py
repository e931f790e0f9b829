"""The one compiled step loop, and the ensemble interval built on it.

:func:`iterate` is the only ``while_loop`` over training steps in the package:
the network and matrix trainers run it through :func:`run_interval`, and
train-to-tolerance and fast-forward's depth-2 map call it inside their own
compiled functions.  A *stepper* says what one step of one member is
(:class:`Stepper`); :func:`run_interval` runs an ensemble's members over an
interval of steps in one jitted call, spread over the devices with
``shard_map`` (:mod:`condensation.training.devices`), in one of two layouts:

- ``"map"``: the members one after another (``lax.map``), each through the whole
  interval in its own loop, from ``max(start, first)`` (its hand-off) while it
  has not diverged.  A member's weights and activations then stay in the core's
  cache for the interval (the network trainer: measured 1.5x faster than
  vmapping its step);
- ``"vmap"``: all members in lockstep, one vmapped step per ``k``; a member
  before its hand-off or after its divergence is masked by the step (the
  matrix trainer: small factors, where one loop over all members wins).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp

from condensation.training.devices import over_members

MAP = "map"
VMAP = "vmap"


def iterate(step: Callable, state, start, stop, running: Callable | None = None):
    """Run ``state <- step(k, state)`` for ``k = start, start + 1, ...`` while
    ``k < stop`` and ``running(state)`` (compiled: a ``lax.while_loop``).

    Args:
        step: ``(k, state) -> state``, one training step.
        state: the loop state (a pytree of arrays).
        start: the first step ``k`` (an int or a traced int).
        stop: the step at which the loop stops (exclusive).
        running: ``state -> bool``, an extra condition to go on (None: always).

    Returns:
        ``(k, state)``: the first step not taken and the state there.
    """

    def cond(carry):
        k, s = carry
        go = k < stop
        return go if running is None else go & running(s)

    def body(carry):
        k, s = carry
        return k + 1, step(k, s)

    return jax.lax.while_loop(cond, body, (start, state))


def at_most_once(pred, fn: Callable, state):
    """``fn(state)`` where ``pred``, else ``state`` itself, as a loop that runs once
    or not at all.  Unlike a ``cond``, it writes ``state``'s buffers in place and
    costs nothing where ``pred`` is False: a ``cond`` gives XLA a new output buffer
    to fill, a copy of every leaf of ``state`` whichever branch runs."""

    def body(carry):
        return fn(carry[0]), jnp.zeros_like(carry[1])

    return jax.lax.while_loop(lambda carry: carry[1], body, (state, jnp.asarray(pred)))[0]


class Stepper:
    """What one step of one member is; the engine runs it.

    Subclasses are frozen dataclasses (hashable: they are static arguments of the
    compiled interval) with ``members`` (:data:`MAP` or :data:`VMAP`) and
    ``typed`` (False where a step draws random numbers shard_map does not track).
    """

    members: str = MAP
    typed: bool = True
    events: bool = False  # MAP only: the member's loop stops at events (step_or_event)

    def step(self, k, state, shared):  # pragma: no cover - interface
        """One step ``k`` of one member's ``state``, given the ``shared`` arrays."""
        raise NotImplementedError

    def step_or_event(self, k, state, shared):  # pragma: no cover - interface
        """``(state after step k, 0)``, or ``(state, code != 0)`` where step ``k`` is
        an event that :meth:`settle` records before the step is run again."""
        raise NotImplementedError

    def settle(self, k, state, code):  # pragma: no cover - interface
        """``state`` with the events ``code`` of step ``k`` recorded (0: unchanged)."""
        raise NotImplementedError

    def first(self, state):  # pragma: no cover - interface
        """The member's first step (its hand-off; 0 for plain training)."""
        raise NotImplementedError

    def running(self, state):  # pragma: no cover - interface
        """False once the member has stopped (diverged)."""
        raise NotImplementedError


def _interval(stepper: Stepper, carry, shared, start, stop):
    """The ensemble ``carry`` (leading member axis) through steps ``start .. stop-1``."""
    if stepper.members == MAP and stepper.events:
        return each_member(partial(_legs, stepper, shared, start, stop), carry)
    if stepper.members == MAP:

        def one(state):
            k0 = jnp.maximum(start, stepper.first(state))
            step = partial(_call, stepper, shared=shared)
            return iterate(step, state, k0, stop, stepper.running)[1]

        return each_member(one, carry)
    step = jax.vmap(partial(_call, stepper, shared=shared), in_axes=(None, 0))
    return iterate(step, carry, start, stop)[1]


def each_member(fn: Callable, carry):
    """``fn`` over the members of ``carry`` (leading axis), one after another
    (``lax.map``).  A single member (the usual wide run, one per device) runs
    without the map: its leaves are reshaped, which XLA does without a copy, where
    ``lax.map`` slices each leaf out of the carry and writes it back (at width
    2000, two 32 MB copies of ``W2`` per compiled call)."""
    leaves = jax.tree.leaves(carry)
    if leaves and all(leaf.shape[0] == 1 for leaf in leaves):
        out = fn(jax.tree.map(lambda a: a.reshape(a.shape[1:]), carry))
        return jax.tree.map(lambda a: a.reshape((1, *a.shape)), out)
    return jax.lax.map(fn, carry)


def _legs(stepper: Stepper, shared, start, stop, state):
    """One member through ``[start, stop)`` in legs: each runs the step loop until
    ``stop`` or an event, the event is settled outside the loop (so the per-step
    loop carries nothing it would copy at every step), and the next leg runs the
    event's step again."""

    def step(k, inner):
        return stepper.step_or_event(k, inner[0], shared)

    def inner_running(inner):
        return stepper.running(inner[0]) & (inner[1] == 0)

    def leg(outer):
        k, s = outer
        no_event = jnp.zeros_like(stepper.first(s), dtype=jnp.int32)  # varying, as the state
        k, (s, code) = iterate(step, (s, no_event), k, stop, inner_running)
        k = jnp.where(code != 0, k - 1, k)  # the event's step was not taken
        return k, stepper.settle(k, s, code)

    def go(outer):
        return (outer[0] < stop) & stepper.running(outer[1])

    k0 = jnp.maximum(start, stepper.first(state))
    return jax.lax.while_loop(go, leg, (k0, state))[1]


def _call(stepper: Stepper, k, state, shared):
    return stepper.step(k, state, shared)


@partial(jax.jit, static_argnames=("stepper", "mesh"), donate_argnames=("carry",))
def run_interval(carry, shared: Any, start, stop, *, stepper: Stepper, mesh):
    """One compiled call: every member of ``carry`` through ``[start, stop)``.

    Args:
        carry: the ensemble's loop state, every leaf with the member axis first
            (padded and placed by :func:`condensation.training.devices.place_members`);
            donated: its buffers become the result's (no copy of the weights per
            call), so the caller must not use it again.
        shared: a tuple of arrays every member uses (the data), replicated.
        start: first step of the interval (int64 scalar).
        stop: end of the interval (exclusive).
        stepper: the member step (:class:`Stepper`), static.
        mesh: the device mesh, or None for one device.

    Returns:
        The carry after the interval.
    """
    fn = partial(_interval, stepper)
    return over_members(fn, mesh, 3, typed=stepper.typed)(carry, shared, start, stop)
