"""Named experiments: one module each, registered by one line in ``MODULES``.

``condensation run NAME`` runs one of them into a directory, ``condensation
reproduce`` runs all of them and writes one HTML report (see
:mod:`condensation.reproduce` and :mod:`condensation.report.html`).

How to add an experiment
------------------------
Write ``src/condensation/experiments/my_thing.py`` defining::

    NAME = "my-thing"            # the CLI name (lower case, words joined by '-')
    TITLE = "One line"           # heading in the report
    SECTION = "scaling"          # where it goes in the story: a key of SECTIONS
    STORY = "A short paragraph: what it shows and what to look for."
    DEFAULTS = {"eps": 1e-3, "seeds": [0, 1]}   # every parameter with its default
    QUICK = {"seeds": [0]}       # overrides of DEFAULTS for --quick (keys of DEFAULTS)
    FIGURES = (                  # what the report shows, in order
        Figure("figures/thing.png", "caption", ("thing_time", "thing_slope")),
    )

    def run(params: dict, out_dir: Path, progress: Progress) -> dict:
        ...  # compute; save arrays into out_dir / "arrays" (npz) and figures
        ...  # into out_dir / "figures" (PNG, matplotlib Agg); both folders exist
        return {"thing_time": 1.0, "thing_slope": -1.0}

and add its module name to ``MODULES`` below.  That is all: the CLI, reproduce
and the report pick it up.

The rules:

- ``params`` is ``DEFAULTS`` updated by ``QUICK`` (with ``--quick``) and by
  ``--set key=value`` (values parsed as TOML; an unknown key, or a value of the
  wrong type, is an :class:`~condensation.errors.InputError`).  Parameter
  values are TOML types: bool, int, float, str or lists of them.
- ``run`` returns its *headline numbers*: a flat dict of names that say what
  they are (``three_layer_slope``, not ``s``) to float, int, bool or None.
  The framework prefixes each with the experiment's key (``NAME`` with '-' →
  '_'), so ``three_layer_slope`` of ``escape-scaling`` is stored and reported
  as ``escape_scaling.three_layer_slope``.  Non-finite floats are stored as null.
- ``Figure.numbers`` lists unprefixed headline names to print beside the figure;
  every declared figure file must exist after ``run``.
- An experiment that trains on a data set declares ``DATA_DEFAULT``: its own
  ``[data]`` section (a dict, or a function of ``params`` returning one, e.g.
  ``lambda p: {"dataset": "teacher", "seed": p["data_seed"]}``), and builds its
  data with :func:`data_config` (``load_dataset(data_config(p, DATA_DEFAULT))``)
  or :func:`data_section` (the dict, for ``config_from_dict``).  It then accepts
  every key of the config's ``[data]`` as ``--set data.KEY=VALUE`` (``data.path``
  for a user's own ``.npz``/CSV file), applied to every network it trains on
  data, so its figures can be remade on any data; its ``summary.json`` records
  the data it used (:meth:`Experiment.data_used`).
- An experiment without a data set (effective dynamics drawn at ``|z| = 1``,
  random matrices) says why in ``NO_DATA`` (a clause, e.g. ``"draws its
  effective states at |z| = 1"``); ``data.*`` keys are refused for it in one line.
- ``REPRODUCE`` (optional, keys of DEFAULTS): overrides of DEFAULTS for the full
  ``reproduce`` only, for an experiment whose standalone default (``condensation run
  NAME``) is larger than what the full ``reproduce`` can afford; ``--quick`` still
  uses QUICK everywhere.
- ``SECONDS = (quick, default)`` (optional, default (1, 1)): the rough CPU seconds of
  each variant on one core, as measured (``benchmarks/bench_reproduce.py``, or the
  ``cpu_s`` a ``reproduce`` records per experiment); ``reproduce`` starts the longest
  first so its workers finish together.  It orders work only: results never depend on it.
- ``progress(description, done, total)`` reports progress (e.g. GD steps); it
  may be called with new descriptions for new phases.  It must not be used for
  anything else: results must not depend on it.
- Everything the report shows (story, captions, numbers) is stored in the
  experiment's ``summary.json``, so the report can be re-rendered from disk.
  Make ``run`` deterministic (fixed seeds) and write nothing outside ``out_dir``.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from condensation.errors import InputError

# Story order of the report; a section without experiments is left out.
SECTIONS: dict[str, str] = {
    "setup": "Setup",
    "plateau": "Plateau and condensation",
    "effective": "Effective dynamics and blow-up",
    "final-stage": "Final-stage condition",
    "scaling": "Scaling",
    "optimizers": "Optimizers: SGD, momentum, Adam",
    "matrix-completion": "Matrix completion",
    "open-questions": "Open questions",
}

# The registry: one line per experiment module (order within a section = order here).
MODULES: tuple[str, ...] = (
    "condensation.experiments.condensation_three_layer",
    "condensation.experiments.two_vs_three_layer",
    "condensation.experiments.final_stage_vs_plateau",
    "condensation.experiments.escape_scaling",
    "condensation.experiments.matrix_completion",
    "condensation.experiments.optimizers",
    "condensation.experiments.small_layers",
    "condensation.experiments.blowup_census",
    "condensation.experiments.final_stage_necessity",
    "condensation.experiments.condensation_notions",
    "condensation.experiments.blowup_rates",
    "condensation.experiments.deeper_networks",
    "condensation.experiments.phase_diagram",
)

Progress = Callable[[str, int, int], None]
Headline = dict[str, float | int | bool | None]


def null_progress(description: str, done: int, total: int) -> None:
    """A progress callback that ignores everything."""


@dataclass(frozen=True)
class Figure:
    """A figure file of an experiment (relative to its out_dir), its caption and
    the (unprefixed) headline numbers to show beside it."""

    file: str
    caption: str
    numbers: tuple[str, ...] = ()


@dataclass(frozen=True)
class Experiment:
    """A registered experiment (the module's attributes, checked)."""

    name: str
    title: str
    section: str
    story: str
    defaults: Mapping[str, Any]
    quick: Mapping[str, Any]
    figures: tuple[Figure, ...]
    run_fn: Callable[[dict, Path, Progress], dict]
    uses_data: bool = False  # accepts data.* parameters (the config's [data] keys)
    # the experiment's own [data] section as a function of its params (uses_data)
    data_default: Callable[[dict], dict] | None = None
    no_data: str = "trains on no data set"  # why data.* is refused (not uses_data)
    seconds: tuple[float, float] = (1.0, 1.0)  # rough wall time (quick, default): task order
    reproduce: Mapping[str, Any] | None = None  # overrides of defaults in the full reproduce

    @property
    def key(self) -> str:
        """Prefix of the headline names: NAME with '-' replaced by '_'."""
        return self.name.replace("-", "_")

    def params(
        self, overrides: Sequence[str] = (), quick: bool = False, reproduce: bool = False
    ) -> dict[str, Any]:
        """DEFAULTS, then QUICK (if quick; else REPRODUCE if ``reproduce``), then
        ``key=value`` overrides, checked."""
        p = dict(self.defaults)
        if quick:
            p.update(self.quick)
        elif reproduce and self.reproduce:
            p.update(self.reproduce)
        for item in overrides:
            key, value = parse_set(item)
            if key.startswith("data.") and self.uses_data:
                p["data"] = check_data({**p.get("data", {}), key[len("data.") :]: value})
                continue
            if key.startswith("data."):
                raise InputError(
                    key,
                    value,
                    f"unknown parameter of experiment {self.name}: it {self.no_data}, "
                    "so data.* keys do not apply",
                    f"drop {key} (data.* keys go to the experiments that train on data)",
                )
            if key not in self.defaults:
                raise InputError(
                    key,
                    value,
                    f"unknown parameter of experiment {self.name}",
                    f"use one of: {', '.join(sorted(self.defaults))}"
                    + (", or data.KEY (the config's [data] keys)" if self.uses_data else ""),
                )
            p[key] = coerce_param(key, value, self.defaults[key])
            check_param_range(key, p[key], self.defaults[key])
        return p

    def data_config(self, params: dict[str, Any]):
        """The :class:`~condensation.config.network.DataConfig` this experiment trains on with
        ``params`` (its ``DATA_DEFAULT`` updated by ``data.*``); None without data."""
        if not self.uses_data:
            return None
        return data_config(params, self._data_default(params))

    def _data_default(self, params: dict[str, Any]) -> dict[str, Any]:
        return dict(self.data_default(params)) if self.data_default else {}

    def data_used(self, params: dict[str, Any]) -> dict[str, Any] | None:
        """What the experiment trains on with ``params``, as its summary records it
        (:func:`describe_data`; the data are loaded, so a malformed ``data.path`` is
        an InputError here, before any compute); None for an experiment without a
        data set."""
        if not self.uses_data:
            return None
        from condensation.data import load_dataset

        cfg = self.data_config(params)
        own = data_config({}, self._data_default(params))
        return describe_data(cfg, load_dataset(cfg), own)

    def run(self, params: dict[str, Any], out_dir: Path, progress: Progress) -> Headline:
        """Run into ``out_dir`` (exists; ``arrays/`` and ``figures/`` are created).

        Returns the prefixed headline numbers after checking them and the figures.
        """
        (out_dir / "arrays").mkdir(exist_ok=True)
        (out_dir / "figures").mkdir(exist_ok=True)
        raw = self.run_fn(dict(params), out_dir, progress)
        if not isinstance(raw, dict):
            raise TypeError(f"experiment {self.name}: run() must return a dict, got {raw!r}")
        out: Headline = {}
        for k, v in raw.items():
            if not isinstance(k, str) or "." in k:
                raise TypeError(f"experiment {self.name}: headline name {k!r} must be a plain str")
            out[f"{self.key}.{k}"] = _scalar(self.name, k, v)
        for fig in self.figures:
            if not (out_dir / fig.file).is_file():
                raise RuntimeError(f"experiment {self.name}: figure {fig.file} was not written")
        return out


def _scalar(name: str, key: str, v: Any) -> float | int | bool | None:
    if v is None or isinstance(v, bool):
        return v
    if hasattr(v, "item") and getattr(v, "ndim", 1) == 0:  # numpy scalar
        v = v.item()
    if isinstance(v, bool):
        return v
    if isinstance(v, int):
        return v
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    raise TypeError(f"experiment {name}: headline {key} = {v!r} is not a number")


def parse_set(item: str) -> tuple[str, Any]:
    """``key=value`` → (key, value); the value is parsed as TOML (a bare word is a
    string; a line break or a trailing comment is refused: see
    :func:`condensation.config.parse.set_value`).

    Args:
        item: the text given to ``--set``.

    Returns:
        ``(key, value)``.
    """
    from condensation.config.parse import parse_param

    return parse_param(item)


def coerce_param(key: str, value: Any, default: Any) -> Any:
    """Check ``value`` against the type of ``default`` (an int is accepted for a float):
    the config's one coercer (:func:`condensation.config.parse.coerce`).

    Args:
        key: the parameter's name.
        value: the value given (a TOML type).
        default: the parameter's default (its type is the parameter's).

    Returns:
        The converted value.
    """
    from condensation.config.parse import Kind, coerce

    return coerce(key, value, Kind.of_default(default), param=True)


def check_param_range(key: str, value: Any, default: Any) -> None:
    """The ranges every experiment parameter obeys: seeds (``seed`` in the name) follow
    the one seed rule; a number keeps the sign of its default (> 0 where the default
    is positive, >= 0 where it is 0) and stays representable (|v| <= 1e100, ints
    <= 2**53)."""
    from condensation.config import checks as inputs

    if isinstance(value, list):
        for v in value:  # every entry against the first default entry, as coerce_param
            check_param_range(key, v, default[0] if default else None)
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return
    if "seed" in key and isinstance(value, int):
        inputs.check_seed(key, value)
        return
    limit = inputs.MAX_INT if isinstance(value, int) else inputs.MAX_ABS
    if abs(value) > limit:
        raise InputError(
            key, value, f"must be at most {limit:g} in magnitude", f"give a smaller {key}"
        )
    if isinstance(default, (int, float)) and not isinstance(default, bool):
        if default > 0 and not value > 0:
            raise InputError(key, value, "must be > 0", f"give a positive {key}")
        if default == 0 and value < 0:
            raise InputError(key, value, "must be >= 0", f"give {key} >= 0")


def require_positive(p: dict[str, Any], keys: Sequence[str]) -> None:
    """Each of ``p[k]`` for ``k`` in ``keys`` must be > 0 (InputError naming it)."""
    for k in keys:
        if not p[k] > 0:
            raise InputError(k, p[k], "must be > 0", f"give a positive {k}")


def require_counts(p: dict[str, Any], keys: Sequence[str]) -> None:
    """Each of ``p[k]`` for ``k`` in ``keys`` is a count: must be >= 1."""
    for k in keys:
        if p[k] < 1:
            raise InputError(k, p[k], "must be >= 1", f"give a positive {k}")


def require_eps_range(p: dict[str, Any]) -> None:
    """``0 < eps_min < eps_max`` and ``n_eps >= 2`` (a log-log slope is fitted)."""
    if not 0 < p["eps_min"] < p["eps_max"]:
        raise InputError(
            "eps_min", p["eps_min"], f"must be > 0 and < eps_max = {p['eps_max']}", "fix the range"
        )
    if p["n_eps"] < 2:
        raise InputError("n_eps", p["n_eps"], "must be >= 2 to fit a slope", "use n_eps >= 2")


def check_data(body: dict[str, Any]) -> dict[str, Any]:
    """``data.*`` parameters checked as the config's ``[data]`` section (InputError)."""
    from condensation.config.memory import check_data_memory
    from condensation.config.network import DataConfig, validate_data
    from condensation.config.sections import build_section

    cfg = build_section("data", body, DataConfig)
    path = cfg.path
    if path is not None and not Path(path).is_file():
        raise InputError("data.path", path, "no such file", "give an existing .npz or .csv file")
    check_data_memory(validate_data(cfg))
    return body


def data_section(params: dict[str, Any], default: dict[str, Any]) -> dict[str, Any]:
    """An experiment's ``[data]`` section: its own ``default`` updated by ``data.*``."""
    return {**default, **params.get("data", {})}


def data_config(params: dict[str, Any], default: dict[str, Any]):
    """The :class:`~condensation.config.network.DataConfig` of :func:`data_section`, built
    and coerced as the config's ``[data]`` (InputError naming ``data.KEY``)."""
    from condensation.config.memory import check_data_memory
    from condensation.config.network import DataConfig, validate_data
    from condensation.config.sections import build_section

    cfg = validate_data(build_section("data", data_section(params, default), DataConfig))
    check_data_memory(cfg)
    return cfg


def describe_data(cfg, data, own_default=None) -> dict[str, Any]:
    """What a summary records about the data an experiment used.

    Args:
        cfg: the :class:`~condensation.config.network.DataConfig` it was built from.
        data: the :class:`~condensation.data.Dataset` itself.
        own_default: the experiment's own default ``DataConfig`` (None: unknown).

    Returns:
        ``{"name", "path", "n", "d", "teacher", "default", "default_teacher",
        "section"}``: the set's name (a built-in's, or the file's name), the path
        as given (None for a built-in set), the number of samples, the input
        dimension (a bias column included), whether it is the built-in teacher set,
        whether it is the experiment's own default data, whether both, and the
        ``[data]`` keys that made these data (a file: ``path`` and ``bias``; a
        built-in set: every key but ``path``).
    """
    import dataclasses

    teacher = cfg.path is None and cfg.dataset == "teacher"
    default = own_default is not None and cfg == own_default
    keys = ("path", "bias") if cfg.path is not None else None
    section = {
        k: v for k, v in dataclasses.asdict(cfg).items() if (k in keys if keys else k != "path")
    }
    return {
        "name": data.name,
        "path": cfg.path,
        "n": int(data.x.shape[0]),
        "d": int(data.d_in),
        "teacher": teacher,
        "default": default,
        "default_teacher": teacher and default,
        "section": section,
    }


_REQUIRED = ("NAME", "TITLE", "SECTION", "STORY", "DEFAULTS", "QUICK", "FIGURES", "run")


def from_module(mod: ModuleType) -> Experiment:
    """An :class:`Experiment` from a module that follows the protocol above."""
    missing = [a for a in _REQUIRED if not hasattr(mod, a)]
    if missing:
        raise TypeError(f"experiment module {mod.__name__} lacks {', '.join(missing)}")
    if mod.SECTION not in SECTIONS:
        raise TypeError(f"{mod.__name__}: SECTION {mod.SECTION!r} not one of {list(SECTIONS)}")
    for variant in ("QUICK", "REPRODUCE"):
        unknown = sorted(set(getattr(mod, variant, {})) - set(mod.DEFAULTS))
        if unknown:
            raise TypeError(f"{mod.__name__}: {variant} has keys not in DEFAULTS: {unknown}")
    return Experiment(
        name=mod.NAME,
        title=mod.TITLE,
        section=mod.SECTION,
        story=" ".join(mod.STORY.split()),
        defaults=dict(mod.DEFAULTS),
        quick=dict(mod.QUICK),
        figures=tuple(mod.FIGURES),
        run_fn=mod.run,
        uses_data=hasattr(mod, "DATA_DEFAULT") or bool(getattr(mod, "DATA", False)),
        data_default=_data_default_of(mod),
        no_data=" ".join(getattr(mod, "NO_DATA", "trains on no data set").split()),
        seconds=tuple(float(v) for v in getattr(mod, "SECONDS", (1.0, 1.0))),
        reproduce=dict(getattr(mod, "REPRODUCE", {})) or None,
    )


def _data_default_of(mod: ModuleType) -> Callable[[dict], dict] | None:
    """``DATA_DEFAULT`` as a function of params (a dict is the same for all params)."""
    default = getattr(mod, "DATA_DEFAULT", None)
    if default is None:
        return None
    if callable(default):
        return default
    if not isinstance(default, Mapping):
        raise TypeError(f"{mod.__name__}: DATA_DEFAULT must be a dict or a function of params")
    fixed = dict(default)
    return lambda params: dict(fixed)


def registry() -> dict[str, Experiment]:
    """Every registered experiment by name, in story order (section, then registry line)."""
    exps = [from_module(importlib.import_module(m)) for m in MODULES]
    order = list(SECTIONS)
    exps.sort(key=lambda e: order.index(e.section))  # stable: registry order within a section
    out: dict[str, Experiment] = {}
    for e in exps:
        if e.name in out:
            raise TypeError(f"two experiments are named {e.name}")
        out[e.name] = e
    return out


def names() -> list[str]:
    return list(registry())


def get(name: str) -> Experiment:
    """The experiment called ``name``; an unknown name lists the known ones."""
    reg = registry()
    if name not in reg:
        raise InputError("NAME", name, "unknown experiment", f"use one of: {', '.join(reg)}")
    return reg[name]
