"""The effective dynamics of a network from small initialisation (THEORY §2–§4).

Two forms, which must agree:

- ``full``: all weights ``(W1, ..., WL)``, gradient ascent of
  ``E = g^(L-1) W_L ... W_1 z`` (``g = sigma'(0)``); any depth L >= 2.  Depth 2 is
  linear (exponential growth), depth 3 quadratic (finite-time blow-up), depth L
  of degree L - 1.
- ``reduced`` (depth 3): ``(a, W, c)`` with ``c = B z``; the parts of the rows of
  ``B`` orthogonal to ``z`` are frozen and kept, so ``B(t)`` can be rebuilt.
- ``spectral`` (depth 3, derived here): the conservation laws close a
  second-order system for ``c`` alone, diagonal in the eigenbasis of the
  conserved matrix ``W^T W - c c^T/|z|^2``; each step costs O(m1), so T* of a
  width-1000 network takes milliseconds after one eigendecomposition.  It
  tracks ``c`` and ``c'`` (hence E, rho, the inner-product constraint and the
  alignment with z) but not ``W``.

Both are integrated by :mod:`condensation.effective.blowup` through the singularity, with
the theory's quantities (energy, ``rho``, conservation laws, final-stage
condition, alignment with ``z``) evaluated at every solver step.
"""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass
from functools import cache

import jax.numpy as jnp
import numpy as np

from condensation.core.activations import Activation, activation_fn, get_activation
from condensation.core.alignment import abs_cos_reduced, abs_cos_to
from condensation.core.effective import energy, full_field, reduced_energy, reduced_field
from condensation.core.final_stage import (
    angle_matrix,
    count_angle_violations,
    count_inner_violations,
    inner_product_margins,
    sign_margins,
)
from condensation.core.invariants import neuron_balances
from condensation.core.network import forward
from condensation.effective.blowup import (
    Blowup,
    PolarProblem,
    Tolerances,
    polar_problem,
    solve_polar,
    solve_polar_batch,
    states_at,
)
from condensation.errors import InputError

FORMS = ("full", "reduced", "spectral")
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


# ---- the spectral form (depth 3): a closed second-order system for c alone ----
#
# With kappa = |c|^2 - |z|^2 |a|^2 and K0 = W^T W - c c^T / |z|^2 (both conserved),
#     c'' = (2 |c|^2 - kappa) c + |z|^2 K0 c,
# which is diagonal in the eigenbasis of K0.  Polar variables: c = e^R u,
# c' = e^(2R) w, ds = e^R dt, dR/ds = <u, w>; every right-hand side costs O(m1).


def _spectral_polar(u, r, args):
    uc, w = u
    lam, kappa, zz, r0 = args[0], args[1], args[2], args[3]
    e2 = jnp.exp(-2.0 * (r0 + r))
    rate = uc @ w
    acc = (2.0 * (uc @ uc) - kappa * e2) * uc + zz * e2 * lam * uc
    return (w - rate * uc, acc - 2.0 * rate * w), rate


def _spectral_lift(u, big_r, args):
    uc, w = u
    return (jnp.exp(big_r) * uc, jnp.exp(2.0 * big_r) * w)


def _spectral_diag(y, args):
    lam, kappa, zz, r0, vecs, bperp2, rho_const = args
    c_hat, p_hat = y
    c, p = vecs @ c_hat, vecs @ p_hat
    # v = W^T a = c' / |z|^2: p is a positive multiple of v
    inner = count_inner_violations(sign_margins(p, c)).astype(jnp.float64)
    return {
        "E": (c_hat @ p_hat) / zz,
        "rho": 3.0 * (c_hat @ c_hat) / zz + rho_const,
        "fs_inner_violations": inner,
        "min_abs_cos": jnp.min(abs_cos_reduced(c, zz, bperp2)),
    }


def _spectral_system(b, w, a, z_eff) -> EffectiveSystem:
    zz = float(z_eff @ z_eff)
    c0, a0 = b @ z_eff, a[0]
    p0 = zz * (w.T @ a0)
    lam, vecs = np.linalg.eigh(w.T @ w - np.outer(c0, c0) / zz)
    kappa = float(c0 @ c0 - zz * (a0 @ a0))
    c_hat, p_hat = vecs.T @ c0, vecs.T @ p0
    n0 = float(np.linalg.norm(c_hat))
    if n0 == 0:
        raise InputError("W1", "B z = 0", "no first-layer neuron sees z", "use a random init")
    b_perp = b - np.outer(c0, z_eff) / zz
    bperp2 = np.sum(b_perp**2, axis=1)
    rho_const = float(np.sum(lam) + np.sum(bperp2) - kappa / zz)  # tr K0 + |B_perp|^2 - kappa/|z|^2
    args = (lam, kappa, zz, float(np.log(n0)), vecs, bperp2, rho_const)
    prob = PolarProblem(
        _spectral_polar,
        _spectral_lift,
        2,
        (jnp.asarray(c_hat / n0), jnp.asarray(p_hat / n0**2)),
        float(np.log(n0)),
        args,
    )
    return EffectiveSystem(
        "spectral", 3, z_eff, (c_hat, p_hat), args, None, _spectral_diag, b_perp, prob
    )


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
    polar: PolarProblem | None = None  # set for forms that are not plain homogeneous fields
    initial_params: tuple = ()  # the network's (W1..WL) at t = 0, whatever the form

    @property
    def degree(self) -> int:
        return self.depth - 1

    def problem(self) -> PolarProblem:
        """The polar-variable problem the blow-up solver integrates."""
        if self.polar is not None:
            return self.polar
        return polar_problem(self.fld, self.y0, self.degree, self.args)

    @property
    def z_norm(self) -> float:
        return float(np.linalg.norm(self.z))

    def to_params(self, y) -> list[np.ndarray]:
        """Network parameters (W1..WL) from a state of this system (leading axes kept)."""
        if self.form == "full":
            return [np.asarray(w) for w in y]
        if self.form == "spectral":
            raise InputError(
                "form",
                "spectral",
                "keeps only c = Bz and c' (not W)",
                'use form = "reduced" or "full" for parameter snapshots',
            )
        a, w, c = (np.asarray(v) for v in y)
        zhat = self.z / self.z_norm
        b = self.b_perp + c[..., :, None] * zhat / self.z_norm
        return [b, w, a[..., None, :]]


def _check_params(params) -> list[np.ndarray]:
    ps = [np.asarray(p, dtype=np.float64) for p in params]
    if len(ps) < 2:
        raise InputError(
            "model.depth", len(ps), "must be >= 2", "give at least two weight matrices"
        )
    for k, p in enumerate(ps):
        if not np.all(np.isfinite(p)):
            raise InputError(f"W{k + 1}", "non-finite", "has NaN/inf entries", "fix the parameters")
    return ps


def build_system(
    params,
    z,
    *,
    activation: str | Activation | None = None,
    form: str = "full",
    output_scale: float = 1.0,
) -> EffectiveSystem:
    """The effective system of a network with parameters ``params`` on data with ``z``.

    ``activation`` supplies ``g = sigma'(0)``; activations with ``sigma(0) != 0`` or
    ``sigma'(0) = 0`` (or not smooth at 0, like ReLU) are refused.  ``output_scale``
    kappa (``f = kappa W_L sigma(...)``) multiplies the field (THEORY §8): the drive
    is ``kappa g^(L-1) z``.

    Args:
        params: the weight matrices ``[W1, ..., WL]`` (L >= 2), ``W1`` of shape
            ``(m1, d)``, ``WL`` of shape ``(1, m_{L-1})``.
        z: ``mean(y x)`` of the data, shape ``(d,)``.
        activation: a name (``"tanh"``, ``"sin"``, ``"linear"``, ...; see
            :data:`condensation.core.activations.ACTIVATIONS`) or an
            :class:`~condensation.core.activations.Activation`; None means
            ``g = 1`` (a linear network).  An unknown name is an ``InputError``
            listing the known ones.
        form: ``"full"`` (any depth), ``"reduced"`` or ``"spectral"`` (depth 3).
        output_scale: kappa, the output multiplier of the network.

    Returns:
        The :class:`EffectiveSystem`; integrate it with :func:`solve`.
    """
    act = None if activation is None else get_activation(activation)
    z = output_scale * np.asarray(z, dtype=np.float64)
    system = _build_system(params, z, act, form)
    return dataclasses.replace(system, initial_params=tuple(_check_params(params)))


def _build_system(params, z, activation, form) -> EffectiveSystem:
    if form not in FORMS:
        raise InputError("form", form, "unknown effective form", f"use one of {', '.join(FORMS)}")
    ps = _check_params(params)
    depth = len(ps)
    gain = 1.0
    if activation is not None:
        why = activation.why_not_effective()
        if why is not None:
            raise InputError(
                "model.activation",
                activation.name,
                why,
                "use a smooth activation with sigma(0) = 0, sigma'(0) != 0 (tanh, sin)",
            )
        gain = activation.slope_at_zero ** (depth - 1)
    z_eff = gain * np.asarray(z, dtype=np.float64)
    with_matrix = max(p.shape[0] for p in ps[:-1]) <= MATRIX_LAW_MAX_WIDTH
    if form == "full":
        q0 = [np.asarray(q) for q in neuron_balances(ps)]
        big_q0 = [ps[k + 1].T @ ps[k + 1] - ps[k] @ ps[k].T for k in range(depth - 1)]
        return EffectiveSystem(
            "full",
            depth,
            z_eff,
            tuple(ps),
            (z_eff, q0, big_q0),
            _full_field,
            full_diag(depth, with_matrix),
        )
    if depth != 3:
        raise InputError(
            "form", form, f"the {form} form is for depth 3, got depth {depth}", 'use form = "full"'
        )
    b, w, a = ps
    zz = float(z_eff @ z_eff)
    if zz == 0:
        raise InputError("data", "z = 0", "no effective drive", "labels must correlate with inputs")
    if form == "spectral":
        return _spectral_system(b, w, a, z_eff)
    c = b @ z_eff
    b_perp = b - np.outer(c, z_eff) / zz
    a = a[0]
    q0 = [a * a - np.sum(w * w, axis=1), np.sum(w * w, axis=0) - c * c / zz]
    big_q0 = [np.outer(a, a) - w @ w.T, w.T @ w - np.outer(c, c) / zz]
    bperp2 = np.sum(b_perp**2, axis=1)
    # zero-padded neurons stay zero (an invariant subspace): masks leave them out
    masks = (np.any(w != 0, axis=1) | (a != 0), np.any(w != 0, axis=0) | np.any(b != 0, axis=1))
    return EffectiveSystem(
        "reduced",
        3,
        z_eff,
        (a, w, c),
        (zz, q0, big_q0, bperp2, float(np.sum(bperp2)), masks),
        _reduced_field,
        reduced_diag(with_matrix),
        b_perp,
    )


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


def solve(system: EffectiveSystem, tol: Tolerances = Tolerances()) -> Blowup:
    """Integrate one system through its blow-up (or to an equilibrium / norm)."""
    return solve_polar(system.problem(), diag=system.diag, tol=tol)


def solve_batch(systems: list[EffectiveSystem], tol: Tolerances = Tolerances()) -> list[Blowup]:
    """Systems of the same form and shapes (an ensemble), in one vmapped solve."""
    if len(systems) == 1:
        return [solve(systems[0], tol)]
    return solve_polar_batch([s.problem() for s in systems], diag=systems[0].diag, tol=tol)


def trajectory(
    system: EffectiveSystem, sol: Blowup, times, tol: Tolerances = Tolerances(), min_len: int = 0
):
    """Network parameters at the given times (before T*): ``(t_actual, [W1..WL])``.
    ``min_len``: compile the query for at least this many times
    (:func:`condensation.effective.blowup.states_at`; the results do not depend on it)."""
    t, y = states_at(system.problem(), sol, times, tol=tol, min_len=min_len)
    return t, system.to_params(y)


__all__ = [
    "EffectiveSystem",
    "FORMS",
    "RegimeWarning",
    "build_system",
    "regime_ratio",
    "solve",
    "solve_batch",
    "trajectory",
    "warn_if_large",
]
