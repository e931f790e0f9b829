"""``condensation sweep``: every cell of a spec on the engine, resumable, one table.

Layout of ``DIR``: ``cells/<id>/`` (an ordinary run directory of the command per
cell, written atomically), ``results.parquet`` and ``results.csv`` (one row per
member), ``summary.json`` (kind ``sweep``), ``progress.log``, ``spec.toml`` (a
copy of the last spec run).  Rerunning on the same ``DIR`` reuses every complete
cell; only missing (or earlier failed) cells are computed.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import IO

from condensation.engine import Engine, Task, check_options
from condensation.errors import InputError
from condensation.progress import Progress
from condensation.store import atomic_write_bytes, write_json
from condensation.sweep.cells import read_cell, run_cell
from condensation.sweep.spec import Spec, parse_spec
from condensation.sweep.table import cell_rows, write_table


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

    summaries: dict[str, dict] = {}
    errors: dict[str, str] = {}
    for c in spec.cells:
        s = read_cell(cells_dir / c.id)
        if s is not None:
            summaries[c.id] = s
    reused = len(summaries)
    todo = [c for c in spec.cells if c.id not in summaries]
    if scheduler is None and todo:
        from condensation._jax_setup import usable_cores

        workers = min(usable_cores() if workers is None else workers, len(todo))
    by_id = {c.id: c for c in spec.cells}
    progress = Progress(len(spec.cells), "cell", stream=stream, log_file=out / "progress.log")
    try:
        progress.update(reused, description=f"{reused} reused" if reused else None)
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
            if c.id in summaries:
                rows.extend(cell_rows(c, summaries[c.id]))
            else:
                rows.extend(cell_rows(c, None, errors.get(c.id, "not run (interrupted)")))
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
            "cells_done": len(summaries) - reused,
            "cells_reused": reused,
            "cells_failed": len(errors),
            "cells_not_run": len(spec.cells) - len(summaries) - len(errors),
            "failed": {k: v for k, v in errors.items()},
            "wall_s": round(time.perf_counter() - t0, 3),
        }
        write_json(out / "summary.json", top)
    return top


def _axes(cell) -> str:
    return ", ".join(f"{k}={json.dumps(v)}" for k, v in cell.axes.items())
