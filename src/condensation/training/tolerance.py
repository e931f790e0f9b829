"""Full-batch GD that reaches the end in every regime: to a loss tolerance or a step
budget, with the learning rate scaled to the initialisation (THEORY §8).

The phase diagrams train networks whose kernels differ by many orders of
magnitude across a grid of init scales (``lr`` fixed would diverge in one corner
and never leave the plateau in another).  Only the *path* of gradient flow
matters for the regime indicator ``RD_k`` (its value at the end and its max over
the run), and a positive step-size schedule only reparametrises time, so each
step here is

    lr_k = mult * min(lr0 / G(theta_k), lr0 / (kappa |z| g^(L-1))),
    G = max_i sum_j |K_ij| / n,   K_ij = <grad_theta f(x_i), grad_theta f(x_j)>

(derived here): ``G``, an upper bound on the top eigenvalue of the empirical
tangent kernel over ``n`` (from one forward and one backward pass), bounds
the Gauss-Newton curvature (large in the kernel regime), and
``kappa |z| g^(L-1)`` bounds the curvature of ``-kappa E`` near 0 (the plateau of
small initialisations, where ``G`` vanishes).  As Luo et al.'s code does, a step
that raises the loss is undone and halves ``mult``.  THEORY §8's reconstruction of
their rule, ``lr ~ lr0 sqrt(beta1 beta2) alpha``, is ``sqrt(m)`` times the
stable step at the NTK point (``beta1 = beta2 = 1``, ``alpha = sqrt(m)``), so it is
not used as is; the rule here reduces to ``lr ~ alpha^2 / (m (beta1^2 + beta2^2))``
in the kernel regime (for inputs of norm about 1).

Each member stops at the first of: ``loss <= tol * loss_0`` (``tolerance``), the
step budget (``budget``), ``mult`` halved 40 times in a row without an accepted
step or a non-finite loss (``diverged``).  A member that reached the budget with
``loss > (1 - plateau_drop) loss_0`` never left its plateau (``plateau``).
Members (seeds of one width) run one after another in one compiled call; the
learning-rate numbers are traced, so one compilation serves every cell of a grid.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from condensation.training.engine import iterate, tracks

STOPS = ("tolerance", "budget", "plateau", "diverged")
MAX_HALVINGS = 40  # consecutive rejected steps before a member counts as diverged


@dataclass(frozen=True)
class ToleranceResult:
    """Per member (axis 0): how it stopped and what the regime indicator says."""

    stop: list[str]  # one of STOPS
    steps: np.ndarray  # (E,) accepted + rejected steps taken
    time: np.ndarray  # (E,) sum of the accepted learning rates (gradient-flow time)
    loss_ratio: np.ndarray  # (E,) loss_final / loss_0
    rd_end: np.ndarray  # (E, L) RD_k at the end
    rd_max: np.ndarray  # (E, L) max over accepted steps of RD_k
    halvings: np.ndarray  # (E,) rejected steps
    params: list[np.ndarray]  # W_k (E, *shape) at the end


def _forward_backward(params, x, act, kappa):
    """Per-sample outputs and tangent-kernel factors in one pass, feature-major.

    Returns ``f`` (n,), ``hs`` = inputs of each layer ``h_{k-1}`` (m_{k-1}, n) and
    ``ds`` = backprop signals ``d f_i / d u_k`` of each layer's pre-activation
    (m_k, n): ``d f_i / d W_k = ds[k][:, i] hs[k][:, i]^T``."""
    hs, slopes = [x.T], []
    for w in params[:-1]:
        u = w @ hs[-1]
        h, dh = jax.jvp(act, (u,), (jnp.ones_like(u),))  # sigma(u), sigma'(u) elementwise
        hs.append(h)
        slopes.append(dh)
    f = kappa * (params[-1] @ hs[-1])[0]
    d = jnp.full((1, x.shape[0]), kappa, dtype=x.dtype)  # (1, n)
    ds = [d]
    for w, dh in zip(params[:0:-1], slopes[::-1]):
        d = (w.T @ d) * dh
        ds.append(d)
    return f, hs, ds[::-1]


def _member(p0, x, y, kappa, lr0, lr_cap, tol, max_steps, drop, *, act):
    n = x.shape[0]

    def loss(p):
        r = _forward_backward(p, x, act, kappa)[0] - y
        return 0.5 * jnp.mean(r * r)

    def grad_and_curvature(p):
        """The loss gradient and an upper bound on the top eigenvalue of the tangent
        kernel over n (the largest absolute row sum of the (n, n) Gram matrix)."""
        f, hs, ds = _forward_backward(p, x, act, kappa)
        r = (f - y) / n
        g = tuple((d * r) @ h.T for d, h in zip(ds, hs))
        gram = sum((d.T @ d) * (h.T @ h) for d, h in zip(ds, hs))  # (n, n)
        return g, jnp.max(jnp.sum(jnp.abs(gram), axis=1)) / n

    def rd(p):
        return jnp.stack(
            [jnp.sqrt(jnp.sum((w - w0) ** 2) / jnp.sum(w0 * w0)) for w, w0 in zip(p, p0)]
        )

    loss0 = loss(p0)
    level = tracks.exit_level(loss0, drop)  # left the plateau once the loss is below

    def running(s):
        _, lk, _, _, _, rej, _, _ = s
        return (lk > tol * loss0) & (rej < MAX_HALVINGS) & jnp.isfinite(lk)

    def step(k, s):
        p, lk, mult, t, rd_max, rej, n_rej, left = s
        g, curv = grad_and_curvature(p)
        lr = mult * jnp.minimum(lr0 / jnp.maximum(curv, 1e-300), lr_cap)
        new = tuple(w - lr * gw for w, gw in zip(p, g))
        ln = loss(new)
        ok = jnp.isfinite(ln) & (ln <= lk + 1e-12 * loss0)
        p = jax.tree.map(lambda a, b: jnp.where(ok, a, b), new, p)
        return (
            p,
            jnp.where(ok, ln, lk),
            jnp.where(ok, mult, 0.5 * mult),
            jnp.where(ok, t + lr, t),
            jnp.where(ok, jnp.maximum(rd_max, rd(new)), rd_max),
            jnp.where(ok, 0, rej + 1),
            n_rej + (~ok).astype(jnp.int64),
            left | (ok & (ln <= level)),
        )

    zero = jnp.zeros((), jnp.int64)
    s0 = (p0, loss0, jnp.ones_like(loss0), jnp.zeros_like(loss0),
          jnp.zeros(len(p0), loss0.dtype), zero, zero, loss0 <= level)  # fmt: skip
    # the engine's step loop, to the tolerance, the budget or 40 rejections in a row
    k, (p, lk, _, t, rd_max, rej, n_rej, left) = iterate(step, s0, zero, max_steps, running)
    return k, p, lk / loss0, t, rd(p), rd_max, rej, n_rej, left


@partial(jax.jit, static_argnames=("act",))
def _run(params, x, y, kappa, lr0, lr_cap, tol, max_steps, drop, *, act):
    one = partial(_member, act=act)
    return jax.lax.map(
        lambda p: one(p, x, y, kappa, lr0, lr_cap, tol, max_steps, drop), tuple(params)
    )


def train_to_tolerance(
    params0: Sequence[np.ndarray],
    x: np.ndarray,
    y: np.ndarray,
    *,
    act: Callable,
    slope_at_zero: float = 1.0,
    output_scale: float = 1.0,
    lr0: float = 0.5,
    tol: float = 1e-3,
    max_steps: int = 20000,
    plateau_drop: float = 0.1,
) -> ToleranceResult:
    """GD on ``R = 1/(2n) sum (kappa f(x_i) - y_i)^2`` for every member of ``params0``
    (W_k of shape (E, ...)), float64, with the step rule of the module docstring."""
    xj, yj = jnp.asarray(x, jnp.float64), jnp.asarray(y, jnp.float64)
    depth = len(params0)
    z_norm = float(np.linalg.norm(np.asarray(y) @ np.asarray(x) / x.shape[0]))
    drive = output_scale * z_norm * abs(slope_at_zero) ** (depth - 1)
    lr_cap = lr0 / drive if drive > 0 else np.inf
    k, p, ratio, t, rd_end, rd_max, rej, n_rej, left = _run(
        tuple(jnp.asarray(w, jnp.float64) for w in params0),
        xj,
        yj,
        jnp.float64(output_scale),
        jnp.float64(lr0),
        jnp.float64(lr_cap),
        jnp.float64(tol),
        jnp.int64(max_steps),
        jnp.float64(plateau_drop),
        act=act,
    )
    ratio, rej, left = np.asarray(ratio), np.asarray(rej), np.asarray(left)
    stop = []
    for i in range(len(ratio)):
        if not np.isfinite(ratio[i]) or rej[i] >= MAX_HALVINGS:
            stop.append("diverged")
        elif ratio[i] <= tol:
            stop.append("tolerance")
        else:
            stop.append("budget" if left[i] else "plateau")
    return ToleranceResult(
        stop=stop,
        steps=np.asarray(k),
        time=np.asarray(t),
        loss_ratio=ratio,
        rd_end=np.asarray(rd_end),
        rd_max=np.asarray(rd_max),
        halvings=np.asarray(n_rej),
        params=[np.asarray(w) for w in p],
    )
