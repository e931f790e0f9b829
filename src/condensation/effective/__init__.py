"""The effective dynamics: systems, the blow-up solver, depth L, T* predictions.

``system`` builds the effective system of a network near the origin and solves it
(its per-step ``diagnostics``, the ``spectral`` form, the ``init_regime`` check);
``blowup`` is the solver (``polar`` variables, ``solution`` types, ``states`` at
chosen times); ``deep`` the depth-L chain; ``theory`` the closed forms (bounds on
T*, the scaling law); ``predictions`` each member's T* (one implementation, used
by training, the commands and the experiments); ``condensed`` the condensed
solutions.  ``build_system``, ``solve`` and ``trajectory`` are re-exported here, so
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
