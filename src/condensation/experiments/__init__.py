"""Named experiments: one module each, registered by one line in ``MODULES``.

``condensation run NAME`` runs one of them into a directory, ``condensation
reproduce`` runs all of them and writes one HTML report (see
:mod:`condensation.reproduction` and :mod:`condensation.report.html`).

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
    "staircase": "The staircase: past the first plateau",
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
    "condensation.experiments.staircase",
)

from condensation.experiments.params import (  # noqa: E402  (re-exported: see __all__)
    check_data,
    check_param_range,
    coerce_param,
    data_config,
    data_section,
    describe_data,
    parse_set,
    require_counts,
    require_eps_range,
    require_positive,
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


__all__ = [
    "MODULES",
    "SECTIONS",
    "Experiment",
    "Figure",
    "Headline",
    "Progress",
    "check_data",
    "check_param_range",
    "coerce_param",
    "data_config",
    "data_section",
    "describe_data",
    "from_module",
    "get",
    "names",
    "null_progress",
    "parse_set",
    "registry",
    "require_counts",
    "require_eps_range",
    "require_positive",
]
