"""Pure array mathematics: networks, losses, effective vector fields, invariants.

Nothing in here imports any other part of :mod:`condensation` except
:mod:`condensation.errors` (which imports nothing itself: an activation asked for by
an unknown name is an ``InputError``); every function takes arrays (and plain
callables or activation names) and returns arrays.
"""

from condensation.core.activations import ACTIVATIONS, Activation, get_activation
from condensation.core.effective import (
    energy,
    full_field,
    layer_energy_inputs,
    reduced_energy,
    reduced_field,
)
from condensation.core.invariants import (
    balance_matrices,
    neuron_balances,
    reduced_balance_matrices,
)
from condensation.core.network import forward, loss, target_direction

__all__ = [
    "ACTIVATIONS",
    "Activation",
    "balance_matrices",
    "energy",
    "forward",
    "full_field",
    "get_activation",
    "layer_energy_inputs",
    "loss",
    "neuron_balances",
    "reduced_balance_matrices",
    "reduced_energy",
    "reduced_field",
    "target_direction",
]
