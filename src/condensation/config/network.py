"""Run configuration: frozen dataclasses, TOML parsing, ``--set`` overrides.

Everything a user can write is validated here, once, at the edge; code
deeper in the package trusts these objects.  Each bad value raises
:class:`~condensation.errors.InputError` naming the field, the value and the
fix.
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from condensation.config import checks as inputs
from condensation.core.activations import ACTIVATIONS
from condensation.core.init_scales import stds_from_gammas
from condensation.errors import InputError

DEFAULT_SCALE = 1e-3  # eps when none of scale, gamma, scales is given
DEFAULT_HANDOFF = 1e-2  # [train] handoff: see condensation.training.fastforward
AUTO = "auto"  # [train] steps = "auto"
BUILTIN_DATASETS = ("teacher", "sin", "cubic", "step", "gauss", "diabetes")


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


@dataclass(frozen=True)
class TrainConfig:
    """``[train]``: full-batch GD (or ``optimizer``), time ``t = step * lr``.

    The optimizer settings (None: not given) apply to the optimizers listed in
    :data:`condensation.training.optimizers.SETTINGS`; see that module for their meaning.
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
    save: str = "bounded"  # snapshots stored: bounded or full (training.snapshots)


@dataclass(frozen=True)
class Config:
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
        return sections_to_dict(self)


SECTIONS = {"data": DataConfig, "model": ModelConfig, "init": InitConfig, "train": TrainConfig}


def sections_to_dict(cfg) -> dict[str, dict[str, Any]]:
    """A config of section dataclasses as a plain dict for TOML/JSON (None dropped:
    TOML has no null)."""
    out: dict[str, dict[str, Any]] = {}
    for f in dataclasses.fields(cfg):
        sec = dataclasses.asdict(getattr(cfg, f.name))
        out[f.name] = {
            k: (list(v) if isinstance(v, tuple) else v) for k, v in sec.items() if v is not None
        }
    return out


# ---- coercion ----------------------------------------------------------------
def _coerce(section: str, name: str, value: Any, annotation: str) -> Any:
    """Check/convert one raw TOML value against the dataclass annotation string."""
    key = f"{section}.{name}"
    optional = "None" in annotation
    if value is None and optional:
        return None
    base = annotation.replace(" | None", "")
    if base == "int | str":  # an integer, or the word "auto"
        if value == AUTO:
            return AUTO
        if isinstance(value, str):
            raise InputError(
                key, value, 'expected an integer or "auto"', f'write {name} = <integer> or "auto"'
            )
        base = "int"
    if base == "bool":
        if isinstance(value, bool):
            return value
        raise InputError(key, value, "expected true or false", f"write {name} = true or false")
    if base == "int":  # an int, or a float only when exactly integral: one rule
        return inputs.as_int(key, value)
    if base == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InputError(key, value, "expected a number", f"write {name} = <number>")
        if isinstance(value, int) and abs(value) > inputs.MAX_INT:
            raise InputError(key, value, "number too large", f"give |{name}| <= 2**53")
        if not math.isfinite(value):
            raise InputError(key, value, "must be finite", f"give a finite {name}")
        if abs(value) > inputs.MAX_ABS:
            raise InputError(
                key,
                value,
                f"must be at most {inputs.MAX_ABS:g} in magnitude",
                f"give a smaller {name}",
            )
        return float(value)
    if base == "str":
        if not isinstance(value, str):
            raise InputError(key, value, "expected a string", f'write {name} = "<text>"')
        return value
    if base.startswith("tuple["):
        inner = base[len("tuple[") : -len(", ...]")]
        if not isinstance(value, (list, tuple)):
            raise InputError(key, value, "expected a list", f"write {name} = [v1, v2, ...]")
        if len(value) == 0:
            raise InputError(key, value, "must not be empty", f"give at least one {name} entry")
        return tuple(_coerce(section, name, v, inner) for v in value)
    raise TypeError(f"unhandled annotation {annotation}")  # pragma: no cover


def _build_section(section: str, raw: dict[str, Any], cls: type):
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for name, value in raw.items():
        if name not in fields:
            raise InputError(
                f"{section}.{name}",
                value,
                "unknown key",
                f"use one of: {', '.join(fields)}",
            )
        kwargs[name] = _coerce(section, name, value, str(fields[name].type))
    return cls(**kwargs)


def _validate(cfg: Config) -> Config:
    d, m, i, t = cfg.data, cfg.model, cfg.init, cfg.train
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
    if d.noise < 0:
        raise InputError("data.noise", d.noise, "must be >= 0", "give a noise level >= 0")
    inputs.check_seed("data.seed", d.seed)
    inputs.check_seed("init.seed", i.seed)
    for s in i.seeds or ():
        inputs.check_seed("init.seeds", s)
    if m.depth < 2:
        raise InputError(
            "model.depth",
            m.depth,
            "must be >= 2 (number of weight matrices)",
            "use depth = 2 or more",
        )
    inputs.check_depth("model.depth", m.depth)
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
        inputs.check_scales(scale_field(i), cfg.scales, m.depth, t.dtype, warn=False, shown=shown)
    else:
        inputs.check_scales(scale_field(i), cfg.layer_stds, 1, t.dtype, warn=False)
    validate_optimizer(t, d.n if d.path is None else None)
    if not 0.0 < t.plateau_drop < 1.0:
        raise InputError(
            "train.plateau_drop",
            t.plateau_drop,
            "must be in (0, 1)",
            "give the fraction of loss_0 the loss must lose, e.g. 0.1",
        )
    inputs.check_save("train.save", t.save)
    return cfg


def validate_layer_scales(cfg: Config) -> None:
    """``init.layer_scales`` / ``layer_gammas`` (one per layer, positive stds, not with
    another scale key), ``init.antisymmetric`` and ``model.output_scale``."""
    m, i = cfg.model, cfg.init
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


def validate_optimizer(t: TrainConfig, n: int | None) -> None:
    """``[train] optimizer`` and its settings; ``n`` (None: not known yet, a data
    file) bounds ``batch_size``."""
    from condensation.training.optimizers import OPTIMIZERS, SETTINGS

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
        inputs.check_int("train.steps", t.steps, low=1, high=inputs.MAX_STEPS)
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
    inputs.check_int("train.snapshots", t.snapshots, low=2, high=inputs.MAX_SNAPSHOTS)
    inputs.check_int("train.linear_snapshots", t.linear_snapshots, low=0, high=inputs.MAX_SNAPSHOTS)


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


def parse_override(item: str) -> tuple[str, str, Any]:
    """``section.key=value`` → (section, key, value); value parsed as TOML
    (:func:`condensation.config.checks.set_value`: a line break or a trailing comment is
    refused, not dropped)."""
    if "=" not in item or "." not in item.split("=", 1)[0]:
        raise InputError(
            "--set", item, "expected section.key=value", "write e.g. --set train.lr=0.01"
        )
    lhs, rhs = item.split("=", 1)
    value = inputs.set_value(item, rhs)  # TOML, else a bare word; never cut short
    section, key = lhs.strip().split(".", 1)
    return section, key, value


def build_sections(
    raw: dict[str, Any], overrides: list[str] | tuple[str, ...], sections: dict[str, type]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Apply ``--set`` overrides to a raw TOML dict and build each section dataclass.

    An override of one of ``init.scale``/``gamma``/``scales`` replaces the file's
    choice of the others.  Returns ``(raw with overrides, {section: dataclass})``.
    """
    raw = {k: dict(v) if isinstance(v, dict) else v for k, v in raw.items()}
    scale_keys = ("scale", "gamma", "scales", "layer_scales", "layer_gammas")
    for item in overrides:
        section, key, value = parse_override(item)
        body = raw.setdefault(section, {})
        if not isinstance(body, dict):
            raise InputError(section, body, "expected a table", f"write [{section}] then keys")
        if section == "init" and key in scale_keys:  # an override replaces the scale choice
            for other in scale_keys:
                body.pop(other, None)
        body[key] = value
    built = {}
    for section, body in raw.items():
        if section not in sections:
            raise InputError(
                section,
                body if not isinstance(body, dict) else "[...]",
                "unknown config section",
                f"use sections {', '.join(f'[{s}]' for s in sections)}",
            )
        if not isinstance(body, dict):
            raise InputError(section, body, "expected a table", f"write [{section}] then keys")
        built[section] = _build_section(section, body, sections[section])
    return raw, built


def read_toml(path: str | Path | None) -> dict[str, Any]:
    """A TOML file as a dict (empty for None: the built-in defaults)."""
    if path is None:
        return {}
    p = Path(path)
    text = inputs.read_text(p, "CONFIG", "a TOML config")
    try:
        return tomllib.loads(text)
    except ValueError as e:  # TOMLDecodeError, or an integer too long to convert
        raise InputError("CONFIG", str(p), f"not valid TOML ({e})", "fix the TOML syntax") from None


def config_from_dict(raw: dict[str, Any], overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Build and validate a Config from a nested dict plus ``--set`` overrides."""
    raw, sections = build_sections(raw, overrides, SECTIONS)
    cfg = Config(**sections)
    inputs.check_depth("model.depth", cfg.model.depth)  # before widths are derived from it
    if "model" in raw and "widths" not in raw["model"] and "depth" in raw["model"]:
        cfg = dataclasses.replace(
            cfg, model=dataclasses.replace(cfg.model, widths=(50,) * max(cfg.model.depth - 1, 1))
        )
    return _validate(cfg)


PATH_KEYS = (("data", "path"), ("init", "path"))  # file paths a Config holds


def anchor_paths(raw: dict[str, Any], config_path: str | Path | None, keys) -> dict[str, Any]:
    """A config file's relative ``keys`` (section, key) made absolute against the
    file's own directory (so a config works from any working directory)."""
    if config_path is None:
        return raw
    base = Path(os.path.abspath(config_path)).parent
    raw = {k: dict(v) if isinstance(v, dict) else v for k, v in raw.items()}
    for section, key in keys:
        body = raw.get(section)
        if isinstance(body, dict) and isinstance(body.get(key), str):
            p = os.path.expanduser(body[key])
            body[key] = os.path.normpath(os.path.join(base, p))  # join keeps an absolute p
    return raw


def absolute_paths(cfg, keys):
    """``cfg`` with its remaining relative paths (from ``--set``) made absolute against
    the working directory, so the stored config.toml re-runs from anywhere."""
    for section, key in keys:
        body = getattr(cfg, section)
        p = getattr(body, key)
        if isinstance(p, str):
            absolute = os.path.abspath(os.path.expanduser(p))
            if absolute != p:
                body = dataclasses.replace(body, **{key: absolute})
                cfg = dataclasses.replace(cfg, **{section: body})
    return cfg


def load_config(path: str | Path | None, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Read a TOML file (or the built-in defaults when ``path`` is None).

    Relative file paths in the file resolve against the file's directory; those
    given with ``--set`` against the working directory; both are stored absolute.
    """
    raw = anchor_paths(read_toml(path), path, PATH_KEYS)
    return absolute_paths(config_from_dict(raw, overrides), PATH_KEYS)
