"""Whether a predicted blow-up can be fast-forwarded to on GD's step grid.

The T* predictions themselves are written once, in
:mod:`condensation.effective.predictions`; this module asks only the training
question: is ``T* / lr`` a step index GD can reach.
"""

from __future__ import annotations

import math

from condensation.effective import theory
from condensation.effective.blowup import Blowup

MAX_GRID_STEPS = 2**62  # step indices are int64: a T* / lr beyond this is off the grid


def beyond_step_grid(sol: Blowup, lr: float) -> bool:
    """True where a blow-up cannot be fast-forwarded to on GD's step grid.

    Args:
        sol: a member's solved blow-up (:class:`~condensation.effective.blowup.Blowup`).
        lr: GD's learning rate (one step is ``lr`` time units).

    Returns:
        True for ``T* / lr`` beyond :data:`MAX_GRID_STEPS` (or ``inf``), or a time
        unit so large that the second-order flow's scaled time ``t |y0|^(k-1)``
        underflows.
    """
    return not sol.T_star / lr < MAX_GRID_STEPS or not (
        sol.time_scale <= math.exp(theory.LOG_UNIT_LIMIT)
    )
