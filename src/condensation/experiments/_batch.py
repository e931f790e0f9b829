"""Many effective solves in fixed-size compiled batches (shared by the open-question
experiments).

:func:`condensation.effective.system.solve_batch` compiles once per batch size and
shape; solving in chunks of ``CHUNK`` members (the last one padded with copies
of its first member, dropped afterwards) makes every call of one shape reuse one
compilation, whatever the number of trajectories, in quick and default runs and
across experiments of one process.
"""

from __future__ import annotations

import numpy as np

from condensation.effective.blowup import Blowup
from condensation.effective.system import EffectiveSystem, build_system, solve_batch

CHUNK = 32


def solve_chunked(systems: list[EffectiveSystem], chunk: int = CHUNK) -> list[Blowup]:
    """``solve_batch`` over ``systems`` (one form and shape) in chunks of ``chunk``."""
    out: list[Blowup] = []
    for i in range(0, len(systems), chunk):
        part = systems[i : i + chunk]
        pad = chunk - len(part)
        out.extend(solve_batch(part + [part[0]] * pad)[: len(part)])
    return out


def standard_normal_systems(
    rng: np.random.Generator, n: int, m: int, d: int
) -> tuple[list[EffectiveSystem], np.ndarray]:
    """``n`` reduced three-layer systems with ``B`` (m, d), ``W`` (m, m), ``a`` (1, m)
    drawn N(0, 1) (the dynamics is homogeneous: the scale only rescales time) and
    ``z = e_1``; returns ``(systems, z)``."""
    z = np.zeros(d)
    z[0] = 1.0
    systems = [
        build_system([rng.standard_normal((m, d)), rng.standard_normal((m, m)),
                      rng.standard_normal((1, m))], z, form="reduced")
        for _ in range(n)
    ]  # fmt: skip
    return systems, z
