"""Polar variables for a blow-up solve: ``y = exp(r) u``, ``ds = |y|^(k-1) dt``.

The change of variables of :mod:`condensation.effective.blowup` (read its docstring
for the maths): a :class:`PolarProblem` is an ODE already written in those
variables; :func:`polar_problem` makes one from a homogeneous field.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache, partial

import jax
import jax.numpy as jnp
import numpy as np

Field = Callable  # (y, args) -> dy/dt, homogeneous of degree k in y


def _vdot(a, b):
    return sum(jnp.vdot(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


@cache
def homogeneous_polar(fld: Field):
    """The polar form ``(du/ds, dr/ds)`` of a field homogeneous of some degree."""

    def polar(u, r, args):
        f = fld(u, args)
        rate = _vdot(u, f)
        return jax.tree.map(lambda fi, ui: fi - rate * ui, f, u), rate

    return polar


def scale_lift(u, big_r, args):
    """``y = exp(R) u``: the state of a homogeneous field from its polar variables."""
    return jax.tree.map(lambda x: jnp.exp(big_r) * x, u)


def polar_vector_field(k: int, polar):
    """The solver's vector field in ``s``: state ``(u, r, t)``, with ``dt/ds =
    exp(-(k-1) r)`` (``k``: the degree; ``polar``: ``(u, r, args) -> (du/ds, dr/ds)``)."""
    def vf(s, state, args):
        u, r, t = state
        du, rate = polar(u, r, args)
        return du, rate, jnp.exp(-(k - 1) * r)

    return vf


def polar_speed(du, rate):
    """``|(du/ds, dr/ds)|``: the speed of the polar system (zero at an equilibrium)."""
    return jnp.sqrt(_vdot(du, du) + rate * rate)


def _normalise(y0):
    # numpy, not op-by-op JAX (each distinct shape would compile a program), and as a
    # product with 1/n0, which is what XLA makes of the division: the same bits as before
    n0 = float(np.sqrt(sum(np.sum(np.asarray(x) ** 2) for x in jax.tree.leaves(y0))))
    return jax.tree.map(lambda x: np.asarray(x, np.float64) * (1.0 / n0), y0), n0


@dataclass(frozen=True)
class PolarProblem:
    """A blow-up problem already in polar variables.

    ``polar(u, r, args) -> (du/ds, dr/ds)`` with ``dt/ds = exp(-(k-1) r)`` in units
    of ``exp(-(k-1) r0)``; ``lift(u, R, args)`` gives the original state at
    ``R = r0 + r``.  Homogeneous fields get theirs from :func:`polar_problem`;
    other reductions (a closed subsystem in another basis) supply their own.
    """

    polar: Callable
    lift: Callable
    k: int
    u0: object
    r0: float
    args: object = ()

    def f0(self) -> float:
        return float(_f0(self.u0, self.args, polar=self.polar))


@partial(jax.jit, static_argnames=("polar",))
def _f0(u0, args, *, polar):
    """The polar speed at the start: one compiled program per field and shape (run
    op by op, the field's every operation would be a program of its own)."""
    return polar_speed(*polar(u0, jnp.zeros(()), args))


def polar_problem(fld: Field, y0, degree: int, args=()) -> PolarProblem:
    """The polar form of ``y' = fld(y, args)``, homogeneous of ``degree``."""
    if degree < 1:
        raise ValueError(f"degree must be >= 1, got {degree}")
    u0, n0 = _normalise(y0)
    if n0 == 0 or not np.isfinite(n0):
        raise ValueError(f"the initial state must be non-zero and finite, got norm {n0}")
    return PolarProblem(homogeneous_polar(fld), scale_lift, degree, u0, float(np.log(n0)), args)
