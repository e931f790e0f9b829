"""The number rules every user input obeys: integers, seeds, init scales, depth.

One rule each, used by every config family, ``--set`` and experiment parameters:

- **integers**: one rule whatever the TOML type (:func:`as_int`: a float only when
  exactly integral, ``|v| <= MAX_INT`` either way);
- **seeds**: an integer in ``[0, 2**32)`` (:func:`check_seed`);
- **scales**: an init scale below the square root of the training dtype's
  smallest normal number is refused (squared norms would underflow to 0); one
  whose layer product falls below the dtype's smallest normal number (XLA
  flushes subnormals to zero on CPU) gets an :class:`UnderflowWarning`.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable

import numpy as np

from condensation.errors import InputError

MAX_ABS = 1e100  # largest magnitude of a value in a user array (squares stay finite)
MAX_INT = 2**53  # largest integer a config key may hold (exact as a float64)
SEED_LIMIT = 2**32  # seeds are integers in [0, SEED_LIMIT)
MAX_STEPS = 10**9  # most GD steps of one run
MAX_SNAPSHOTS = 100_000  # most log-spaced (and, separately, equally spaced) snapshots
MAX_DEPTH = 16  # most weight matrices / factors a network or a factorisation may have


class UnderflowWarning(UserWarning):
    """An init scale whose layer products fall below the dtype's smallest normal."""


# ---- numbers -------------------------------------------------------------------------
def check_seed(field: str, value: object) -> int:
    """The one seed rule: an integer ``0 <= seed < 2**32``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise InputError(field, value, "a seed must be an integer", "give a seed in [0, 2**32)")
    if not 0 <= int(value) < SEED_LIMIT:
        raise InputError(
            field, value, f"a seed must be in [0, {SEED_LIMIT})", "give a seed in [0, 2**32)"
        )
    return int(value)


def as_int(field: str, value: object) -> int:
    """The one integer rule for every integer a user writes (config keys, ``--set``,
    experiment parameters), whatever its TOML type: an integer, or a float that is
    exactly integral (``1e4``, ``-0.0``), and ``|v| <= MAX_INT`` either way (a float
    as large as ``1e300`` is as much refused as the integer it stands for).  Refused:
    booleans, strings, ``3.5``, ``nan``, ``inf``.

    >>> as_int("train.steps", 1e4), as_int("data.seed", -0.0)
    (10000, 0)
    """
    name = field.rsplit(".", 1)[-1]
    if isinstance(value, (float, np.floating)) and not isinstance(value, bool):
        if not (math.isfinite(value) and float(value).is_integer()):
            raise InputError(
                field,
                value,
                "expected an integer (not a whole number)",
                f"write {name} = <integer>",
            )
        number = int(value)
    elif isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        number = int(value)
    else:
        raise InputError(field, value, "expected an integer", f"write {name} = <integer>")
    if abs(number) > MAX_INT:
        raise InputError(field, value, "integer too large", f"give |{name}| <= 2**53")
    return number


def check_int(field: str, value: int, *, low: int = 0, high: int = MAX_INT) -> int:
    if not low <= value <= high:
        raise InputError(
            field, value, f"must be in [{low}, {high}]", f"give {low} <= value <= {high}"
        )
    return value


def dtype_limits(dtype: str) -> np.finfo:
    return np.finfo(np.float32 if dtype == "float32" else np.float64)


def check_scales(
    field: str,
    scales: Iterable[float],
    depth: int,
    dtype: str,
    warn: bool = True,
    shown: object = None,
) -> None:
    """Init scales: non-zero in ``dtype``; a warning where ``eps^(depth-1)`` (the first
    layer's gradient scale) falls below the dtype's smallest normal number."""
    fi = dtype_limits(dtype)
    for eps in scales:
        floor = math.sqrt(float(fi.smallest_normal))
        if not eps >= floor:
            raise InputError(
                field,
                eps if shown is None else shown,
                f"eps = {eps:.3g} is below {floor:.3g}, the square root of {dtype}'s "
                "smallest normal number: squared norms of the initial weights underflow "
                "to 0 (and the weights themselves, below the smallest normal)",
                f"give a scale eps >= {floor:.3g}",
            )
        if eps > MAX_ABS:
            raise InputError(field, eps, f"must be <= {MAX_ABS:g}", "give a smaller init scale")
        log_prod = (depth - 1) * math.log10(eps)
        if warn and log_prod < math.log10(float(fi.smallest_normal)):
            warnings.warn(
                f"{field} = {eps:g}: eps^{depth - 1} = 1e{log_prod:.0f} is below {dtype}'s "
                f"smallest normal {float(fi.smallest_normal):.3g}; gradients flush to zero "
                "(members that never move are marked status 'underflow')",
                UnderflowWarning,
                stacklevel=2,
            )


def check_effective_scales(scales: Iterable[float], depth: int, z_norm: float) -> None:
    """The effective dynamics is solved in float64 from ``E = W_L ... W_1 z ~ eps^L |z|``:
    refuse scales for which that drive leaves ``[1e-150, 1e100]`` (it would underflow
    to 0 or overflow before the change of variables takes over); z = 0 is the
    no-drive case, reported per member, and is not refused."""
    for eps in scales:
        if eps is None or not eps > 0:
            continue
        log_e = depth * math.log10(eps) + (math.log10(z_norm) if z_norm > 0 else 0.0)
        if not -150 <= log_e <= 100:
            way = "underflows" if log_e < -150 else "overflows"
            raise InputError(
                "init.scale",
                eps,
                f"the effective drive E ~ eps^{depth} |z| = 1e{log_e:.0f} {way} in float64",
                f"give eps with eps^{depth} |z| in [1e-150, 1e100]",
            )


def check_depth(field: str, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise InputError(
            field, depth, f"at most {MAX_DEPTH} layers are supported", f"use depth <= {MAX_DEPTH}"
        )
