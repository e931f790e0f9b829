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
value and the fix, before any output exists.  Also refused in one line:

- two keys that set the same thing, one of which would silently replace the
  other: two of the initial-scale keys (``init.scale``, ``init.scales``,
  ``init.gamma``, ``init.layer_scales``, ``init.layer_gammas``), ``init.seed``
  with ``init.seeds``, and ``init.path`` (explicit initial parameters, from the
  spec or its base) with any scale or seed key, across ``[sweep.set]`` and
  ``[sweep.axes]``;
- two values of an axis that resolve to the same config (``[3, 3.0]`` for an
  integer key), i.e. two cells with one id;
- a spec of more than :data:`MAX_CELLS` cells or :data:`MAX_MEMBERS` members
  (the product of the axes' lengths), counted before anything is built: each
  cell is a run directory of its own and its config is validated here (about
  half a millisecond each), so the limit bounds both the disk layout and the
  time before the first line (validation that takes over a second reports its
  progress).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from condensation.config.matrix import matrix_config_from_dict
from condensation.config.network import config_from_dict, read_toml
from condensation.errors import InputError
from condensation.progress import Progress

COMMANDS = ("train", "effective", "matrix")
MAX_CELLS = 10_000  # cells (run directories) of one spec
MAX_MEMBERS = 100_000  # members (rows of the table) of one spec
# keys that set the same quantity: a sweep may give at most one of each group
SCALE_KEYS = {
    "train": ("init.scale", "init.scales", "init.gamma", "init.layer_scales", "init.layer_gammas"),
    "effective": (
        "init.scale",
        "init.scales",
        "init.gamma",
        "init.layer_scales",
        "init.layer_gammas",
    ),
    "matrix": ("init.scale", "init.scales"),
}
SEED_KEYS = ("init.seed", "init.seeds")
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
    """A validated sweep spec: its command, base, fixed overrides, axes and cells."""

    path: Path
    command: str
    base: Path | None
    fixed: dict[str, Any]
    axes: dict[str, list[Any]]  # in the spec's order
    cells: tuple[Cell, ...]
    source: bytes | None = None  # the spec file's bytes as read and validated

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
    """The validated config object of ``command`` built from a nested dict."""
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


def _read_spec(path: Path) -> tuple[bytes, str]:
    """The spec file's bytes and its UTF-8 text (a missing, unreadable or non-UTF-8
    file: one line)."""
    if not path.is_file():
        raise _bad("SPEC", str(path), "no such file", "give the path of a sweep TOML spec")
    try:
        data = path.read_bytes()
    except OSError as e:
        raise _bad(
            "SPEC", str(path), f"cannot read ({e.strerror or e})", "check the file"
        ) from None
    try:
        return data, data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise _bad(
            "SPEC", str(path), f"not UTF-8 text (byte {e.start})", "save the spec as UTF-8"
        ) from None


def parse_spec(path: str | Path, *, stream: IO[str] | None = None) -> Spec:
    """Read and validate a sweep spec; every cell's config is checked.

    Args:
        path: the spec file (TOML with one ``[sweep]`` table).
        stream: where to report progress when validation takes over a second
            (None: silent).

    Returns:
        The :class:`Spec`, its cells in the order of the axes' product.
    """
    path = Path(path)
    source, text = _read_spec(path)
    try:
        doc = tomllib.loads(text)
    except ValueError as e:  # TOMLDecodeError, or an integer too long to convert
        raise _bad("SPEC", str(path), f"not valid TOML ({e})", "fix the TOML syntax") from None
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
    _check_size(axes)
    _check_conflicts(command, raw, fixed, axes)
    axes = {k: [_resolve_path(k, v, here) for v in vs] for k, vs in axes.items()}
    cells = _cells(command, raw, fixed, axes, stream)
    _open_inputs(command, cells, axes, fixed)
    return Spec(path, command, base, fixed, axes, tuple(cells), source)


def _check_size(axes: dict[str, list]) -> None:
    """Refuse a spec above :data:`MAX_CELLS` cells or :data:`MAX_MEMBERS` members,
    from the axes' lengths alone (nothing is built)."""
    cells = members = 1
    for key, values in axes.items():
        members *= len(values)
        if key not in FOLDED:
            cells *= len(values)
    shape = " x ".join(f"{len(v)} {k}" for k, v in axes.items())
    if cells > MAX_CELLS:
        raise _bad(
            "sweep.axes",
            shape,
            f"{cells} cells, above the limit of {MAX_CELLS} (each cell is a run directory)",
            "split the sweep into several specs (each its own --out), or use fewer values",
        )
    if members > MAX_MEMBERS:
        raise _bad(
            "sweep.axes",
            shape,
            f"{members} members, above the limit of {MAX_MEMBERS} (one table row each)",
            "split the sweep into several specs (each its own --out), or use fewer values",
        )


def _check_conflicts(command: str, raw: dict, fixed: dict, axes: dict) -> None:
    """Refuse two keys of which one would silently replace the other (see the module doc)."""
    given = [(f'sweep.set."{k}"', k, v) for k, v in fixed.items()]
    given += [(f'sweep.axes."{k}"', k, v) for k, v in axes.items()]
    scale_keys = SCALE_KEYS[command]
    for group, what in ((scale_keys, "the initial scale"), (SEED_KEYS, "the seeds")):
        hits = [g for g in given if g[1] in group]
        if len(hits) > 1:
            (w1, k1, _), (w2, k2, v2) = hits[0], hits[1]
            raise _bad(
                w2,
                v2,
                f"sets {what}, as {w1} does: one of the two would silently replace the other",
                f"keep one of {k1} and {k2} (one sweep per choice)",
            )
    if command == "matrix":
        return
    init = raw.get("init")
    in_base = isinstance(init, dict) and init.get("path") is not None
    path_at = next((w for w, k, _ in given if k == "init.path"), None)
    if path_at is None and not in_base:
        return
    where = path_at or "sweep.base (its init.path)"
    for w, k, v in given:
        if k in scale_keys or k in SEED_KEYS:
            raise _bad(
                w,
                v,
                f"not used: {where} loads the initial parameters from a file",
                f"drop {k}, or init.path",
            )


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


def _same(where: str, values: list, a: Any, b: Any) -> InputError:
    return _bad(
        where,
        values,
        f"the values {json.dumps(a)} and {json.dumps(b)} give the same config (one cell)",
        "give each value once",
    )


def _check_values(command: str, raw: dict, fixed: dict, axes: dict, where: dict) -> None:
    """Each axis's values on their own, so an error names the value; two values that
    resolve to the same config are refused."""
    for key, values in axes.items():
        if key in FOLDED:  # one ensemble: built once, each value only to name a bad one
            name = f"init.{FOLDED[key]}"
            try:
                cfg = _build(command, raw, {**fixed, name: list(values)}, where)
            except InputError:
                for v in values:
                    _build(command, raw, {**fixed, name: [v]}, where)
                raise
            seen = {}
            for v, c in zip(values, cfg["init"][FOLDED[key]]):
                blob = json.dumps(c)
                if blob in seen:
                    raise _same(where[key], values, seen[blob], v)
                seen[blob] = v
            continue
        seen = {}
        for v in values:
            blob = json.dumps(_build(command, raw, {**fixed, key: v}, where), sort_keys=True)
            if blob in seen:
                raise _same(where[key], values, seen[blob], v)
            seen[blob] = v


def _cells(
    command: str, raw: dict, fixed: dict, axes: dict, stream: IO[str] | None = None
) -> list[Cell]:
    where = {k: f'sweep.set."{k}"' for k in fixed}
    where.update({k: f'sweep.axes."{k}"' for k in axes})
    # fold init.seed / init.scale: name the folded key after the axis in errors
    where.update({f"init.{FOLDED[k]}": f'sweep.axes."{k}"' for k in FOLDED if k in axes})
    free = [k for k in axes if k not in FOLDED]
    seeds = tuple(axes["init.seed"]) if "init.seed" in axes else None
    scales = tuple(axes["init.scale"]) if "init.scale" in axes else None
    _check_values(command, raw, fixed, axes, where)
    total = 1
    for k in free:
        total *= len(axes[k])
    t0, progress = time.monotonic(), None
    cells: list[Cell] = []
    ids: dict[str, dict] = {}
    try:
        for combo in itertools.product(*(axes[k] for k in free)):
            values = dict(zip(free, combo))
            items = {**fixed, **values}
            if seeds is not None:
                items["init.seeds"] = list(seeds)
            if scales is not None:
                items["init.scales"] = list(scales)
            cfg = _build(command, raw, items, where)
            cid = cell_id(command, cfg)
            if cid in ids:  # two combinations, one config (a safety net)
                key = next((k for k in free if ids[cid][k] != values[k]), free[0])
                raise _same(where[key], axes[key], ids[cid][key], values[key])
            ids[cid] = values
            cells.append(Cell(cid, values, seeds, scales, cfg, tuple(axes)))
            if progress is None and stream is not None and time.monotonic() - t0 > 1.0:
                progress = Progress(
                    total, "cell", description="validating the spec", stream=stream, every_s=1.0
                )
            if progress is not None:
                progress.update(len(cells))
    finally:
        if progress is not None:
            progress.close()
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
