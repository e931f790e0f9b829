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
condition, alignment with ``z``) evaluated at every solver step
(:mod:`condensation.effective.diagnostics`).  The spectral form is built in
:mod:`condensation.effective.spectral`; the small-initialisation check
(:func:`regime_ratio`, :class:`RegimeWarning`) lives in
:mod:`condensation.effective.init_regime` and is re-exported here.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from condensation.core.activations import Activation, get_activation
from condensation.core.effective import full_field, reduced_field
from condensation.core.invariants import neuron_balances
from condensation.effective.blowup import (
    Blowup,
    PolarProblem,
    Tolerances,
    polar_problem,
    solve_polar,
    solve_polar_batch,
    states_at,
)
from condensation.effective.diagnostics import full_diag, reduced_diag
from condensation.effective.init_regime import (
    REGIME_RATIO,
    RegimeWarning,
    regime_ratio,
    warn_if_large,
    warn_regime,
)
from condensation.effective.spectral import spectral_diag, spectral_problem
from condensation.errors import InputError

FORMS = ("full", "reduced", "spectral")
MATRIX_LAW_MAX_WIDTH = 256  # above this, matrix laws are checked at snapshots only


# ---- vector fields (module level: they are static arguments of compiled solves)


def _full_field(y, args):
    return full_field(y, args[0])


def _reduced_field(y, args):
    return reduced_field(y, args[0])


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

    >>> s = build_system([[[1.0, 0.0]], [[2.0]], [[0.5]]], [3.0, 4.0], activation="tanh")
    >>> s.form, s.depth, s.degree, s.z_norm
    ('full', 3, 2, 5.0)
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
        y0, sargs, b_perp, prob = spectral_problem(b, w, a, z_eff)
        return EffectiveSystem("spectral", 3, z_eff, y0, sargs, None, spectral_diag, b_perp, prob)
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


def solve(system: EffectiveSystem, tol: Tolerances = Tolerances()) -> Blowup:
    """Integrate one system through its blow-up (or to an equilibrium / norm).

    Args:
        system: an :class:`EffectiveSystem` (:func:`build_system`).
        tol: the solver's :class:`~condensation.effective.blowup.Tolerances`.

    Returns:
        The :class:`~condensation.effective.blowup.Blowup`: ``status``, ``T_star``
        (NaN unless it blew up), its estimated relative error, and the per-step
        record ``steps`` (time, growth, and the system's diagnostics).

    Three scalar layers at ``eps = 0.1`` with ``z = 1``: each grows as
    ``x' = x^2``, so ``T* = 1 / eps``:

    >>> sol = solve(build_system([[[0.1]], [[0.1]], [[0.1]]], [1.0]))
    >>> sol.status, round(sol.T_star, 9)
    ('blow-up', 10.0)
    """
    return solve_polar(system.problem(), diag=system.diag, tol=tol)


def solve_batch(systems: list[EffectiveSystem], tol: Tolerances = Tolerances()) -> list[Blowup]:
    """Systems of the same form and shapes (an ensemble), in one compiled solve
    (each member with its own adaptive steps and stopping event).

    Args:
        systems: :class:`EffectiveSystem` s of one form, depth and shapes.
        tol: the solver's :class:`~condensation.effective.blowup.Tolerances`.

    Returns:
        One :class:`~condensation.effective.blowup.Blowup` per system, in order;
        each the same as :func:`solve` of that system alone.

    Three scalar layers at ``eps = 0.1`` and ``0.2`` (``T* = 1 / eps``); not run as a
    doctest (it compiles a batched solve, ~10 s: ``tests/effective/test_effective.py::
    test_batch_equals_loop`` checks it against :func:`solve`):

    >>> systems = [build_system([[[e]], [[e]], [[e]]], [1.0]) for e in (0.1, 0.2)]
    >>> [round(s.T_star, 9) for s in solve_batch(systems)]  # doctest: +SKIP
    [10.0, 5.0]
    """
    if len(systems) == 1:
        return [solve(systems[0], tol)]
    return solve_polar_batch([s.problem() for s in systems], diag=systems[0].diag, tol=tol)


def trajectory(
    system: EffectiveSystem, sol: Blowup, times, tol: Tolerances = Tolerances(), min_len: int = 0
):
    """Network parameters along the effective dynamics at the given times (before T*).

    Args:
        system: the solved :class:`EffectiveSystem`.
        sol: its :func:`solve` result.
        times: increasing times ``t < T*``, shape (K,).
        tol: the solver's :class:`~condensation.effective.blowup.Tolerances`.
        min_len: compile the query for at least this many times
            (:func:`condensation.effective.blowup.states_at`; the results do not
            depend on it).

    Returns:
        ``(t_actual, [W1, ..., WL])``: the times reached (equal to ``times`` to about
        1e-13 relative) and each layer's weights with a leading axis over times,
        ``W_k`` of shape (K, *shape_k).

    Three scalar layers at ``eps = 0.1``, ``z = 1``: ``x(t) = eps / (1 - eps t)``,
    so ``x(5) = 0.2``:

    >>> system = build_system([[[0.1]], [[0.1]], [[0.1]]], [1.0])
    >>> t, (w1, w2, w3) = trajectory(system, solve(system), [5.0])
    >>> w1.shape, round(float(w1[0, 0, 0]), 9)
    ((1, 1, 1), 0.2)
    """
    t, y = states_at(system.problem(), sol, times, tol=tol, min_len=min_len)
    return t, system.to_params(y)


__all__ = [
    "EffectiveSystem",
    "FORMS",
    "MATRIX_LAW_MAX_WIDTH",
    "REGIME_RATIO",
    "RegimeWarning",
    "build_system",
    "full_diag",
    "reduced_diag",
    "regime_ratio",
    "solve",
    "solve_batch",
    "trajectory",
    "warn_if_large",
    "warn_regime",
]
