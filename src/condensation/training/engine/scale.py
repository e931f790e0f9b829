"""The output scale ``kappa`` of ``f = kappa g``, handled once for every trainer.

``R_kappa(theta) = kappa^2 R_1(theta; y / kappa)``: GD on ``f`` at ``lr`` takes the
same steps exactly as GD on ``g`` with targets ``y / kappa`` at ``lr kappa^2``;
only the loss (times ``kappa^2``) and the time ``t = step * lr`` differ.  A
trainer runs ``g`` (:func:`as_unit_scale`) and reports ``f`` (:func:`rescaled`).
"""

from __future__ import annotations

import dataclasses

import numpy as np


def as_unit_scale(y, lr: float, kappa: float):
    """``(y / kappa, lr kappa^2)``: the targets and learning rate of ``g``.

    Args:
        y: (n,) the targets of ``f``.
        lr: the learning rate of ``f``.
        kappa: the output scale, > 0.

    Returns:
        The targets and learning rate at which to train ``g``.
    """
    return np.asarray(y) / kappa, lr * kappa**2


def rescaled(result, lr: float, kappa: float, losses: tuple[str, ...] = ("snapshot_loss",)):
    """The result of ``f`` from the result of ``g`` (a dataclass with ``lr``): ``lr``
    replaced, the fields ``losses`` times ``kappa^2``; unchanged for ``kappa = 1``.

    Args:
        result: the run of ``g``.
        lr: the learning rate of ``f``.
        kappa: the output scale.
        losses: the names of the result's loss fields.

    Returns:
        The run of ``f``.
    """
    if kappa == 1.0:
        return result
    scaled = {name: getattr(result, name) * kappa**2 for name in losses}
    return dataclasses.replace(result, lr=float(lr), **scaled)
