"""The effective dynamics of a network from small initialisation (THEORY §2–§4).

Two forms, which must agree:

- ``full``: all weights ``(W1, ..., WL)``, gradient ascent of
  ``E = g^(L-1) W_L ... W_1 z`` (``g = sigma'(0)``); any depth L >= 2.  Depth 2 is
  linear (exponential growth), depth 3 quadratic (finite-time blow-up), depth L
  of degree L - 1.
- ``reduced`` (depth 3): ``(a, W, c)`` with ``c = B z``; the parts of the rows of
  ``B`` orthogonal to ``z`` are frozen and kept, so ``B(t)`` can be rebuilt.

Both are integrated by :mod:`condensation.blowup` through the singularity, with
the theory's quantities (energy, ``rho``, conservation laws, final-stage
condition, alignment with ``z``) evaluated at every solver step.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from functools import lru_cache

import jax
import jax.numpy as jnp
import numpy as np

from condensation.blowup import Blowup, Tolerances, blowup, blowup_batch, states_at
from condensation.core.activations import Activation
from condensation.core.effective import energy, full_field, reduced_energy, reduced_field
from condensation.core.final_stage import angle_matrix, inner_product_margins
from condensation.core.invariants import neuron_balances
from condensation.core.network import forward
from condensation.errors import InputError

FORMS = ("full", "reduced")
MATRIX_LAW_MAX_WIDTH = 256  # above this, matrix laws are checked at snapshots only
REGIME_RATIO = 0.05  # rms(f(x)) / rms(y) above this: outside the small-init regime


class RegimeWarning(UserWarning):
    """The initial state is too large for the small-initialisation regime."""


# ---- vector fields (module level: they are static arguments of compiled solves)


def _full_field(y, args):
    return full_field(y, args[0])


def _reduced_field(y, args):
    return reduced_field(y, args[0])


# ---- per-step diagnostics -------------------------------------------------------


def _laws_drift(q, q0):
    """max |q - q0| over neurons relative to the largest per-neuron term."""
    num = jnp.max(jnp.stack([jnp.max(jnp.abs(a - b)) for a, b in zip(q[0], q0)]))
    den = jnp.max(jnp.stack([jnp.max(t) for t in q[1]]))
    return num / den


def _three_layer_extras(a, w, c, min_abs_cos, with_angles):
    # counts as floats: the solver's unused save slots are filled with inf
    inner = jnp.sum(inner_product_margins(a, w, c) <= 0).astype(jnp.float64)
    out = {"fs_inner_violations": inner, "min_abs_cos": min_abs_cos}
    if with_angles:
        angles = jnp.sum(jnp.triu(angle_matrix(w, c) < 0, k=1))
        out["fs_angle_violations"] = angles.astype(jnp.float64)
    return out


@lru_cache(maxsize=None)
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
            cos = jnp.abs(c) / (jnp.linalg.norm(b, axis=1) * jnp.linalg.norm(z))
            out.update(_three_layer_extras(a[0], w, c, jnp.min(cos), with_matrix))
        return out

    return diag


@lru_cache(maxsize=None)
def reduced_diag(with_matrix: bool):
    """Diagnostics of the reduced form; args = (|z|^2, q0 list, Q0 list, |b_perp_j|^2, |B_perp|^2)."""

    def diag(y, args):
        zz, q0, big_q0, bperp2, bperp_total = args
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
        cos = jnp.abs(c) / jnp.sqrt(c * c + zz * bperp2)
        out.update(_three_layer_extras(a, w, c, jnp.min(cos), with_matrix))
        return out

    return diag


# ---- systems --------------------------------------------------------------------


@dataclass(frozen=True)
class EffectiveSystem:
    """An effective ODE ready to solve: field, initial state, diagnostics."""

    form: str
    depth: int
    z: np.ndarray  # the effective drive g^(L-1) z
    y0: tuple
    args: tuple
    fld: object
    diag: object
    b_perp: np.ndarray | None = None  # reduced form: rows of B orthogonal to z (frozen)

    @property
    def degree(self) -> int:
        return self.depth - 1

    @property
    def z_norm(self) -> float:
        return float(np.linalg.norm(self.z))

    def to_params(self, y) -> list[np.ndarray]:
        """Network parameters (W1..WL) from a state of this system (leading axes kept)."""
        if self.form == "full":
            return [np.asarray(w) for w in y]
        a, w, c = (np.asarray(v) for v in y)
        zhat = self.z / self.z_norm
        b = self.b_perp + c[..., :, None] * zhat / self.z_norm
        return [b, w, a[..., None, :]]


def _check_params(params) -> list[np.ndarray]:
    ps = [np.asarray(p, dtype=np.float64) for p in params]
    if len(ps) < 2:
        raise InputError("model.depth", len(ps), "must be >= 2", "give at least two weight matrices")
    for k, p in enumerate(ps):
        if not np.all(np.isfinite(p)):
            raise InputError(f"W{k + 1}", "non-finite", "has NaN/inf entries", "fix the parameters")
    return ps


def build_system(
    params, z, *, activation: Activation | None = None, form: str = "full"
) -> EffectiveSystem:
    """The effective system of a network with parameters ``params`` on data with ``z``.

    ``activation`` supplies ``g = sigma'(0)``; activations with ``sigma(0) != 0`` or
    ``sigma'(0) = 0`` (or not smooth at 0, like ReLU) are refused.
    """
    if form not in FORMS:
        raise InputError("form", form, "unknown effective form", f"use one of {', '.join(FORMS)}")
    ps = _check_params(params)
    depth = len(ps)
    gain = 1.0
    if activation is not None:
        why = activation.why_not_effective()
        if why is not None:
            raise InputError(
                "model.activation", activation.name, why,
                "use a smooth activation with sigma(0) = 0, sigma'(0) != 0 (tanh, sin)",
            )
        gain = activation.slope_at_zero ** (depth - 1)
    z_eff = gain * np.asarray(z, dtype=np.float64)
    with_matrix = max(p.shape[0] for p in ps[:-1]) <= MATRIX_LAW_MAX_WIDTH
    if form == "full":
        q0 = [np.asarray(q) for q in neuron_balances(ps)]
        big_q0 = [ps[k + 1].T @ ps[k + 1] - ps[k] @ ps[k].T for k in range(depth - 1)]
        return EffectiveSystem(
            "full", depth, z_eff, tuple(ps), (z_eff, q0, big_q0), _full_field,
            full_diag(depth, with_matrix),
        )
    if depth != 3:
        raise InputError("form", form, f"the reduced form is for depth 3, got depth {depth}",
                         'use form = "full"')
    b, w, a = ps
    zz = float(z_eff @ z_eff)
    if zz == 0:
        raise InputError("data", "z = 0", "no effective drive", "labels must correlate with inputs")
    c = b @ z_eff
    b_perp = b - np.outer(c, z_eff) / zz
    a = a[0]
    q0 = [a * a - np.sum(w * w, axis=1), np.sum(w * w, axis=0) - c * c / zz]
    big_q0 = [np.outer(a, a) - w @ w.T, w.T @ w - np.outer(c, c) / zz]
    bperp2 = np.sum(b_perp**2, axis=1)
    return EffectiveSystem(
        "reduced", 3, z_eff, (a, w, c),
        (zz, q0, big_q0, bperp2, float(np.sum(bperp2))),
        _reduced_field, reduced_diag(with_matrix), b_perp,
    )


def regime_ratio(params, x, y, act) -> float:
    """``rms f(x) / rms y`` at the initial parameters: small in the effective regime."""
    f = np.asarray(forward([jnp.asarray(p) for p in params], jnp.asarray(x), act))
    return float(np.sqrt(np.mean(f**2)) / max(np.sqrt(np.mean(np.asarray(y) ** 2)), 1e-300))


def warn_if_large(params, x, y, act) -> float:
    ratio = regime_ratio(params, x, y, act)
    if ratio > REGIME_RATIO:
        warnings.warn(
            f"initial output is {ratio:.3g} x the targets' size (rms f / rms y > {REGIME_RATIO}): "
            "outside the small-initialisation regime; the effective dynamics may not predict training",
            RegimeWarning,
            stacklevel=2,
        )
    return ratio


def solve(system: EffectiveSystem, tol: Tolerances = Tolerances()) -> Blowup:
    """Integrate one system through its blow-up (or to an equilibrium / norm)."""
    return blowup(system.fld, system.y0, system.degree, system.args, diag=system.diag, tol=tol)


def solve_batch(systems: list[EffectiveSystem], tol: Tolerances = Tolerances()) -> list[Blowup]:
    """Systems of the same form and shapes (an ensemble), in one vmapped solve."""
    first = systems[0]
    if len(systems) == 1 or first.z_norm == 0:
        return [solve(s, tol) for s in systems]
    y0s = jax.tree.map(lambda *xs: np.stack(xs), *[s.y0 for s in systems])
    args = jax.tree.map(lambda *xs: np.stack(xs), *[s.args for s in systems])
    return blowup_batch(
        first.fld, y0s, first.degree, args, diag=first.diag, tol=tol, args_batched=True
    )


def trajectory(system: EffectiveSystem, sol: Blowup, times, tol: Tolerances = Tolerances()):
    """Network parameters at the given times (before T*): ``(t_actual, [W1..WL])``."""
    t, y = states_at(system.fld, system.y0, system.degree, sol, times, system.args, tol=tol)
    return t, system.to_params(y)


__all__ = [
    "EffectiveSystem",
    "FORMS",
    "RegimeWarning",
    "blowup_batch",
    "build_system",
    "regime_ratio",
    "solve",
    "solve_batch",
    "trajectory",
    "warn_if_large",
]
