"""Effective dynamics of deep networks (depth L >= 3) with the depth-L sign
conditions evaluated at every solver step (derived here; docs/open-questions.md).

The full form of :mod:`condensation.effective.system` already integrates any depth
(gradient ascent of ``E = W_L ... W_1 z``, homogeneous of degree L - 1, so
``T* ∝ eps^-(L-2)`` exactly for initial conditions ``eps G``); its per-step
diagnostics check THEORY §5's final-stage condition for depth 3 only.  This
module gives the depth-L diagnostics — the inner condition ``s_j v_j > 0`` and
each chain condition ``s_i s_j (M_k^T M_k)_ij >= 0`` (k = 3..L) of
:mod:`condensation.core.chain`, and the first layer's alignment with ``z`` — as
a system of the full form whose diagnostic function is replaced, plus the
per-step set memberships they define.
"""

from __future__ import annotations

import dataclasses
from functools import cache

import jax
import jax.numpy as jnp
import numpy as np

from condensation.core.activations import Activation
from condensation.core.alignment import abs_cos_to
from condensation.core.chain import chain_counts
from condensation.core.effective import full_field
from condensation.effective.blowup import homogeneous_polar
from condensation.effective.system import EffectiveSystem, build_system, full_diag


def chain_keys(depth: int) -> list[str]:
    """Per-step diagnostic names of the chain conditions: ``chain3_violations`` .. ``chainL_``."""
    return [f"chain{k}_violations" for k in range(3, depth + 1)]


@cache
def deep_diag(depth: int):
    """Diagnostics of the full form at depth L; args = (z, q0 list, Q0 list).

    The full form's (E, rho, drift of the conservation laws) plus, per step:
    ``fs_inner_violations`` (neurons with ``s_j v_j <= 0``), one
    ``chain{k}_violations`` per k = 3..L (pairs with a negative sign-corrected
    Gram entry), ``min_abs_cos`` and ``median_abs_cos`` of the rows of W1 with z.
    Counts are floats (the solver's unused save slots are filled with inf).
    """
    if depth < 3:
        raise ValueError(f"the chain conditions need depth >= 3, got {depth}")
    base = full_diag(depth, False)

    def diag(y, args):
        out = dict(base(y, args))
        z = args[0]
        n_inner, pairs = chain_counts(y, z)
        cos = abs_cos_to(y[0], z)
        out["min_abs_cos"] = jnp.min(cos)
        out["median_abs_cos"] = jnp.median(cos)
        out["fs_inner_violations"] = n_inner.astype(jnp.float64)
        for i, key in enumerate(chain_keys(depth)):
            out[key] = pairs[i].astype(jnp.float64)
        return out

    return diag


def _field(y, args):
    return full_field(y, args[0])


# The polar form of the full field, compiled: the solver evaluates it once per
# problem outside its compiled loop (the initial speed), which op by op cost about
# 25 ms a problem; inside the loop a compiled function is inlined as any other.
_compiled_polar = jax.jit(homogeneous_polar(_field))


def build_deep_system(params, z, *, activation: str | Activation | None = None) -> EffectiveSystem:
    """The full-form effective system of ``params`` (W1..WL, L >= 3) with the depth-L
    diagnostics of :func:`deep_diag`; solve it with :func:`condensation.effective.system.solve`
    or ``solve_batch`` (systems of one depth and shape share one compilation).  Its
    polar problem is the full form's, with the vector field compiled.

    Args:
        params: the weight matrices ``[W1, ..., WL]``.
        z: ``mean(y x)``, shape ``(d,)``.
        activation: a name (``"tanh"``) or an ``Activation``, as in
            :func:`condensation.effective.system.build_system`; None: ``g = 1``.

    Returns:
        The :class:`~condensation.effective.system.EffectiveSystem`.
    """
    system = build_system(params, z, activation=activation, form="full")
    prob = dataclasses.replace(system.problem(), polar=_compiled_polar)
    return dataclasses.replace(system, diag=deep_diag(system.depth), polar=prob)


def sign_condition_sets(steps: dict, depth: int) -> dict[str, np.ndarray]:
    """Per recorded state, membership of each set: ``full`` (every condition),
    ``inner`` (the inner condition alone), ``chain{k}`` (chain condition k alone).

    ``steps`` maps ``fs_inner_violations`` and ``chain{k}_violations`` to arrays
    over states (a solve's ``steps``, or counts computed on GD snapshots)."""
    inner = np.asarray(steps["fs_inner_violations"]) == 0
    out = {"full": inner.copy(), "inner": inner}
    for k, key in zip(range(3, depth + 1), chain_keys(depth)):
        ok = np.asarray(steps[key]) == 0
        out[f"chain{k}"] = ok
        out["full"] = out["full"] & ok
    return out


def sign_condition_counts(params, z) -> dict[str, np.ndarray]:
    """The per-state counts of :func:`deep_diag` for stacked states, in numpy (post hoc,
    no compilation): :func:`condensation.core.chain.chain_counts` with ``xp = numpy``.

    Args:
        params: ``[W1, ..., WL]``, every ``W_k`` of shape (..., *shape_k) (e.g. GD
            snapshots (E, K, ...)).
        z: ``mean(y x)``, shape (d,).

    Returns:
        ``{"fs_inner_violations": ..., "chain3_violations": ..., ...}``, arrays of
        shape (...).
    """
    ps = [np.asarray(w, dtype=float) for w in params]
    n_inner, pairs = chain_counts(ps, np.asarray(z, dtype=float), xp=np)
    out = {"fs_inner_violations": n_inner}
    for i, key in enumerate(chain_keys(len(ps))):
        out[key] = pairs[..., i]
    return out


__all__ = [
    "build_deep_system",
    "chain_keys",
    "deep_diag",
    "sign_condition_counts",
    "sign_condition_sets",
]
