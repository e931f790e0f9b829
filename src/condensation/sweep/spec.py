"""Sweep specs: ``[sweep]`` TOML → validated cells, before anything runs.

A spec names a command (``train``, ``effective``, ``matrix``), a base config
of that command, fixed overrides (``[sweep.set]``) and axes
(``[sweep.axes]``): the product of the axes' values is the set of
combinations.  Axes that the command runs as one ensemble (``init.seed`` and
``init.scale``) are *folded*: every combination of the other axes is one
cell whose config lists the folded values as ``init.seeds`` / ``init.scales``,
run as one compiled ensemble; its members are the folded combinations.

Every cell's resolved config is built with the command's own config loader
(the same validation as ``condensation train --set ...``), and every data or
problem file is opened, so a bad spec fails in one line naming the axis, the
value and the fix, before any output exists.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from condensation.config import config_from_dict, read_toml
from condensation.errors import InputError
from condensation.matrix.config import matrix_config_from_dict

COMMANDS = ("train", "effective", "matrix")
FOLDED = {"init.seed": "seeds", "init.scale": "scales"}  # axis -> ensemble key of [init]
PATH_KEYS = ("data.path", "problem.path", "init.path")  # relative to the file naming them
SPEC_KEYS = ("command", "base", "set", "axes")


@dataclass(frozen=True)
class Cell:
    """One run of the command: the values of the unfolded axes, the folded
    values (its ensemble members), and its resolved, validated config."""

    id: str
    axes: dict[str, Any]  # unfolded axis -> value
    seeds: tuple[int, ...] | None  # folded init.seed values (None: axis absent)
    scales: tuple[float, ...] | None  # folded init.scale values
    config: dict[str, dict[str, Any]]  # resolved config (what config.toml holds)
    order: tuple[str, ...] = ()  # every axis, in the spec's order

    def member_axes(self, seed: int | None, scale: float | None) -> dict[str, Any]:
        """The axis values of one member, in the order of the spec's axes."""
        out = dict(self.axes)
        if self.seeds is not None:
            out["init.seed"] = seed
        if self.scales is not None:
            out["init.scale"] = scale
        return {k: out[k] for k in self.order if k in out} | out


@dataclass(frozen=True)
class Spec:
    path: Path
    command: str
    base: Path | None
    fixed: dict[str, Any]
    axes: dict[str, list[Any]]  # in the spec's order
    cells: tuple[Cell, ...]

    @property
    def n_members(self) -> int:
        n = 1
        for v in self.axes.values():
            n *= len(v)
        return n


def cell_id(command: str, config: dict) -> str:
    """A stable hash of the command and its resolved config (sorted JSON)."""
    blob = json.dumps({"command": command, "config": config}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def config_to_dict(command: str, raw: dict) -> dict:
    """Build and validate a config of ``command`` from a nested dict; its plain dict."""
    load = matrix_config_from_dict if command == "matrix" else config_from_dict
    return load(raw).to_dict()


def load_command_config(command: str, raw: dict):
    load = matrix_config_from_dict if command == "matrix" else config_from_dict
    return load(raw)


def _toml_value(v: Any) -> str:
    import tomli_w

    return tomli_w.dumps({"v": v})[len("v = ") :].strip()


def _bad(where: str, value: Any, problem: str, fix: str) -> InputError:
    return InputError(where, value, problem, fix)


def _resolve_path(key: str, value: Any, rel_to: Path) -> Any:
    if key in PATH_KEYS and isinstance(value, str) and not Path(value).is_absolute():
        return str((rel_to / value).resolve())
    return value


def parse_spec(path: str | Path) -> Spec:
    """Read and validate a sweep spec; every cell's config is checked."""
    path = Path(path)
    try:
        doc = tomllib.loads(path.read_text()) if path.is_file() else None
    except tomllib.TOMLDecodeError as e:
        raise _bad("SPEC", str(path), f"not valid TOML ({e})", "fix the TOML syntax") from None
    if doc is None:
        raise _bad("SPEC", str(path), "no such file", "give the path of a sweep TOML spec")
    if set(doc) != {"sweep"} or not isinstance(doc["sweep"], dict):
        raise _bad(
            "SPEC", str(path), "expected one [sweep] table", "write [sweep] with command and axes"
        )
    sw = doc["sweep"]
    for k in sw:
        if k not in SPEC_KEYS:
            raise _bad(f"sweep.{k}", sw[k], "unknown key", f"use one of: {', '.join(SPEC_KEYS)}")
    command = sw.get("command")
    if command not in COMMANDS:
        raise _bad(
            "sweep.command", command, "unknown command", f"use one of: {', '.join(COMMANDS)}"
        )
    here = path.resolve().parent
    base = None
    raw: dict = {}
    if sw.get("base") is not None:
        if not isinstance(sw["base"], str):
            raise _bad("sweep.base", sw["base"], "expected a path", 'write base = "base.toml"')
        base = (here / sw["base"]).resolve()
        if not base.is_file():
            raise _bad(
                "sweep.base",
                sw["base"],
                f"no such file ({base})",
                "give a config of the command, relative to the spec file",
            )
        try:
            raw = read_toml(base)
        except InputError as e:
            raise _bad("sweep.base", sw["base"], e.problem, e.fix) from None
        for key in PATH_KEYS:  # the base's own paths are relative to the base file
            sec, k = key.split(".")
            if isinstance(raw.get(sec), dict) and k in raw[sec]:
                raw[sec][k] = _resolve_path(key, raw[sec][k], base.parent)
    fixed = sw.get("set", {})
    axes = sw.get("axes", {})
    for name, table in (("sweep.set", fixed), ("sweep.axes", axes)):
        if not isinstance(table, dict):
            raise _bad(name, table, "expected a table", f'write [{name}] then "section.key" = ...')
    fixed = {k: _resolve_path(k, v, here) for k, v in fixed.items()}
    for key, values in axes.items():
        where = f'sweep.axes."{key}"'
        if not isinstance(values, list):
            raise _bad(where, values, "an axis is a list of values", f'write "{key}" = [v1, v2]')
        if not values:
            raise _bad(where, values, "empty axis", "give at least one value, or remove the axis")
        if "." not in key:
            raise _bad(where, values, "expected section.key", 'write e.g. "init.scale" = [...]')
        if key in fixed:
            raise _bad(where, values, "also given in [sweep.set]", "keep it in one of the two")
        dup = [json.dumps(v, sort_keys=True) for v in values]
        if len(set(dup)) != len(dup):
            raise _bad(where, values, "repeated value", "give each value once")
    for a, b in (("init.seed", "init.seeds"), ("init.scale", "init.scales")):
        if a in axes and b in axes:
            raise _bad(
                f'sweep.axes."{b}"', axes[b], f"given with {a}", f"sweep {a} or {b}, not both"
            )
    axes = {k: [_resolve_path(k, v, here) for v in vs] for k, vs in axes.items()}
    cells = _cells(command, raw, fixed, axes)
    _open_inputs(command, cells, axes, fixed)
    return Spec(path, command, base, fixed, axes, tuple(cells))


def _build(command: str, raw: dict, items: dict[str, Any], where: dict[str, str]) -> dict:
    overrides = [f"{k}={_toml_value(v)}" for k, v in items.items()]
    try:
        if command == "matrix":
            cfg = matrix_config_from_dict(raw, overrides)
        else:
            cfg = config_from_dict(raw, overrides)
    except InputError as e:
        field = e.field
        if field in where:
            raise _bad(where[field], e.value, e.problem, e.fix) from None
        for key, w in where.items():  # an unknown section or key of an axis
            if key.split(".")[0] == field:
                raise _bad(w, e.value, e.problem, e.fix) from None
        raise
    return cfg.to_dict()


def _cells(command: str, raw: dict, fixed: dict, axes: dict) -> list[Cell]:
    where = {k: f'sweep.set."{k}"' for k in fixed}
    where.update({k: f'sweep.axes."{k}"' for k in axes})
    # fold init.seed / init.scale: name the folded key after the axis in errors
    where.update({f"init.{FOLDED[k]}": f'sweep.axes."{k}"' for k in FOLDED if k in axes})
    free = [k for k in axes if k not in FOLDED]
    seeds = tuple(axes["init.seed"]) if "init.seed" in axes else None
    scales = tuple(axes["init.scale"]) if "init.scale" in axes else None
    # each value of an axis is checked on its own first, so the error names it
    for key in axes:
        for v in axes[key]:
            items = dict(fixed)
            items[f"init.{FOLDED[key]}" if key in FOLDED else key] = [v] if key in FOLDED else v
            _build(command, raw, items, where)
    cells = []
    for combo in itertools.product(*(axes[k] for k in free)):
        values = dict(zip(free, combo))
        items = {**fixed, **values}
        if seeds is not None:
            items["init.seeds"] = list(seeds)
        if scales is not None:
            items["init.scales"] = list(scales)
        cfg = _build(command, raw, items, where)
        cells.append(Cell(cell_id(command, cfg), values, seeds, scales, cfg, tuple(axes)))
    return cells


def _open_inputs(command: str, cells: list[Cell], axes: dict, fixed: dict) -> None:
    """Open every distinct data set / problem once: a missing or bad file fails now."""
    section = "problem" if command == "matrix" else "data"
    seen = set()
    for c in cells:
        body = c.config.get(section, {})
        blob = json.dumps(body, sort_keys=True)
        if blob in seen:
            continue
        seen.add(blob)
        try:
            cfg = load_command_config(command, c.config)
            if command == "matrix":
                from condensation.matrix import load_problem

                load_problem(cfg.problem)
            else:
                from condensation.data import load_dataset

                load_dataset(cfg.data)
        except InputError as e:
            where = next(
                (f'sweep.axes."{k}"' for k in axes if k == e.field),
                next((f'sweep.set."{k}"' for k in fixed if k == e.field), e.field),
            )
            raise _bad(where, e.value, e.problem, e.fix) from None
