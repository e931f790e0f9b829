"""The network trainer's plug-in of the engine: its loss, update and watches.

The loss is written with activations feature-major, (m_k, n), so the first
layer's products with the shared inputs need no transposes (autodiff then needs
none either), or sample-major, (n, m_k), at hidden widths from
:data:`SAMPLE_MAJOR_WIDTH` on, where the transposed (m x m) product of the
backward pass costs more (:func:`layout_for`); it equals
:func:`condensation.core.network.loss` up to rounding.  A step costs about three
(n x m) @ (m x m) products per hidden-to-hidden layer and little else.

The update is an optax ``GradientTransformation`` (:mod:`condensation.training.optimizers`):
``gd`` (the default) is ``theta + (-lr) g``, bit for bit the plain GD step; ``sgd``,
``momentum`` and ``adam`` carry their optax state and, for mini-batches, the
epoch's sample permutation in the member's ``aux`` (:class:`OptCarry`).
``loss_k``, the escape step and the final-stage check are always those of the
full-batch loss.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from condensation.core.alignment import median_abs_cos
from condensation.core.final_stage import watch_final_stage, witness_pairs
from condensation.core.network import loss as loss_fn
from condensation.training.engine import MAP, Model, each_member
from condensation.training.optimizers import Optimizer, epoch_permutation

# From this hidden width on, activations are kept sample-major: the backward
# product is then D @ W rather than W^T @ D, a transposed (m x m) operand that
# XLA's CPU dots take 10-15 % longer over (float64, n = 100: 14.4 against 16.5 ms
# per step at width 1000, 55 against 65 at 2000); below it feature-major is
# faster (0.32 against 0.43 ms at width 100, 1.46 against 1.60 at 300).
SAMPLE_MAJOR_WIDTH = 512
LAYOUTS = ("feature", "sample")


def layout_for(params) -> str:
    """``"sample"`` where a hidden width (rows of a non-output layer) reaches
    :data:`SAMPLE_MAJOR_WIDTH`, else ``"feature"``."""
    wide = max(int(w.shape[-2]) for w in params[:-1]) >= SAMPLE_MAJOR_WIDTH
    return "sample" if wide else "feature"


def residual(params, x, y, act: Callable, layout: str = "feature"):
    """``f(x_i) - y_i`` of one network, activations kept ``"feature"``-major
    (``h_k^T``, (m_k, n): the first layer's products with the shared inputs need
    no transposes) or ``"sample"``-major ((n, m_k))."""
    if layout not in LAYOUTS:
        raise ValueError(f"layout {layout!r}: expected one of {LAYOUTS}")
    if layout == "sample":
        h = x
        for w in params[:-1]:
            h = act(h @ w.T)  # (n, m_k)
        return (h @ params[-1].T)[:, 0] - y
    h = x.T
    for w in params[:-1]:
        h = act(w @ h)  # (m_k, n)
    return (params[-1] @ h)[0] - y


def trainer_loss(params, x, y, act: Callable, layout: str = "feature"):
    """``R`` of one network (activations laid out as :func:`residual` says).
    Same value as :func:`condensation.core.network.loss` up to rounding."""
    r = residual(params, x, y, act, layout)
    return 0.5 * jnp.mean(r * r)


_loss_and_grad = jax.value_and_grad(trainer_loss)
_grad = jax.grad(trainer_loss)


def weighted_batch_loss(params, x, y, weights, act: Callable, layout: str = "feature"):
    """``(0.5 sum_i weights_i r_i^2, R)``: a mini-batch loss (weights 1/b on the
    batch, 0 elsewhere) and, from the same forward pass, the full-batch loss."""
    r = residual(params, x, y, act, layout)
    return 0.5 * jnp.sum(weights * r * r), 0.5 * jnp.mean(r * r)


_weighted_grad = jax.grad(weighted_batch_loss, has_aux=True)


class OptCarry(NamedTuple):
    """The optimizer's part of one member's loop state (every leaf has the member
    axis in the ensemble carry)."""

    state: Any  # optax state (empty for gd and sgd)
    stream: jnp.ndarray  # () int: the member's mini-batch stream
    perm: jnp.ndarray  # (n,) int: this epoch's sample permutation; (0,) for full batch


@dataclass(frozen=True)
class NetworkModel(Model):
    """Ensembles of networks ``W_L sigma(... sigma(W_1 x))``; shared arrays
    ``(x, y, z)``, ``z = mean(y x)``.  Members run one after another
    (:data:`~condensation.training.engine.MAP`): a member's weights and
    activations stay in the core's cache for the whole interval."""

    act: Callable
    lr: float
    track_final_stage: bool
    opt: Optimizer
    layout: str = "feature"  # of the activations: :func:`layout_for`

    members = MAP

    @property
    def typed(self) -> bool:  # random.permutation does not declare its values as varying
        return not self.opt.minibatch

    def gradient(self, k, params, o: OptCarry, x, y):
        """Full-batch loss at ``params`` and the gradient the update uses."""
        act, opt, lay = self.act, self.opt, self.layout
        if not opt.minibatch:
            loss, g = _loss_and_grad(params, x, y, act=act, layout=lay)
            return loss, g, o
        n, b = x.shape[0], opt.batch_size
        pos = k % (n // b)
        perm = jax.lax.cond(
            pos == 0,
            lambda: epoch_permutation(opt, n, o.stream, k // (n // b)).astype(o.perm.dtype),
            lambda: o.perm,
        )
        idx = jax.lax.dynamic_slice(perm, (pos * b,), (b,))
        if 3 * b > 2 * n:  # one pass over all n, the off-batch samples weighted 0
            w = jnp.zeros(n, x.dtype).at[idx].set(1.0 / b)
            g, loss = _weighted_grad(params, x, y, w, act=act, layout=lay)
        else:  # the full-batch loss_k (2 n flops per weight) and the batch's gradient (6 b)
            loss = trainer_loss(params, x, y, act, lay)
            g = _grad(params, x[idx], y[idx], act=act, layout=lay)
        return loss, g, o._replace(perm=perm)

    def update(self, k, params, aux: OptCarry, shared):
        x, y, _ = shared
        loss, g, aux = self.gradient(k, params, aux, x, y)
        updates, state = self.opt.transform(self.lr).update(g, aux.state, params)
        if self.opt.name not in ("gd", "sgd"):
            return loss, updates, aux._replace(state=state), aux  # applied as optax does
        # (s)gd's update is (-lr) g: max|u| = lr max|g| exactly (rounding is monotone),
        # read from the gradient, so the updates are never written out for the test
        sizes = [self.lr * jnp.max(jnp.abs(leaf), initial=0) for leaf in jax.tree.leaves(g)]
        return loss, updates, aux._replace(state=state), aux, sizes

    def alignment(self, params, shared):
        return median_abs_cos(params[0], shared[2])

    def watch(self, k, params, watch, shared, alive):
        """The first step in the final-stage set (depth 3), checked until the member
        first enters it, at a fraction of a gradient's cost: the (m1 x m1) Gram
        matrix is formed only in steps where the inner-product constraint holds
        and none of the last violating pairs still violates
        (:func:`condensation.core.final_stage.watch_final_stage`)."""
        if not self.track_final_stage:
            return watch
        b, w, a = params
        outside = watch.step < 0  # (returned as the False of the other branch)
        inside, pairs = jax.lax.cond(
            outside,
            lambda: watch_final_stage(a[0], w, b @ shared[2], watch.pairs),
            lambda: (outside, watch.pairs),
        )
        return FinalStageWatch(jnp.where(alive & inside, k, watch.step), pairs)


class FinalStageWatch(NamedTuple):
    """The network model's per-member watch: the final-stage entry step (-1 before)
    and the violating column pairs it tries first."""

    step: Any  # (E,) int64
    pairs: Any  # (E, K, 2) int32

    @classmethod
    def start(cls, step, m1: int, place):
        """The watch of members whose entry step is ``step`` (E,), no witnesses yet;
        ``place`` puts the pairs where the members are."""
        return cls(step, place(witness_pairs(m1, int(step.shape[0]))))


@partial(jax.jit, static_argnames=("act",))
def ensemble_losses(params, x, y, *, act):
    """(E,) :func:`condensation.core.network.loss` of every member of ``params``:
    vmapped, or for wide networks (:func:`layout_for` says ``"sample"``) one member
    after another, where the vmapped (n x m) @ (m x m) products become batched
    products that XLA's CPU dots run at a third of the speed (width 2000: 57
    against 22 ms, as long as a whole GD step, at every snapshot).  The two give
    the same bits (checked on widths 7 to 600, depths 2 to 4)."""
    if layout_for(params) == "sample":
        return each_member(lambda p: loss_fn(p, x, y, act), params)
    return jax.vmap(lambda p: loss_fn(p, x, y, act))(params)
