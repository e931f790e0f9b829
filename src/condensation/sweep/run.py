"""``condensation sweep``: every cell of a spec on the engine, resumable, one table.

Layout of ``DIR``: ``.condensation-sweep`` (the marker: written first, it proves
the directory is this tool's sweep), ``cells/<id>/`` (an ordinary run directory
of the command per cell, written atomically), ``results.parquet`` and
``results.csv`` (one row per member), ``summary.json`` (kind ``sweep``),
``progress.log``, ``spec.toml`` (a copy of the last spec run).  Rerunning on the
same ``DIR`` reuses every complete cell; only missing (or earlier failed) cells
are computed.

Never touching what is not ours: ``DIR`` must be new, empty, or carry the sweep
marker; anything else (a folder that merely holds ``cells/``, an earlier run of
another command) is refused before anything is written.  The sweep holds the
lock of ``DIR`` (:func:`condensation.store.rundir.claim`) from before it reads
``DIR`` until the table is written, so a second sweep (or run) on the same
``DIR`` is refused naming the first's pid.  Nothing is written before the
engine has started (an unreachable ``--scheduler`` leaves ``DIR`` as it was).
"""

from __future__ import annotations

import dataclasses
import json
import os
import secrets
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import IO

from condensation.engine import Engine, Task, check_options
from condensation.errors import InputError
from condensation.progress import Progress
from condensation.store.rundir import atomic_write_bytes, claim, write_json
from condensation.sweep.cells import read_cell, run_cell
from condensation.sweep.expand import Cell, cell_id
from condensation.sweep.spec import Spec, parse_spec
from condensation.sweep.table import NOT_RUN, failed_row, member_row, write_table

SWEEP_MARKER = ".condensation-sweep"


def read_sweep_marker(out: str | Path) -> dict | None:
    """The marker of a sweep directory this tool made, or None."""
    try:
        m = json.loads((Path(out) / SWEEP_MARKER).read_text())
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    if not isinstance(m, dict) or m.get("tool") != "condensation" or m.get("kind") != "sweep":
        return None
    return m if isinstance(m.get("token"), str) and m["token"] else None


def check_sweep_dir(out: Path) -> bool:
    """``DIR`` is new or empty (False: the sweep will claim it) or a sweep this tool
    made (True: continue it); anything else is refused, nothing changed."""
    if not out.exists() and not out.is_symlink():
        return False
    if not out.is_dir():
        raise InputError("--out", str(out), "exists and is not a directory", "choose a new path")
    try:
        empty = not any(out.iterdir())
    except OSError as e:
        raise _not_writable(out, e) from None
    if empty:
        return False
    if (out / "cells").is_symlink():  # the sweep made a folder there, never a link
        raise InputError(
            "--out",
            str(out),
            "its cells/ is a link, not the folder the sweep made; nothing was changed",
            "choose a new directory",
        )
    if read_sweep_marker(out) is None:
        raise InputError(
            "--out",
            str(out),
            f"exists and is not a sweep made by condensation (no {SWEEP_MARKER} marker); "
            "nothing was changed",
            "choose a new or empty directory",
        )
    return True


def _not_writable(out: Path, e: OSError) -> InputError:
    return InputError(
        "--out",
        str(out),
        f"cannot be written ({e.strerror or e})",
        "choose a directory you can write to, on a disk with free space",
    )


def _claim(out: Path, owned: bool, spec: Spec) -> None:
    """Make ``out`` this sweep's: the marker first (a new or empty directory), then
    ``cells/`` and the copy of the spec."""
    if not owned:
        made = not os.path.lexists(out)
        out.mkdir(parents=True, exist_ok=True)
        marker = {
            "tool": "condensation",
            "kind": "sweep",
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "pid": os.getpid(),
            "token": secrets.token_hex(16),
        }
        try:
            atomic_write_bytes(out / SWEEP_MARKER, (json.dumps(marker, indent=2) + "\n").encode())
        except BaseException:
            if made:  # a refusal leaves nothing: the directory this sweep just made goes
                os.rmdir(out)
            raise
    (out / "cells").mkdir(exist_ok=True)
    source = spec.source if spec.source is not None else spec.path.read_bytes()
    atomic_write_bytes(out / "spec.toml", source)


def run_sweep(
    spec: str | Path | Spec,
    out: str | Path,
    *,
    workers: int | None = None,
    scheduler: str | None = None,
    retries: int = 2,
    stream: IO[str] | None = None,
    on_written: Callable[[dict], None] | None = None,
) -> dict:
    """Run every cell of ``spec`` not already complete in ``out``; write the table.

    Args:
        spec: a spec file or a parsed :class:`Spec`.
        out: the sweep directory (new, empty, or an earlier sweep's).
        workers: local worker processes (None: one per core; 0: in this process).
        scheduler: the address of a running Dask scheduler (None: a local cluster).
        retries: resubmissions of a task whose worker died (:class:`Engine`).
        stream: where progress lines go (default stderr).
        on_written: called with ``{"claimed": True}`` once ``out`` holds the marker,
            then with the summary once the table and ``summary.json`` are written
            (also when the sweep is interrupted): what a caller can report.

    Returns:
        The sweep's summary (as written to ``out/summary.json``).
    """
    t0 = time.perf_counter()
    spec = spec if isinstance(spec, Spec) else parse_spec(spec)
    check_options(workers, scheduler, retries)
    out = Path(out)
    with claim(out):  # missing parents made, locked
        owned = check_sweep_dir(out)
        cells_dir = out / "cells"
        summaries: dict[str, dict] = {}  # cell id -> summary (reused or computed now)
        plan, todo = _plan(spec, cells_dir, summaries)  # (reads only)
        reused = set(summaries)
        if scheduler is None and todo:
            from condensation.jax_setup import usable_cores

            workers = min(usable_cores() if workers is None else workers, len(todo))
        with ExitStack() as stack:
            eng = None
            if todo:  # started before anything is written: a bad --scheduler leaves no trace
                eng = stack.enter_context(
                    Engine(workers=workers, scheduler=scheduler, retries=retries)
                )
            try:
                _claim(out, owned, spec)
            except OSError as e:
                raise _not_writable(out, e) from None
            if on_written is not None:
                on_written({"claimed": True})
            return _compute(spec, out, eng, plan, todo, summaries, reused, t0, stream, on_written)


def _compute(spec, out, eng, plan, todo, summaries, reused, t0, stream, on_written) -> dict:
    """Run ``todo`` on ``eng``; write the table and summary (also on an interrupt)."""
    cells_dir = out / "cells"
    errors: dict[str, str] = {}
    computed: set[str] = set()
    by_id = {c.id: c for c in todo}
    interrupted = True
    progress = Progress(len(todo), "cell", stream=stream, log_file=out / "progress.log")
    try:
        if reused:
            progress.update(description=f"{len(reused)} complete cells reused")
        if todo:
            tasks = [
                Task(c.id, run_cell, (spec.command, c.cfg, str(cells_dir / c.id))) for c in todo
            ]
            for o in eng.run(tasks):
                if o.ok:
                    summaries[o.key] = o.value
                    computed.add(o.key)
                else:
                    errors[o.key] = o.error
                progress.advance(failed=0 if o.ok else 1, description=_axes(by_id[o.key]))
        interrupted = False
    finally:
        progress.close()
        rows = _rows(spec, plan, summaries, errors)
        failed = set(errors)
        not_run = {c.id for c in todo} - computed - failed
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
            "cells_done": len(computed - failed),
            "cells_reused": len(reused - failed),
            "cells_failed": len(failed),
            "cells_not_run": len(not_run),
            "failed": dict(errors),
            "not_run": sorted(not_run),
            "interrupted": interrupted,
            "wall_s": round(time.perf_counter() - t0, 3),
        }
        try:
            write_table(out, rows)
            write_json(out / "summary.json", top)
        except OSError as e:
            raise _not_writable(out, e) from None
        if on_written is not None:
            on_written(top)
    return top


def _rows(spec: Spec, plan: dict, summaries: dict, errors: dict) -> list[dict]:
    """One row per member of every spec cell, from what each cell ran: the members of
    a cell that ran exactly the spec cell, in their order in its summary; the members
    of a cell pieced from several (a new seed or scale) matched by (seed, scale).
    A member missing from its cell's summary fails that cell (added to ``errors``)."""
    rows = []
    for c in spec.cells:
        own = summaries.get(c.id)
        if own is not None and all(cid == c.id for _, cid in plan[c.id]):
            rows += [member_row(c, m, c.id) for m in own["members"]]
            continue
        for member, cid in plan[c.id]:
            found = _member(summaries.get(cid), member)
            if found is not None:
                rows.append(member_row(c, found, cid))
            elif cid in errors:
                rows.append(failed_row(c, member, cid, errors[cid]))
            elif cid in summaries:
                errors[cid] = f"member (seed, scale) = {member} is not in its summary.json"
                rows.append(failed_row(c, member, cid, errors[cid]))
            else:
                rows.append(failed_row(c, member, cid, None, NOT_RUN))
    return rows


Member = tuple  # (seed, scale) of an ensemble member


def _member(summary: dict | None, member: Member) -> dict | None:
    if summary is None:
        return None
    return next((m for m in summary["members"] if (m.get("seed"), m.get("scale")) == member), None)


def _members(cfg) -> list[Member]:
    """The members a cell of this config (object) runs: (seed, scale) each; one member
    of unknown seed and scale when ``init.path`` gives the parameters."""
    if getattr(cfg.init, "path", None) is not None:
        return [(None, None)]
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
        needed = _members(c.cfg)
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
            for m in _members(cell.cfg):
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
        init = {}  # a subset of the cell's validated seeds and scales: valid as they are
        if c.seeds is not None:
            init["seeds"] = tuple(seeds)
        if c.scales is not None:
            init["scales"] = tuple(scales)
        cfg = dataclasses.replace(c.cfg, init=dataclasses.replace(c.cfg.init, **init))
        config = cfg.to_dict()
        cells.append(
            dataclasses.replace(
                c,
                id=cell_id(command, config),
                config=config,
                cfg=cfg,
                seeds=tuple(seeds) if c.seeds is not None else None,
                scales=tuple(scales) if c.scales is not None else None,
            )
        )
    return cells


def _complete_cells(cells_dir: Path) -> dict[str, tuple[dict, dict]]:
    """Every complete cell directory: id -> (config, summary)."""
    from condensation.config.network import read_toml

    out = {}
    if not cells_dir.is_dir():
        return out
    for d in sorted(cells_dir.iterdir()):
        if d.name.startswith(".") or d.is_symlink():
            continue
        s = read_cell(d)
        if s is not None and (d / "config.toml").is_file():
            out[d.name] = (read_toml(d / "config.toml"), s)
    return out


def _axes(cell) -> str:
    return ", ".join(f"{k}={json.dumps(v)}" for k, v in cell.axes.items())
