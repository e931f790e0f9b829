"""The one training engine: a compiled loop driver every trainer plugs into.

- :mod:`.loop`: :func:`iterate`, the one compiled step loop, and
  :func:`run_interval`, an ensemble's members over an interval of steps (device
  spread, ``map`` or ``vmap`` layout);
- :mod:`.tracks`: the escape, plateau-exit, peak-alignment and divergence rules;
- :mod:`.gd`: the GD member step (divergence freeze, rules, hand-off) and
  :func:`drive`, the snapshot intervals with chunks, checkpoint and resume;
- :mod:`.scale`: the output scale ``kappa``.

The network trainer (:mod:`condensation.training.network`), the matrix trainer
(:mod:`condensation.matrix.training`), train-to-tolerance
(:mod:`condensation.training.tolerance`) and fast-forward's depth-2 map
(:mod:`condensation.training.fastforward`) supply only their loss, step and
measurements.
"""

from condensation.training.engine.gd import (
    GDStep,
    Handoff,
    Member,
    Model,
    before_handoff,
    check_snapshot_steps,
    drive,
    layout,
    snapshot_steps,
    start_from,
)
from condensation.training.engine.loop import (
    MAP,
    VMAP,
    Stepper,
    each_member,
    iterate,
    run_interval,
)
from condensation.training.engine.tracks import Track

__all__ = [
    "MAP",
    "VMAP",
    "GDStep",
    "Handoff",
    "Member",
    "Model",
    "Stepper",
    "Track",
    "before_handoff",
    "check_snapshot_steps",
    "drive",
    "each_member",
    "iterate",
    "layout",
    "run_interval",
    "snapshot_steps",
    "start_from",
]
