"""Is a network in the small-initialisation regime, where the effective dynamics
predicts training?  ``rms f(x) / rms y`` at the initial parameters, and the
warning when it is too large."""

from __future__ import annotations

import warnings

import jax.numpy as jnp
import numpy as np

from condensation.core.activations import activation_fn
from condensation.core.network import forward

REGIME_RATIO = 0.05  # rms(f(x)) / rms(y) above this: outside the small-init regime


class RegimeWarning(UserWarning):
    """The initial state is too large for the small-initialisation regime."""


def regime_ratio(params, x, y, act, output_scale: float = 1.0) -> float:
    """``rms f(x) / rms y`` at the initial parameters: small in the effective regime.

    Args:
        params: the weight matrices ``[W1, ..., WL]``.
        x: inputs, shape ``(n, d)``; y: targets, shape ``(n,)``.
        act: the activation: a name (``"tanh"``), an ``Activation`` or a callable.
        output_scale: kappa, the output multiplier.

    Returns:
        The ratio (a float).
    """
    fn = activation_fn(act)
    f = output_scale * np.asarray(forward([jnp.asarray(p) for p in params], jnp.asarray(x), fn))
    return float(np.sqrt(np.mean(f**2)) / max(np.sqrt(np.mean(np.asarray(y) ** 2)), 1e-300))


def warn_if_large(params, x, y, act) -> float:
    """:func:`regime_ratio`, with a :class:`RegimeWarning` when it is too large
    (``act``: a name, an ``Activation`` or a callable).  Returns the ratio."""
    ratio = regime_ratio(params, x, y, act)
    warn_regime(ratio)
    return ratio


def warn_regime(ratio: float) -> None:
    """Warn (with the ratio) when ``rms f(x) / rms y`` leaves the small-init regime."""
    if ratio > REGIME_RATIO:
        warnings.warn(
            f"initial output is {ratio:.3g} x the targets' size (rms f / rms y > {REGIME_RATIO}): "
            "outside the small-initialisation regime; the effective dynamics may not predict "
            "training (lower init.scale)",
            RegimeWarning,
            stacklevel=3,
        )
