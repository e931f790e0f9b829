"""The ``[train]`` checks shared by every config family: lr, steps, dtype, snapshots,
fast-forward and the optimizer settings."""

from __future__ import annotations

from condensation.config import numbers
from condensation.config.parse import AUTO
from condensation.errors import InputError

DEFAULT_HANDOFF = 1e-2  # [train] handoff: see condensation.training.fastforward

OPTIMIZERS = ("gd", "sgd", "momentum", "adam")
DEFAULT_SGD_BATCH = 32  # capped at n

# Which [train] keys each optimizer takes (all others are refused when given).
SETTINGS: dict[str, tuple[str, ...]] = {
    "batch_size": ("sgd", "momentum", "adam"),
    "batch_seed": ("sgd", "momentum", "adam"),
    "momentum": ("momentum",),
    "nesterov": ("momentum",),
    "b1": ("adam",),
    "b2": ("adam",),
    "adam_eps": ("adam",),
}


def validate_optimizer(t, n: int | None) -> None:
    """``[train] optimizer`` (of a :class:`~condensation.config.network.TrainConfig`)
    and its settings; ``n`` (None: not known yet, a data
    file) bounds ``batch_size``."""
    if t.optimizer not in OPTIMIZERS:
        raise InputError(
            "train.optimizer",
            t.optimizer,
            "unknown optimizer",
            f"use one of {', '.join(OPTIMIZERS)}",
        )
    for key, takers in SETTINGS.items():
        v = getattr(t, key)
        if v is not None and t.optimizer not in takers:
            raise InputError(
                f"train.{key}",
                v,
                f'does not apply to optimizer = "{t.optimizer}"',
                f"remove train.{key}, or use optimizer = {' or '.join(takers)}",
            )
    if t.batch_size is not None:
        if t.batch_size < 1 or (n is not None and t.batch_size > n):
            bound = f" and <= n = {n}" if n is not None else ""
            raise InputError(
                "train.batch_size",
                t.batch_size,
                f"must be >= 1{bound}",
                f"use 1 <= batch_size <= {n if n is not None else 'n'}",
            )
    if t.momentum is not None and not 0 <= t.momentum < 1:
        raise InputError(
            "train.momentum", t.momentum, "must be in [0, 1)", "use e.g. momentum = 0.9"
        )
    for key in ("b1", "b2"):
        v = getattr(t, key)
        if v is not None and not 0 <= v < 1:
            raise InputError(f"train.{key}", v, "must be in [0, 1)", f"use e.g. {key} = 0.9")
    if t.adam_eps is not None and not t.adam_eps > 0:
        raise InputError("train.adam_eps", t.adam_eps, "must be > 0", "use e.g. adam_eps = 1e-8")


def validate_train(t) -> None:
    """The ``[train]`` checks shared by every config family (lr, steps, dtype, snapshots)."""
    if not t.lr > 0:
        raise InputError("train.lr", t.lr, "must be > 0", "give a positive learning rate")
    validate_fast_forward(t)
    if t.steps != AUTO and t.steps < 1:
        raise InputError("train.steps", t.steps, "must be >= 1", "give a positive number of steps")
    if t.dtype not in ("float32", "float64"):
        raise InputError("train.dtype", t.dtype, "unknown dtype", 'use "float32" or "float64"')
    if t.steps != AUTO:
        numbers.check_int("train.steps", t.steps, low=1, high=numbers.MAX_STEPS)
    if t.snapshots < 2:
        raise InputError(
            "train.snapshots", t.snapshots, "need >= 2 log-spaced snapshots", "use snapshots >= 2"
        )
    if t.linear_snapshots < 0:
        raise InputError(
            "train.linear_snapshots",
            t.linear_snapshots,
            "must be >= 0",
            "use linear_snapshots >= 0 (0: log-spaced snapshots only)",
        )
    numbers.check_int("train.snapshots", t.snapshots, low=2, high=numbers.MAX_SNAPSHOTS)
    numbers.check_int(
        "train.linear_snapshots", t.linear_snapshots, low=0, high=numbers.MAX_SNAPSHOTS
    )


def validate_fast_forward(t) -> None:
    """``[train] fast_forward`` and ``handoff`` (shared by the network and matrix configs)."""
    handoff = getattr(t, "handoff", DEFAULT_HANDOFF)
    if not 0.0 < handoff < 1.0:
        raise InputError(
            "train.handoff",
            handoff,
            "must be in (0, 1) (the tolerance delta of the hand-off to GD)",
            f"give e.g. handoff = {DEFAULT_HANDOFF:g}; smaller hands off earlier, more accurately",
        )
    if getattr(t, "fast_forward", False) and getattr(t, "optimizer", "gd") != "gd":
        raise InputError(
            "train.fast_forward",
            True,
            f'applies to plain GD, not optimizer = "{t.optimizer}"',
            'use optimizer = "gd", or fast_forward = false',
        )
