"""Activation functions and the two numbers the small-initialisation theory needs.

The effective dynamics (THEORY §2) Taylor-expands the network at zero weights,
so it needs ``sigma(0) = 0`` and a non-zero, finite ``sigma'(0)``; it scales the
drive by ``sigma'(0) ** (depth - 1)``.  ReLU and ``x * tanh(x)`` are here as
contrasts: the first is not smooth at 0, the second has ``sigma'(0) = 0``.

:func:`get_activation` is the one resolver from a name to an :class:`Activation`
(it imports :class:`condensation.errors.InputError`, a leaf module, for its
one-line refusal of an unknown name).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import jax.numpy as jnp

from condensation.errors import InputError


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


def get_activation(activation: str | Activation) -> Activation:
    """The one resolver of activations: a name (``"tanh"``) or an :class:`Activation`.

    Every public function that takes an activation passes it through here, so a
    name works wherever an object does.

    Args:
        activation: a key of :data:`ACTIVATIONS` (``"tanh"``, ``"sin"``,
            ``"linear"``, ``"xtanh"``, ``"relu"``) or an :class:`Activation`
            (returned as given).

    Returns:
        The :class:`Activation`.

    Raises:
        InputError: an unknown name, or neither a name nor an Activation (one
            line listing the known names).

    >>> get_activation("tanh").slope_at_zero
    1.0
    """
    if isinstance(activation, Activation):
        return activation
    if isinstance(activation, str) and activation in ACTIVATIONS:
        return ACTIVATIONS[activation]
    problem = (
        "unknown activation"
        if isinstance(activation, str)
        else f"expected an activation name or an Activation, got {type(activation).__name__}"
    )
    raise InputError(
        "activation", activation, problem, f"use one of {', '.join(sorted(ACTIVATIONS))}"
    )


def activation_fn(activation: str | Activation | Callable) -> Callable:
    """The function ``sigma`` of an activation given by name, as an
    :class:`Activation` (resolved by :func:`get_activation`), or as a plain callable
    (returned as given).

    Args:
        activation: ``"tanh"``, an :class:`Activation`, or a callable ``sigma``.

    Returns:
        The callable ``sigma``.
    """
    if callable(activation) and not isinstance(activation, Activation):
        return activation
    return get_activation(activation).fn
