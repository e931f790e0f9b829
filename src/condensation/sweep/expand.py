"""A spec's axes expanded into cells, each validated once, before anything runs.

Every cell's config is built by its command's config family
(:mod:`condensation.config.families`: the same parsing, coercion and validation
as ``condensation train --set ...``) directly from the values of the spec, never
through text; the cell carries that config object to the worker.  Every data or
problem file (and every ``init.path`` against its network) is opened here, so a
bad spec fails in one line naming the axis, the value and the fix.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import time
from dataclasses import dataclass
from typing import IO, Any

from condensation.config.families import family_of
from condensation.errors import InputError
from condensation.progress import Progress

FOLDED = {"init.seed": "seeds", "init.scale": "scales"}  # axis -> ensemble key of [init]


@dataclass(frozen=True)
class Cell:
    """One run of the command: the values of the unfolded axes, the folded
    values (its ensemble members), and its resolved config, validated once when
    the spec is read: ``cfg`` is the config object the worker runs, ``config``
    its plain dict (the cell's id, and what its config.toml holds)."""

    id: str
    axes: dict[str, Any]  # unfolded axis -> value
    seeds: tuple[int, ...] | None  # folded init.seed values (None: axis absent)
    scales: tuple[float, ...] | None  # folded init.scale values
    config: dict[str, dict[str, Any]]  # resolved config (what config.toml holds)
    order: tuple[str, ...] = ()  # every axis, in the spec's order
    cfg: Any = None  # the validated config object itself (config is its plain dict)

    def member_axes(self, seed: int | None, scale: float | None) -> dict[str, Any]:
        """The axis values of one member, in the order of the spec's axes."""
        out = dict(self.axes)
        if self.seeds is not None:
            out["init.seed"] = seed
        if self.scales is not None:
            out["init.scale"] = scale
        return {k: out[k] for k in self.order if k in out} | out


def cell_id(command: str, config: dict) -> str:
    """A stable hash of the command and its resolved config (sorted JSON)."""
    blob = json.dumps({"command": command, "config": config}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _build(command: str, raw: dict, items: dict[str, Any], where: dict[str, str]):
    """The validated config of ``raw`` with ``items`` placed; an error names the
    spec entry (``where``) that gave the bad key, or, when the key is one the
    spec did not give (e.g. the base's ``model.widths`` against a ``model.depth``
    axis), the spec entries of this combination that made it bad."""
    try:
        return family_of(command).build(raw, items)
    except InputError as e:
        field = e.field
        if field in where:
            raise InputError(where[field], e.value, e.problem, e.fix) from None
        for key, w in where.items():  # an unknown section or key of an axis
            if key.split(".")[0] == field:
                raise InputError(w, e.value, e.problem, e.fix) from None
        given = [k for k in items if where.get(k, "").startswith("sweep.axes")]
        given = given or [k for k in items if k in where]
        if not given:
            raise
        problem = f"with {field} = {e.value}: {e.problem}"
        if len(given) == 1:
            raise InputError(where[given[0]], items[given[0]], problem, e.fix) from None
        table = "sweep.axes" if where[given[0]].startswith("sweep.axes") else "sweep.set"
        combination = {k: items[k] for k in given}
        raise InputError(table, json.dumps(combination), problem, e.fix) from None


def _blob(cfg) -> str:
    return json.dumps(cfg.to_dict(), sort_keys=True)


def _same(where: str, values: list, a: Any, b: Any) -> InputError:
    return InputError(
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
            for v, c in zip(values, cfg.to_dict()["init"][FOLDED[key]]):
                blob = json.dumps(c)
                if blob in seen:
                    raise _same(where[key], values, seen[blob], v)
                seen[blob] = v
            continue
        seen = {}
        for v in values:
            blob = _blob(_build(command, raw, {**fixed, key: v}, where))
            if blob in seen:
                raise _same(where[key], values, seen[blob], v)
            seen[blob] = v


def expand(
    command: str, raw: dict, fixed: dict, axes: dict, stream: IO[str] | None = None
) -> list[Cell]:
    """The cells of a spec: one per combination of the unfolded axes, in product order.

    Args:
        command: the sweep's command.
        raw: the base config as a raw dict (its paths resolved).
        fixed: ``[sweep.set]`` (``{"section.key": value}``, paths resolved).
        axes: ``[sweep.axes]`` (``{"section.key": [values]}``, paths resolved).
        stream: where to report progress when this takes over a second.

    Returns:
        The cells, each with its validated config object.
    """
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
            config = cfg.to_dict()
            cid = cell_id(command, config)
            if cid in ids:  # two combinations, one config (a safety net)
                key = next((k for k in free if ids[cid][k] != values[k]), free[0])
                raise _same(where[key], axes[key], ids[cid][key], values[key])
            ids[cid] = values
            cells.append(Cell(cid, values, seeds, scales, config, tuple(axes), cfg))
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


def open_inputs(command: str, cells: list[Cell], axes: dict, fixed: dict) -> None:
    """Open every distinct data set / problem once, and every ``init.path`` against
    the network it initialises: a missing or bad file fails now, in one line."""
    seen: dict[str, Any] = {}
    for c in cells:
        try:
            if command == "matrix":
                from condensation.matrix import load_problem

                _once(seen, ("problem", c.config["problem"]), load_problem, c.cfg.problem)
                continue
            from condensation.data import load_dataset

            data = _once(seen, ("data", c.config["data"]), load_dataset, c.cfg.data)
            if c.cfg.init.path is not None:
                from condensation.models import NetworkSpec, load_params

                spec = NetworkSpec.from_config(c.cfg.model, data.d_in)
                key = ("init", c.cfg.init.path, spec.shapes)
                _once(seen, key, load_params, c.cfg.init.path, spec)
        except InputError as e:
            field = e.field.split(":")[0]  # init.path:W1 -> init.path
            where = next(
                (f'sweep.axes."{k}"' for k in axes if k == field),
                next((f'sweep.set."{k}"' for k in fixed if k == field), e.field),
            )
            raise InputError(where, e.value, e.problem, e.fix) from None


def _once(seen: dict, key: Any, make, *args):
    """``make(*args)`` once per distinct ``key`` (kept in ``seen``)."""
    blob = json.dumps(key, sort_keys=True)
    if blob not in seen:
        seen[blob] = make(*args)
    return seen[blob]
