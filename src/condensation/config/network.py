"""The network config (``train``, ``effective``): frozen dataclasses, validated once.

Parsing (TOML, ``--set``, coercion) is :mod:`condensation.config.parse`, file
paths :mod:`condensation.config.paths`; everything a user can write is
validated here, once, at the edge; code
deeper in the package trusts these objects.  Each bad value raises
:class:`~condensation.errors.InputError` naming the field, the value and the
fix.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from condensation.config import numbers
from condensation.config.memory import check_save
from condensation.config.parse import AUTO, parse_override, read_toml  # noqa: F401 (re-exported)
from condensation.config.paths import absolute_paths, anchor_paths
from condensation.config.sections import build_sections, build_tables, sections_to_dict
from condensation.config.train_checks import (  # noqa: F401 (re-exported)
    DEFAULT_HANDOFF,
    validate_fast_forward,
    validate_optimizer,
    validate_train,
)
from condensation.core.activations import ACTIVATIONS
from condensation.core.init_scales import stds_from_gammas
from condensation.datasets import TEACHERS
from condensation.errors import InputError

DEFAULT_SCALE = 1e-3  # eps when none of scale, gamma, scales is given
ONE_D_DATASETS = ("sin", "cubic", "step", "gauss")  # y = f(x) on n points of [-1, 1]
BUILTIN_DATASETS = (*TEACHERS, *ONE_D_DATASETS, "diabetes")


@dataclass(frozen=True)
class DataConfig:
    """``[data]``: a built-in dataset or a user file (``.npz`` with x, y, or CSV)."""

    dataset: str = "teacher"  # one of BUILTIN_DATASETS; ignored when path is set
    path: str | None = None
    bias: bool = False  # append a constant-1 input feature
    n: int = 100
    d: int = 5  # input dimension of the teacher (1-D sets ignore it)
    seed: int = 0
    noise: float = 0.0


def data_keys_used(d: DataConfig) -> frozenset[str]:
    """The ``[data]`` keys that the data source ``d`` reads: a file reads ``path`` and
    ``bias``; a bundled set adds ``noise`` (and ``seed`` for it); the teacher reads
    ``n``, ``d`` and ``seed``; the 1-D functions ``n``.  The rest are ignored."""
    if d.path is not None:
        return frozenset({"path", "bias"})
    used = {"dataset", "bias", "noise"}
    if d.dataset in TEACHERS:
        used |= {"n", "d", "seed"}
    elif d.dataset in ONE_D_DATASETS:
        used.add("n")
    if d.noise > 0:
        used.add("seed")
    return frozenset(used)


@dataclass(frozen=True)
class ModelConfig:
    """``[model]``: depth L (number of weight matrices), hidden widths, activation."""

    depth: int = 3
    widths: tuple[int, ...] = (50, 50)
    activation: str = "tanh"
    output_scale: float = 1.0  # kappa: f = kappa W_L sigma(...) (THEORY §8)


@dataclass(frozen=True)
class InitConfig:
    """``[init]``: i.i.d. N(0, eps^2); eps = ``scale`` or ``m ** -gamma``.

    With none of ``scale``, ``gamma``, ``scales`` given, eps = 1e-3.  ``seeds`` x
    ``scales`` form the ensemble; ``path`` loads explicit initial parameters
    instead.
    """

    scale: float | None = None
    gamma: float | None = None
    seed: int = 0
    seeds: tuple[int, ...] | None = None
    scales: tuple[float, ...] | None = None
    path: str | None = None
    layer_scales: tuple[float, ...] | None = None  # std of each layer, W1 first
    layer_gammas: tuple[float, ...] | None = None  # std m^-g_k, m = max(widths)
    antisymmetric: bool = False  # last hidden layer doubled, output weights negated: f0 = 0
    # per hidden neuron |outgoing|^2 - |incoming|^2 = balance (0: balanced); None: as drawn
    balance: float | None = None


@dataclass(frozen=True)
class TrainConfig:
    """``[train]``: full-batch GD (or ``optimizer``), time ``t = step * lr``.

    The optimizer settings (None: not given) apply to the optimizers listed in
    :data:`condensation.config.train_checks.SETTINGS`; see that module for their meaning.
    """

    lr: float = 0.05
    steps: int | str = 12000  # or "auto": from the predicted T* (condensation.training.fastforward)
    dtype: str = "float64"
    snapshots: int = 60  # log-spaced snapshot steps
    linear_snapshots: int = 200  # plus this many equally spaced ones
    optimizer: str = "gd"  # gd, sgd, momentum, adam
    batch_size: int | None = None  # mini-batch size (sgd default min(32, n))
    batch_seed: int | None = None  # seed of the mini-batch order (default 0)
    momentum: float | None = None  # momentum coefficient beta (default 0.9)
    nesterov: bool | None = None  # Nesterov momentum (default false)
    b1: float | None = None  # Adam's first-moment decay (default 0.9)
    b2: float | None = None  # Adam's second-moment decay (default 0.999)
    adam_eps: float | None = None  # Adam's denominator guard (default 1e-8), not init eps
    plateau_drop: float = 0.1  # plateau exit: first step with loss <= (1 - drop) loss_0
    fast_forward: bool = False  # effective dynamics up to the hand-off, then GD
    handoff: float = DEFAULT_HANDOFF  # the hand-off tolerance delta of THEORY §9
    save: str = "bounded"  # snapshots stored: bounded or full (core.snapshots)


@dataclass(frozen=True)
class Config:
    """A validated network config (``train``, ``effective``): its ``[data]``,
    ``[model]``, ``[init]`` and ``[train]`` sections (:func:`load_config` builds it)."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    init: InitConfig = field(default_factory=InitConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    # ---- derived ---------------------------------------------------------
    @property
    def member_seeds_scales(self) -> list[tuple[int, float]]:
        """Ensemble members as (seed, eps): every seed with every scale."""
        seeds = self.init.seeds if self.init.seeds is not None else (self.init.seed,)
        return [(s, eps) for s in seeds for eps in self.scales]

    @property
    def layer_stds(self) -> tuple[float, ...] | None:
        """Per-layer stds ``(s_1, ..., s_L)`` from ``layer_scales`` or ``layer_gammas``
        (``s_k = max(widths) ** -g_k``); None when one eps scales every layer."""
        if self.init.layer_scales is not None:
            return self.init.layer_scales
        if self.init.layer_gammas is not None:
            return stds_from_gammas(self.init.layer_gammas, max(self.model.widths))
        return None

    @property
    def scales(self) -> tuple[float, ...]:
        """The init scales eps; ``gamma`` means ``eps = max(widths) ** -gamma``; with
        per-layer stds, their geometric mean (what a member's ``scale`` reports)."""
        if self.layer_stds is not None:
            return (float(math.exp(sum(math.log(s) for s in self.layer_stds) / self.model.depth)),)
        if self.init.scales is not None:
            return self.init.scales
        if self.init.scale is not None:
            return (self.init.scale,)
        if self.init.gamma is not None:
            return (float(max(self.model.widths)) ** (-self.init.gamma),)
        return (DEFAULT_SCALE,)

    def to_dict(self) -> dict[str, dict[str, Any]]:
        """The config as the run uses it (what ``config.toml`` stores and the run key
        hashes): ``[data]`` keeps only the keys its source reads (see
        :func:`data_keys_used`), so a file-data run does not record a teacher's
        ``n = 100, d = 5`` it never drew."""
        out = sections_to_dict(self)
        used = data_keys_used(self.data)
        out["data"] = {k: v for k, v in out["data"].items() if k in used}
        return out


SECTIONS = {"data": DataConfig, "model": ModelConfig, "init": InitConfig, "train": TrainConfig}


def validate_data(d: DataConfig) -> DataConfig:
    """Check a built ``[data]`` section's values (what a ``Config``, an experiment's
    ``data.*`` parameters and a sweep all go through).

    Args:
        d: the :class:`DataConfig`, its types already coerced.

    Returns:
        ``d`` unchanged.

    Raises:
        InputError: naming the first bad ``data.*`` key, its value and the fix.
    """
    if d.path is None and d.dataset not in BUILTIN_DATASETS:
        raise InputError(
            "data.dataset",
            d.dataset,
            "unknown dataset",
            f"use one of {', '.join(BUILTIN_DATASETS)}",
        )
    if d.n < 1:
        raise InputError("data.n", d.n, "must be >= 1", "give a positive number of samples")
    if d.d < 1:
        raise InputError("data.d", d.d, "must be >= 1", "give a positive input dimension")
    if d.path is None and d.dataset == "teacher3" and d.d < 3:
        raise InputError(
            "data.d",
            d.d,
            "teacher3 has three directions, so d must be >= 3",
            "set data.d = 3 or more",
        )
    if d.noise < 0:
        raise InputError("data.noise", d.noise, "must be >= 0", "give a noise level >= 0")
    numbers.check_seed("data.seed", d.seed)
    return d


def _validate(cfg: Config) -> Config:
    d, m, i, t = cfg.data, cfg.model, cfg.init, cfg.train
    validate_data(d)
    numbers.check_seed("init.seed", i.seed)
    for s in i.seeds or ():
        numbers.check_seed("init.seeds", s)
    if m.depth < 2:
        raise InputError(
            "model.depth",
            m.depth,
            "must be >= 2 (number of weight matrices)",
            "use depth = 2 or more",
        )
    numbers.check_depth("model.depth", m.depth)
    if m.activation not in ACTIVATIONS:
        raise InputError(
            "model.activation",
            m.activation,
            "unknown activation",
            f"use one of {', '.join(sorted(ACTIVATIONS))}",
        )
    if any(w <= 0 for w in m.widths):
        raise InputError(
            "model.widths", list(m.widths), "every width must be >= 1", "use positive widths"
        )
    if len(m.widths) != m.depth - 1:
        raise InputError(
            "model.widths",
            list(m.widths),
            f"depth {m.depth} needs {m.depth - 1} hidden widths, got {len(m.widths)}",
            f"give {m.depth - 1} widths, or change model.depth",
        )
    for name in ("scale",):
        v = getattr(i, name)
        if v is not None and v <= 0:
            raise InputError(f"init.{name}", v, "must be > 0", "give a positive init scale eps")
    if i.scales is not None and any(v <= 0 for v in i.scales):
        raise InputError(
            "init.scales", list(i.scales), "every scale must be > 0", "use positive scales"
        )
    if i.gamma is not None and i.gamma <= 0:
        raise InputError(
            "init.gamma", i.gamma, "must be > 0 (eps = m^-gamma < 1)", "give gamma > 0"
        )
    if sum(v is not None for v in (i.scale, i.gamma, i.scales)) > 1:
        raise InputError(
            "init.scale", i.scale, "give only one of scale, gamma, scales", "remove the others"
        )
    validate_layer_scales(cfg)
    validate_train(t)
    if cfg.layer_stds is None:
        shown = i.gamma
        numbers.check_scales(scale_field(i), cfg.scales, m.depth, t.dtype, warn=False, shown=shown)
    else:
        numbers.check_scales(scale_field(i), cfg.layer_stds, 1, t.dtype, warn=False)
    validate_optimizer(t, d.n if d.path is None else None)
    if not 0.0 < t.plateau_drop < 1.0:
        raise InputError(
            "train.plateau_drop",
            t.plateau_drop,
            "must be in (0, 1)",
            "give the fraction of loss_0 the loss must lose, e.g. 0.1",
        )
    check_save("train.save", t.save)
    return cfg


def validate_layer_scales(cfg: Config) -> None:
    """``init.layer_scales`` / ``layer_gammas`` (one per layer, positive stds, not with
    another scale key), ``init.balance`` (finite, not with ``init.path``),
    ``init.antisymmetric`` and ``model.output_scale``."""
    m, i = cfg.model, cfg.init
    if i.balance is not None:
        if not math.isfinite(i.balance):
            raise InputError("init.balance", i.balance, "must be finite", "give e.g. 0 (balanced)")
        if i.path is not None:
            raise InputError(
                "init.balance", i.balance, "does not apply to init.path", "drop one of the two"
            )
    if not m.output_scale > 0:
        raise InputError(
            "model.output_scale", m.output_scale, "must be > 0", "give kappa > 0, e.g. 1"
        )
    for name in ("layer_scales", "layer_gammas"):
        v = getattr(i, name)
        if v is None:
            continue
        others = [k for k in ("scale", "gamma", "scales") if getattr(i, k) is not None]
        if name == "layer_gammas" and i.layer_scales is not None:
            others.append("layer_scales")
        if others:
            raise InputError(
                f"init.{name}",
                list(v),
                f"given together with init.{others[0]}",
                f"give only one of init.{name} and init.{others[0]}",
            )
        if len(v) != m.depth:
            raise InputError(
                f"init.{name}",
                list(v),
                f"depth {m.depth} needs {m.depth} entries (W1 first), got {len(v)}",
                f"give {m.depth} values, or change model.depth",
            )
        if name == "layer_scales" and any(not s > 0 for s in v):
            raise InputError(
                "init.layer_scales", list(v), "every scale must be > 0", "use positive stds"
            )
    if i.antisymmetric:
        if i.path is not None:
            raise InputError(
                "init.antisymmetric", True, "does not apply to init.path", "drop one of the two"
            )
        if m.widths[-1] % 2:
            raise InputError(
                "init.antisymmetric",
                True,
                f"the last hidden width {m.widths[-1]} must be even (two mirrored halves)",
                "give an even last width in model.widths",
            )


def scale_field(i) -> str:
    """The ``[init]`` key the init scales come from (for messages)."""
    for name in ("layer_scales", "layer_gammas", "scales", "gamma", "scale"):
        if getattr(i, name, None) is not None:
            return f"init.{name}"
    return "init.scale"


def config_from_dict(raw: dict[str, Any], overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Build and validate a Config from a nested dict plus ``--set`` overrides.

    Args:
        raw: ``{section: {key: value}}`` as read from TOML (not changed).
        overrides: ``section.key=value`` items, applied in order.

    Returns:
        The validated :class:`Config`.
    """
    raw, sections = build_sections(raw, overrides, SECTIONS)
    return config_from_tables(raw, sections)


def config_from_raw(raw: dict[str, Any]) -> Config:
    """Build and validate a Config from a nested dict of values (no ``--set`` text:
    what a sweep cell's values give, :func:`condensation.config.parse.apply_items`)."""
    return config_from_tables(raw, build_tables(raw, SECTIONS))


def config_from_tables(raw: dict[str, Any], sections: dict[str, Any]) -> Config:
    """The validated Config of built sections (``raw``: what they were built from, to
    see whether ``model.widths`` was given)."""
    cfg = Config(**sections)
    numbers.check_depth("model.depth", cfg.model.depth)  # before widths are derived from it
    if "model" in raw and "widths" not in raw["model"] and "depth" in raw["model"]:
        cfg = dataclasses.replace(
            cfg, model=dataclasses.replace(cfg.model, widths=(50,) * max(cfg.model.depth - 1, 1))
        )
    return _validate(cfg)


PATH_KEYS = (("data", "path"), ("init", "path"))  # file paths a Config holds


def load_config(path: str | Path | None, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Read a TOML file (or the built-in defaults when ``path`` is None).

    Relative file paths in the file resolve against the file's directory; those
    given with ``--set`` against the working directory; both are stored absolute
    (:mod:`condensation.config.paths`).

    Args:
        path: the TOML config (None: the built-in defaults).
        overrides: ``section.key=value`` items.

    Returns:
        The validated :class:`Config`.
    """
    raw = anchor_paths(read_toml(path), path, PATH_KEYS)
    return absolute_paths(config_from_dict(raw, overrides), PATH_KEYS)
