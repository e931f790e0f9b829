"""Activation functions and the two numbers the small-initialisation theory needs.

The effective dynamics (THEORY §2) Taylor-expands the network at zero weights,
so it needs ``sigma(0) = 0`` and a non-zero, finite ``sigma'(0)``; it scales the
drive by ``sigma'(0) ** (depth - 1)``.  ReLU and ``x * tanh(x)`` are here as
contrasts: the first is not smooth at 0, the second has ``sigma'(0) = 0``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import jax.numpy as jnp


@dataclass(frozen=True)
class Activation:
    """An activation ``fn`` with its value and slope at zero."""

    name: str
    fn: Callable
    value_at_zero: float  # sigma(0)
    slope_at_zero: float  # sigma'(0); NaN when undefined (ReLU)
    smooth: bool  # analytic at 0, so the Taylor argument applies

    @property
    def effective_ok(self) -> bool:
        """True when the effective (Taylor) dynamics is defined for it."""
        return (
            self.smooth
            and self.value_at_zero == 0.0
            and self.slope_at_zero == self.slope_at_zero  # not NaN
            and self.slope_at_zero != 0.0
        )

    def why_not_effective(self) -> str | None:
        """A sentence saying why the effective dynamics refuses it, or None."""
        if self.effective_ok:
            return None
        if not self.smooth:
            return (
                f"activation '{self.name}' is not smooth at 0, so the Taylor expansion "
                "behind the effective dynamics does not apply"
            )
        if self.value_at_zero != 0.0:
            return f"activation '{self.name}' has sigma(0) = {self.value_at_zero} != 0"
        return (
            f"activation '{self.name}' has sigma'(0) = {self.slope_at_zero}; the effective "
            "dynamics needs sigma(0) = 0 and sigma'(0) != 0"
        )


def _xtanh(x):
    return x * jnp.tanh(x)


def _relu(x):
    return jnp.maximum(x, 0.0)


def _identity(x):
    return x


ACTIVATIONS: dict[str, Activation] = {
    a.name: a
    for a in (
        Activation("tanh", jnp.tanh, 0.0, 1.0, True),
        Activation("sin", jnp.sin, 0.0, 1.0, True),
        Activation("linear", _identity, 0.0, 1.0, True),
        Activation("xtanh", _xtanh, 0.0, 0.0, True),
        Activation("relu", _relu, 0.0, float("nan"), False),
    )
}


def get_activation(name: str) -> Activation:
    """Look an activation up by name; KeyError lists the known ones."""
    try:
        return ACTIVATIONS[name]
    except KeyError:
        raise KeyError(
            f"unknown activation {name!r}; known: {', '.join(sorted(ACTIVATIONS))}"
        ) from None
