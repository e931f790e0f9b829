"""Per-step diagnostics of the full and reduced forms: energy, ``rho``, drift of
the conservation laws, the final-stage condition (depth 3) and the alignment of
the first layer with ``z``, evaluated by the blow-up solver at every step."""

from __future__ import annotations

from functools import cache

import jax.numpy as jnp

from condensation.core.alignment import abs_cos_reduced, abs_cos_to
from condensation.core.effective import energy, reduced_energy
from condensation.core.final_stage import (
    angle_matrix,
    count_angle_violations,
    count_inner_violations,
    inner_product_margins,
)
from condensation.core.invariants import neuron_balances


def _laws_drift(q, q0):
    """max |q - q0| over neurons relative to the largest per-neuron term."""
    num = jnp.max(jnp.stack([jnp.max(jnp.abs(a - b)) for a, b in zip(q[0], q0)]))
    den = jnp.max(jnp.stack([jnp.max(t) for t in q[1]]))
    return num / den


def _three_layer_extras(a, w, c, min_abs_cos, with_angles):
    # counts as floats: the solver's unused save slots are filled with inf
    inner = count_inner_violations(inner_product_margins(a, w, c)).astype(jnp.float64)
    out = {"fs_inner_violations": inner, "min_abs_cos": min_abs_cos}
    if with_angles:
        angles = count_angle_violations(angle_matrix(w, c))
        out["fs_angle_violations"] = angles.astype(jnp.float64)
    return out


@cache
def full_diag(depth: int, with_matrix: bool):
    """Diagnostics of the full form; args = (z, q0 list, Q0 list)."""

    def diag(y, args):
        z, q0, big_q0 = args[0], args[1], args[2]
        rho = sum(jnp.sum(w * w) for w in y)
        e = energy(y, z)
        terms = [
            jnp.sum(y[k + 1] ** 2, axis=0) + jnp.sum(y[k] ** 2, axis=1) for k in range(depth - 1)
        ]
        out = {
            "E": e,
            "rho": rho,
            "law_drift": _laws_drift((neuron_balances(y), terms), q0),
        }
        if with_matrix:
            mats = [y[k + 1].T @ y[k + 1] - y[k] @ y[k].T for k in range(depth - 1)]
            num = jnp.max(jnp.stack([jnp.linalg.norm(m - m0) for m, m0 in zip(mats, big_q0)]))
            out["matrix_law_drift"] = num / rho
        if depth == 3:
            b, w, a = y
            c = b @ z
            cos = abs_cos_to(b, z, dot=c)
            out.update(_three_layer_extras(a[0], w, c, jnp.min(cos), with_matrix))
        return out

    return diag


@cache
def reduced_diag(with_matrix: bool):
    """Diagnostics of the reduced form; args = (zz, q0, Q0, |b_perp_j|^2, |B_perp|^2, masks).

    ``masks = (active a/W rows, active c/W columns)``: zero-padded neurons (an
    exact invariant subspace) are left out of the per-neuron quantities.
    """

    def diag(y, args):
        zz, q0, big_q0, bperp2, bperp_total, (act2, act1) = args
        a, w, c = y
        rho = jnp.sum(a * a) + jnp.sum(w * w) + jnp.sum(c * c) / zz + bperp_total
        rows, cols = jnp.sum(w * w, axis=1), jnp.sum(w * w, axis=0)
        q = [a * a - rows, cols - c * c / zz]
        terms = [a * a + rows, cols + c * c / zz]
        out = {
            "E": reduced_energy(y),
            "rho": rho,
            "law_drift": _laws_drift((q, terms), q0),
        }
        if with_matrix:
            mats = [jnp.outer(a, a) - w @ w.T, w.T @ w - jnp.outer(c, c) / zz]
            num = jnp.max(jnp.stack([jnp.linalg.norm(m - m0) for m, m0 in zip(mats, big_q0)]))
            out["matrix_law_drift"] = num / rho
        cos = abs_cos_reduced(c, zz, bperp2)
        inner = count_inner_violations(inner_product_margins(a, w, c), act1).astype(jnp.float64)
        out["fs_inner_violations"] = inner
        out["min_abs_cos"] = jnp.min(jnp.where(act1, cos, jnp.inf))
        if with_matrix:
            pairs = count_angle_violations(angle_matrix(w, c), act1)
            out["fs_angle_violations"] = pairs.astype(jnp.float64)
        return out

    return diag
