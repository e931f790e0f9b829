"""The effective dynamics: systems, the blow-up solver, depth L, T* predictions.

``system`` builds the effective system of a network near the origin and solves it
through its blow-up; ``blowup`` is the solver; ``deep`` the depth-L chain;
``theory`` the closed-form T* predictions; ``condensed`` the condensed solutions.
``build_system``, ``solve`` and ``trajectory`` are re-exported here, so
``from condensation.effective import build_system`` keeps working.
"""

from condensation.effective.system import (
    EffectiveSystem,
    build_system,
    solve,
    solve_batch,
    trajectory,
)

__all__ = ["EffectiveSystem", "build_system", "solve", "solve_batch", "trajectory"]
