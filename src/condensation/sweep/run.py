"""``condensation sweep``: every cell of a spec on the engine, resumable, one table.

Layout of ``DIR``: ``cells/<id>/`` (an ordinary run directory of the command per
cell, written atomically), ``results.parquet`` and ``results.csv`` (one row per
member), ``summary.json`` (kind ``sweep``), ``progress.log``, ``spec.toml`` (a
copy of the last spec run).  Rerunning on the same ``DIR`` reuses every complete
cell; only missing (or earlier failed) cells are computed.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import IO

from condensation.engine import Engine, Task, check_options
from condensation.errors import InputError
from condensation.progress import Progress
from condensation.store import atomic_write_bytes, write_json
from condensation.sweep.cells import read_cell, run_cell
from condensation.sweep.spec import (
    Cell,
    Spec,
    cell_id,
    config_to_dict,
    load_command_config,
    parse_spec,
)
from condensation.sweep.table import failed_row, member_row, write_table


def check_sweep_dir(out: Path) -> None:
    """``DIR`` is new, empty, or an earlier sweep's directory."""
    if not out.exists():
        return
    if not out.is_dir():
        raise InputError("--out", str(out), "is a file", "give a directory for the sweep")
    if not any(out.iterdir()) or (out / "cells").is_dir():
        return
    try:
        kind = json.loads((out / "summary.json").read_text()).get("kind")
    except (OSError, ValueError, AttributeError):
        kind = None
    if kind != "sweep":
        raise InputError(
            "--out",
            str(out),
            "exists and is not a sweep directory",
            "choose a new directory, or an earlier sweep's to continue it",
        )


def run_sweep(
    spec: str | Path | Spec,
    out: str | Path,
    *,
    workers: int | None = None,
    scheduler: str | None = None,
    retries: int = 2,
    stream: IO[str] | None = None,
) -> dict:
    """Run every cell of ``spec`` not already complete in ``out``; write the table."""
    t0 = time.perf_counter()
    spec = spec if isinstance(spec, Spec) else parse_spec(spec)
    check_options(workers, scheduler, retries)
    out = Path(out)
    check_sweep_dir(out)
    cells_dir = out / "cells"
    cells_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out / "spec.toml", spec.path.read_bytes())

    summaries: dict[str, dict] = {}  # cell id -> summary (reused or computed now)
    errors: dict[str, str] = {}
    plan, todo = _plan(spec, cells_dir, summaries)
    reused = len(summaries)
    if scheduler is None and todo:
        from condensation._jax_setup import usable_cores

        workers = min(usable_cores() if workers is None else workers, len(todo))
    by_id = {c.id: c for c in todo}
    progress = Progress(len(todo), "cell", stream=stream, log_file=out / "progress.log")
    try:
        if reused:
            progress.update(description=f"{reused} complete cells reused")
        if todo:
            with Engine(workers=workers, scheduler=scheduler, retries=retries) as eng:
                tasks = [
                    Task(c.id, run_cell, (spec.command, c.config, str(cells_dir / c.id)))
                    for c in todo
                ]
                for o in eng.run(tasks):
                    if o.ok:
                        summaries[o.key] = o.value
                    else:
                        errors[o.key] = o.error
                    progress.advance(failed=0 if o.ok else 1, description=_axes(by_id[o.key]))
    finally:
        progress.close()
        rows = []
        for c in spec.cells:
            for member, cid in plan[c.id]:
                found = _member(summaries.get(cid), member)
                if found is not None:
                    rows.append(member_row(c, found, cid))
                else:
                    error = errors.get(cid, "not run (interrupted)")
                    rows.append(failed_row(c, member, cid, error))
        write_table(out, rows)
        top = {
            "kind": "sweep",
            "command": spec.command,
            "spec": str(spec.path.resolve()),
            "base": str(spec.base) if spec.base else None,
            "set": spec.fixed,
            "axes": spec.axes,
            "folded": [k for k in spec.axes if k in ("init.seed", "init.scale")],
            "cells": len(spec.cells),
            "members": len(rows),
            "cells_computed": len(todo),
            "cells_done": len(summaries) - reused,
            "cells_reused": reused,
            "cells_failed": len(errors),
            "cells_not_run": len(todo) - (len(summaries) - reused) - len(errors),
            "failed": dict(errors),
            "wall_s": round(time.perf_counter() - t0, 3),
        }
        write_json(out / "summary.json", top)
    return top


Member = tuple  # (seed, scale) of an ensemble member


def _member(summary: dict | None, member: Member) -> dict | None:
    if summary is None:
        return None
    return next((m for m in summary["members"] if (m.get("seed"), m.get("scale")) == member), None)


def _members(command: str, config: dict) -> list[Member]:
    cfg = load_command_config(command, config)
    return [(s, e) for s, e in cfg.member_seeds_scales]


def _group_key(command: str, config: dict, folded: tuple[str, ...]) -> str:
    """The cell's config without its folded ensemble lists: cells of one group
    differ only in which seeds/scales they ran."""
    init = {k: v for k, v in config.get("init", {}).items() if k not in folded}
    return cell_id(command, {**config, "init": init})


def _plan(spec: Spec, cells_dir: Path, summaries: dict) -> tuple[dict, list[Cell]]:
    """For every spec cell, which cell provides each member; and the cells to compute.

    A spec cell that is complete on disk provides all its members.  Otherwise
    (folded axes only) members already computed by earlier cells of the same
    group (same config but other seeds/scales, e.g. before a seed was added) are
    reused, and the missing members are run as new cells, one per set of seeds
    sharing the same missing scales (each a seeds x scales ensemble)."""
    plan: dict[str, list] = {}
    todo: list[Cell] = []
    earlier = None
    for c in spec.cells:
        own = read_cell(cells_dir / c.id)
        needed = _members(spec.command, c.config)
        if own is not None:
            summaries[c.id] = own
            plan[c.id] = [(m, c.id) for m in needed]
            continue
        folded = tuple(k for k, v in (("seeds", c.seeds), ("scales", c.scales)) if v is not None)
        have: dict[Member, str] = {}
        if folded:
            if earlier is None:
                earlier = _complete_cells(cells_dir)
            key = _group_key(spec.command, c.config, folded)
            for cid, (config, summary) in earlier.items():
                if _group_key(spec.command, config, folded) == key:
                    summaries[cid] = summary
                    for m in summary["members"]:
                        have.setdefault((m.get("seed"), m.get("scale")), cid)
        missing = [m for m in needed if m not in have]
        if len(missing) == len(needed):
            todo.append(c)
            plan[c.id] = [(m, c.id) for m in needed]
            continue
        new = {}
        for cell in _split(spec.command, c, missing):
            todo.append(cell)
            for m in _members(spec.command, cell.config):
                new[m] = cell.id
        plan[c.id] = [(m, have.get(m) or new[m]) for m in needed]
    used = {cid for p in plan.values() for _, cid in p}
    for cid in [k for k in summaries if k not in used]:
        del summaries[cid]
    return plan, todo


def _split(command: str, c: Cell, missing: list[Member]) -> list[Cell]:
    """The missing members of ``c`` as seeds x scales cells (same config otherwise)."""
    by_seed: dict = {}
    for s, e in missing:
        by_seed.setdefault(s, []).append(e)
    groups: dict = {}
    for s, es in by_seed.items():
        groups.setdefault(tuple(es), []).append(s)
    cells = []
    for scales, seeds in groups.items():
        init = dict(c.config.get("init", {}))
        if c.seeds is not None:
            init["seeds"] = list(seeds)
        if c.scales is not None:
            init["scales"] = list(scales)
        config = {**c.config, "init": init}
        config = config_to_dict(command, config)  # validated, canonical
        cells.append(
            dataclasses.replace(
                c,
                id=cell_id(command, config),
                config=config,
                seeds=tuple(seeds) if c.seeds is not None else None,
                scales=tuple(scales) if c.scales is not None else None,
            )
        )
    return cells


def _complete_cells(cells_dir: Path) -> dict[str, tuple[dict, dict]]:
    """Every complete cell directory: id -> (config, summary)."""
    from condensation.config import read_toml

    out = {}
    for d in sorted(cells_dir.iterdir()):
        if d.name.startswith("."):
            continue
        s = read_cell(d)
        if s is not None and (d / "config.toml").is_file():
            out[d.name] = (read_toml(d / "config.toml"), s)
    return out


def _axes(cell) -> str:
    return ", ".join(f"{k}={json.dumps(v)}" for k, v in cell.axes.items())
