"""Pure array mathematics: networks, losses, effective vector fields, invariants.

Nothing in here imports any other part of :mod:`condensation` except
:mod:`condensation.errors` (which imports nothing itself: an activation asked for by
an unknown name is an ``InputError``); every function takes arrays (and plain
callables or activation names) and returns arrays.
"""

from condensation.core.activations import ACTIVATIONS, Activation, get_activation
from condensation.core.alignment import abs_cos, abs_cos_to, median_abs_cos
from condensation.core.effective import (
    energy,
    full_field,
    layer_energy_inputs,
    reduced_energy,
    reduced_field,
)
from condensation.core.final_stage import final_stage_counts, final_stage_holds
from condensation.core.invariants import (
    balance_matrices,
    neuron_balances,
    reduced_balance_matrices,
)
from condensation.core.network import forward, loss, target_direction

__all__ = [
    "ACTIVATIONS",
    "Activation",
    "abs_cos",
    "abs_cos_to",
    "balance_matrices",
    "energy",
    "final_stage_counts",
    "final_stage_holds",
    "forward",
    "full_field",
    "get_activation",
    "layer_energy_inputs",
    "loss",
    "median_abs_cos",
    "neuron_balances",
    "reduced_balance_matrices",
    "reduced_energy",
    "reduced_field",
    "target_direction",
]
