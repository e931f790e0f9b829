"""What a blow-up solve takes and gives back: its :class:`Tolerances` and its
result, a :class:`Blowup` (T*, the status, the per-step record)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Tolerances:
    """Solver tolerances; ``rtol`` applies to the normalised state, so it is a
    relative accuracy of the whole trajectory, and ``t_tol`` ends a blow-up solve
    once the estimated remaining time is below ``t_tol * t``."""

    rtol: float = 1e-12
    atol: float = 1e-14
    t_tol: float = 1e-14
    max_steps: int = 20_000
    equilibrium_tol: float = 1e-11  # |F(u)| / |F(u0)| below this: an equilibrium
    max_time_factor: float = 1e7  # give up at t > this x the natural time scale
    norm_growth: float = 1e6  # degree-1 fields: stop at this norm growth

    def __post_init__(self):
        for name in ("rtol", "atol", "t_tol", "equilibrium_tol", "max_time_factor"):
            v = getattr(self, name)
            if not v > 0:
                raise ValueError(f"Tolerances.{name} must be > 0, got {v}")
        if self.max_steps < 10:
            raise ValueError(f"Tolerances.max_steps must be >= 10, got {self.max_steps}")


@dataclass(frozen=True)
class Blowup:
    """Result of one solve, in the original time ``t``.

    ``steps`` holds per-step arrays (trimmed to the steps taken): ``s``, ``t``,
    ``log_growth`` (``log |y|/|y0|``), ``rate`` (``d log|y| / dt``), ``T_est``
    (the remaining-time extrapolation of T*), and whatever the diagnostic
    function returned.
    """

    status: str
    blew_up: bool
    T_star: float  # NaN unless blew_up
    T_star_rel_error: float  # the solver's own estimate (see ``convergence``)
    degree: int
    time_scale: float  # |y0|^-(k-1): the unit of time of the solve
    n_steps: int
    steps: dict[str, np.ndarray] = field(repr=False)
    convergence: list[dict[str, float]] = field(repr=False)
    growth_rate: float = float("nan")  # degree 1: d log|y|/dt at the end
    time_to_norm: float = float("nan")  # degree 1: time to grow the norm by norm_growth
