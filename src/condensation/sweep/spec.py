"""Sweep specs: ``[sweep]`` TOML → validated cells, before anything runs.

A spec names a command (``train``, ``effective``, ``matrix``), a base config
of that command, fixed overrides (``[sweep.set]``) and axes
(``[sweep.axes]``): the product of the axes' values is the set of
combinations.  Axes that the command runs as one ensemble (``init.seed`` and
``init.scale``) are *folded*: every combination of the other axes is one
cell whose config lists the folded values as ``init.seeds`` / ``init.scales``,
run as one compiled ensemble; its members are the folded combinations.

Every cell's config is built once, from the spec's values, by the command's
config family (:mod:`condensation.config.families`: the same parsing and
validation as ``condensation train --set ...``; :mod:`condensation.sweep.expand`),
and the cell carries that object to the worker.  Any key the command's config
accepts is an axis (and a column of the table).  Every data or problem file,
and every ``init.path`` against its network, is opened, so a bad spec fails in
one line naming the axis, the value and the fix, before any output exists.
Paths in the spec resolve against the spec's folder, the base's against the
base's (:mod:`condensation.config.paths`).  Also refused in one line:

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

import json
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from condensation.config.families import COMMAND_FAMILIES, Family, family_of
from condensation.config.parse import parse_toml
from condensation.errors import InputError
from condensation.sweep.expand import FOLDED, Cell, cell_id, expand, open_inputs

__all__ = ["Cell", "Spec", "cell_id", "load_command_config", "parse_spec"]

COMMANDS = tuple(COMMAND_FAMILIES)  # the commands a sweep runs
MAX_CELLS = 10_000  # cells (run directories) of one spec
MAX_MEMBERS = 100_000  # members (rows of the table) of one spec
SPEC_KEYS = ("command", "base", "set", "axes")


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


def load_command_config(command: str, config):
    """The validated config object of ``command``: ``config`` itself when it is one,
    else built from its plain dict (e.g. a cell's config.toml)."""
    if isinstance(config, dict):
        return family_of(command).build(config)
    return config


def config_to_dict(command: str, raw: dict) -> dict:
    """Build and validate a config of ``command`` from a nested dict; its plain dict."""
    return load_command_config(command, raw).to_dict()


def _bad(where: str, value: Any, problem: str, fix: str) -> InputError:
    return InputError(where, value, problem, fix)


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
    doc = parse_toml(text, "SPEC", str(path))
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
    family = family_of(command)
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
        try:  # the base's own paths are relative to the base file
            raw = family.read(base)
        except InputError as e:
            raise _bad("sweep.base", sw["base"], e.problem, e.fix) from None
    fixed = sw.get("set", {})
    axes = sw.get("axes", {})
    for name, table in (("sweep.set", fixed), ("sweep.axes", axes)):
        if not isinstance(table, dict):
            raise _bad(name, table, "expected a table", f'write [{name}] then "section.key" = ...')
    fixed = {k: family.resolve(k, v, here) for k, v in fixed.items()}
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
    _check_conflicts(family, raw, fixed, axes)
    axes = {k: [family.resolve(k, v, here) for v in vs] for k, vs in axes.items()}
    cells = expand(command, raw, fixed, axes, stream)
    open_inputs(command, cells, axes, fixed)
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


def _check_conflicts(family: Family, raw: dict, fixed: dict, axes: dict) -> None:
    """Refuse two keys of which one would silently replace the other (see the module doc)."""
    given = [(f'sweep.set."{k}"', k, v) for k, v in fixed.items()]
    given += [(f'sweep.axes."{k}"', k, v) for k, v in axes.items()]
    scale_keys, seed_keys = family.scale_keys, family.seed_keys
    for group, what in ((scale_keys, "the initial scale"), (seed_keys, "the seeds")):
        hits = [g for g in given if g[1] in group]
        if len(hits) > 1:
            (w1, k1, _), (w2, k2, v2) = hits[0], hits[1]
            raise _bad(
                w2,
                v2,
                f"sets {what}, as {w1} does: one of the two would silently replace the other",
                f"keep one of {k1} and {k2} (one sweep per choice)",
            )
    if ("init", "path") not in family.path_keys:  # no initial parameters from a file
        return
    init = raw.get("init")
    in_base = isinstance(init, dict) and init.get("path") is not None
    path_at = next((w for w, k, _ in given if k == "init.path"), None)
    if path_at is None and not in_base:
        return
    where = path_at or "sweep.base (its init.path)"
    for w, k, v in given:
        if k in scale_keys or k in seed_keys:
            raise _bad(
                w,
                v,
                f"not used: {where} loads the initial parameters from a file",
                f"drop {k}, or init.path",
            )
