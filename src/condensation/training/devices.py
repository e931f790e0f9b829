"""Spreading an ensemble's members over JAX devices.

XLA runs one program on one core; ``import condensation`` exposes one JAX CPU
device per core (:mod:`condensation.jax_setup`), and the compiled trainers put
their members on those devices with ``shard_map``: the leading (member) axis of
the state is split, the data are replicated, and no device talks to another.
Ensembles are padded with copies of member 0 to a whole number per device.
Small jobs stay on one device: below ``SPREAD_MIN_FLOPS`` the spread program's
extra compilation (about a second) and gathers cost more than a second core
saves.  Results are the same either way (tests check it to 1e-12).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from condensation import jax_setup

MEMBER_AXIS = "members"
SPREAD_MIN_FLOPS = 2e10  # about 1-2 s of one core here


def member_mesh(n_members: int, flops: float | None = None) -> Mesh | None:
    """The 1-D mesh ``n_members`` members are spread over: one shard per device (at
    most one per member); None when there is one device or one member, or when
    the job's estimated ``flops`` (all members) are below ``SPREAD_MIN_FLOPS``."""
    if jax_setup.PROBLEM is not None:  # a bad CONDENSATION_CPU_DEVICES
        raise jax_setup.PROBLEM
    if flops is not None and flops < SPREAD_MIN_FLOPS:
        return None
    devices = jax.devices()
    k = min(len(devices), n_members)
    return None if k <= 1 else Mesh(np.array(devices[:k]), (MEMBER_AXIS,))


def place_members(tree, mesh: Mesh | None):
    """``tree`` (arrays with a leading member axis) padded with copies of member 0 to
    a multiple of the mesh size and split over its devices; unchanged without a mesh."""
    if mesh is None:
        return tree
    pad = -int(jax.tree.leaves(tree)[0].shape[0]) % mesh.size
    padded = jax.tree.map(lambda a: jnp.concatenate([a, jnp.repeat(a[:1], pad, axis=0)]), tree)
    return jax.device_put(padded, NamedSharding(mesh, P(MEMBER_AXIS)))


def on_host(a, n_members: int) -> np.ndarray:
    """The real members of an ensemble array (padding dropped), as numpy."""
    return np.asarray(a)[:n_members]


def over_members(fn: Callable, mesh: Mesh | None, n_shared: int, *, typed: bool = True):
    """``fn(members, *shared)`` run on every device with its share of ``members``
    (a pytree with a leading member axis) and all of the ``n_shared`` other
    arguments; ``fn`` itself without a mesh.  ``typed=False`` turns off
    shard_map's tracking of which values differ between devices, which loops
    written outside JAX core (diffrax's) do not declare; no device talks to
    another here, so nothing depends on it."""
    if mesh is None:
        return fn
    return jax.shard_map(
        fn,
        mesh=mesh,
        in_specs=(P(MEMBER_AXIS),) + (P(),) * n_shared,
        out_specs=P(MEMBER_AXIS),
        check_vma=typed,
    )
