"""The trainer's update rule: one optax ``GradientTransformation`` per optimizer.

``[train] optimizer``:

- ``gd``: full-batch gradient descent, ``theta <- theta - lr grad R`` (optax's
  ``sgd(lr)``: ``theta + (-lr) g``, the same floating-point result).
- ``sgd``: the same update with the gradient of a mini-batch of ``batch_size``
  samples (default ``min(32, n)``).
- ``momentum``: optax's ``sgd(lr, momentum, nesterov)``: heavy ball
  ``m <- g + beta m, theta <- theta - lr m`` (Nesterov: ``theta <- theta - lr (g +
  beta m)`` with the new ``m``); full batch unless ``batch_size`` is given.
- ``adam``: optax's ``adam(lr, b1, b2, eps=adam_eps)`` (defaults 0.9, 0.999,
  1e-8; ``adam_eps`` is Adam's denominator guard, not the init scale eps); full
  batch unless ``batch_size`` is given.

Mini-batches (:func:`batch_indices`): samples are drawn without replacement
within each epoch.  Epoch ``e`` uses the permutation
``jax.random.permutation(fold_in(fold_in(key(batch_seed), stream), e), n)`` and
is cut into ``n // batch_size`` consecutive batches; the ``n mod batch_size``
samples left at the end of the permutation are not used in that epoch (a fresh
permutation the next epoch gives every sample the same chance).  Step ``k`` is
batch ``k mod (n // batch_size)`` of epoch ``k // (n // batch_size)``.  ``stream``
is a per-member integer (the trainer uses each member's init seed): members
with the same stream see the same batches, so an eps sweep of one seed shares
one realisation of the noise.

Time is ``t = step * lr`` for every optimizer.  ``loss_k`` and the escape step
are always measured on the full-batch loss ``R(theta_k)``, not on the batch.

Theory's reach: the effective dynamics (THEORY §2) is derived for gradient
flow; full-batch GD with small lr follows it.  Mini-batch SGD's gradient is an
unbiased estimate of the full one, so at small lr its noise averages out over
many steps and it follows the same flow (checked by the ``optimizers``
experiment: the escape time of sgd at batch n/4 and n/16 against gd).  For
momentum and Adam the prediction is not a theorem: momentum rescales time
(about ``lr/(1 - beta)`` per step), and Adam divides by the gradient's size, so
its plateau does not follow the ``1/eps`` law at all.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import jax
import jax.numpy as jnp
import optax

# The optimizer names and which [train] keys each takes are config vocabulary.
from condensation.config.train_checks import DEFAULT_SGD_BATCH, OPTIMIZERS, SETTINGS

# What the effective-dynamics prediction is for each optimizer (summaries, figures).
THEORY_REACH = {
    "gd": "theorem: the effective dynamics is derived for gradient flow, which "
    "full-batch GD with small lr follows",
    "sgd": "averaged: mini-batch gradients are unbiased, so at small lr the noise "
    "averages out and SGD follows the same flow (checked empirically: escape time "
    "of sgd vs gd over batch sizes, experiment optimizers)",
    "momentum": "not a theorem: the effective prediction is derived for gradient "
    "flow, not for momentum (which rescales time by about 1/(1 - momentum))",
    "adam": "not a theorem: the effective prediction is derived for gradient flow, "
    "not for Adam (which normalises the gradient's size)",
}


@dataclass(frozen=True)
class Optimizer:
    """An optimizer and its settings (hashable: a static argument of the trainer).

    ``batch_size`` None means the full batch."""

    name: str = "gd"
    batch_size: int | None = None
    batch_seed: int = 0
    momentum: float = 0.9
    nesterov: bool = False
    b1: float = 0.9
    b2: float = 0.999
    adam_eps: float = 1e-8

    def __post_init__(self) -> None:
        if self.name not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.name!r}")
        if self.name == "gd" and self.batch_size is not None:
            raise ValueError("gd is full batch: batch_size must be None")

    @property
    def minibatch(self) -> bool:
        return self.batch_size is not None

    def transform(self, lr: float) -> optax.GradientTransformation:
        """The optax update rule at learning rate ``lr``."""
        if self.name in ("gd", "sgd"):
            return optax.sgd(lr)
        if self.name == "momentum":
            return optax.sgd(lr, momentum=self.momentum, nesterov=self.nesterov)
        return optax.adam(lr, b1=self.b1, b2=self.b2, eps=self.adam_eps)

    def settings(self) -> dict:
        """The name and the settings that apply to it (for summaries)."""
        d = asdict(self)
        keep = {"name"} | {k for k, opts in SETTINGS.items() if self.name in opts}
        return {k: v for k, v in d.items() if k in keep}

    @property
    def theory_reach(self) -> str:
        return THEORY_REACH[self.name]

    @property
    def effective_is_theorem(self) -> bool:
        return self.name == "gd"


def from_train_config(t, n: int) -> Optimizer:
    """The :class:`Optimizer` of a validated ``[train]`` section for ``n`` samples
    (``batch_size`` given larger than ``n`` is an InputError here, for data files
    whose ``n`` is known only once loaded)."""
    from condensation.errors import InputError

    name = getattr(t, "optimizer", "gd")
    given = {k: getattr(t, k, None) for k in SETTINGS}
    given = {k: v for k, v in given.items() if v is not None}
    if name == "sgd" and "batch_size" not in given:
        given["batch_size"] = min(DEFAULT_SGD_BATCH, n)
    b = given.get("batch_size")
    if b is not None and b > n:
        raise InputError(
            "train.batch_size", b, f"larger than the n = {n} samples", f"use 1 <= batch_size <= {n}"
        )
    return Optimizer(name=name, **given)


def batch_indices(opt: Optimizer, n: int, stream, k) -> jnp.ndarray:
    """Sample indices (batch_size,) of step ``k`` (see the module docstring)."""
    b = opt.batch_size
    per_epoch = n // b
    epoch, pos = k // per_epoch, k % per_epoch
    perm = epoch_permutation(opt, n, stream, epoch)
    return jax.lax.dynamic_slice(perm, (pos * b,), (b,))


def epoch_permutation(opt: Optimizer, n: int, stream, epoch) -> jnp.ndarray:
    """The permutation (n,) of the samples in ``epoch`` for member ``stream``."""
    key = jax.random.fold_in(jax.random.fold_in(jax.random.key(opt.batch_seed), stream), epoch)
    return jax.random.permutation(key, n)
