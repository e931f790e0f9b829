#!/usr/bin/env python
"""The sweep engine: 1 vs 2 workers, and its overhead per cell, side by side in one run.

One 8-cell sweep of ``train`` (three-layer tanh, d = 5, n = 100, widths 50/50,
one member per cell; the cells differ in ``data.seed``, so every cell has the
same shapes and each process compiles once).  ``train.steps`` is calibrated by a
pilot so that one cell takes about ``--cell-s`` seconds (default 5) run directly.

- direct: the 8 cells' library function (:func:`condensation.sweep.cells.run_cell`,
  what each task calls) one after another in one fresh process (its imports and
  one compilation included, as a worker's are);
- 1 worker / 2 workers: ``run_sweep`` on a fresh ``LocalCluster`` (start-up
  included) into a fresh directory.

Reported: wall times, the cluster's start-up time (measured apart), speed-up
``t(1 worker) / t(2 workers)`` (target >= 1.7),
and overhead per cell ``(t(1 worker) - t(direct)) / t(direct)`` (target <= 5 %).
The machine may be shared: the numbers are only as quiet as it is.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("CONDENSATION_CPU_DEVICES", "1")  # one core per process, as workers

from condensation.engine import Engine  # noqa: E402
from condensation.sweep import parse_spec, run_sweep  # noqa: E402
from condensation.sweep.cells import run_cell  # noqa: E402

BASE = """\
[data]
dataset = "teacher"
n = 100
d = 5
[model]
depth = 3
widths = [50, 50]
[init]
scale = 1e-3
[train]
lr = 0.05
steps = {steps}
snapshots = 20
linear_snapshots = 20
"""

SPEC = """\
[sweep]
command = "train"
base = "base.toml"
[sweep.axes]
"data.seed" = [{seeds}]
"""


def _spec(d: Path, steps: int, cells: int) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    (d / "base.toml").write_text(BASE.format(steps=steps))
    (d / "spec.toml").write_text(SPEC.format(seeds=", ".join(str(i) for i in range(cells))))
    return d / "spec.toml"


def _direct(spec: Path, out: Path) -> float:
    """The cells' library function one after another in this process."""
    p = parse_spec(spec)
    t0 = time.perf_counter()
    for c in p.cells:
        run_cell(p.command, c.config, str(out / c.id))
    return time.perf_counter() - t0


def _direct_fresh(spec: Path, out: Path) -> float:
    """The same in a fresh process (imports and compilation included, as a worker's)."""
    code = (
        "import sys; from pathlib import Path; from condensation.sweep import parse_spec; "
        "from condensation.sweep.cells import run_cell; p = parse_spec(sys.argv[1]); "
        "[run_cell(p.command, c.config, str(Path(sys.argv[2]) / c.id)) for c in p.cells]"
    )
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", code, str(spec), str(out)], check=True)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cell-s", type=float, default=5.0, help="target seconds per cell")
    ap.add_argument("--cells", type=int, default=8)
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench_sweep-"))
    # pilot: compile once, then time a short run to find steps for --cell-s seconds
    pilot = _spec(root / "pilot", 2000, 2)
    _direct(pilot, root / "pilot" / "a")
    t = _direct(pilot, root / "pilot" / "b") / 2
    steps = max(1000, int(2000 * args.cell_s / t))
    spec = _spec(root / "sweep", steps, args.cells)
    times = {}
    times["direct"] = _direct_fresh(spec, root / "direct")
    startup = {}
    for w in (1, 2):
        t0 = time.perf_counter()
        with Engine(workers=w):
            pass
        startup[w] = time.perf_counter() - t0
        t0 = time.perf_counter()
        s = run_sweep(spec, root / f"w{w}", workers=w, stream=io.StringIO())
        times[f"{w} worker"] = time.perf_counter() - t0
        assert s["cells_done"] == args.cells and s["cells_failed"] == 0, s
    per_cell = times["direct"] / args.cells
    res = {
        "cells": args.cells,
        "steps_per_cell": steps,
        "cell_s_direct": round(per_cell, 2),
        "wall_s": {k: round(v, 2) for k, v in times.items()},
        "speedup_2_vs_1_workers": round(times["1 worker"] / times["2 worker"], 3),
        "overhead_per_cell_1_worker": round(times["1 worker"] / times["direct"] - 1, 4),
        "cluster_start_s": {f"{w} worker": round(v, 2) for w, v in startup.items()},
        "overhead_per_cell_1_worker_after_start": round(
            (times["1 worker"] - startup[1]) / times["direct"] - 1, 4
        ),
        "load_average": os.getloadavg(),
    }
    print(json.dumps(res, indent=2))
    print(
        f"{args.cells} cells of {per_cell:.1f} s: direct {times['direct']:.1f} s, "
        f"1 worker {times['1 worker']:.1f} s, 2 workers {times['2 worker']:.1f} s; "
        f"speed-up {res['speedup_2_vs_1_workers']:.2f}x (target >= 1.7), "
        f"overhead per cell {100 * res['overhead_per_cell_1_worker']:.1f} % (target <= 5 %), "
        f"{100 * res['overhead_per_cell_1_worker_after_start']:.1f} % after the cluster's "
        f"start ({startup[1]:.1f} s)",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
