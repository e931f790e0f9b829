#!/usr/bin/env python
"""The sweep engine: 1 vs 2 workers, and its overhead per cell, side by side in one run.

One 8-cell sweep of ``train`` (three-layer tanh, d = 5, n = 100, widths 50/50,
one member per cell; the cells differ in ``data.seed``, so every cell has the
same shapes and each process compiles once).  ``train.steps`` is calibrated by a
pilot so that one cell takes about ``--cell-s`` seconds (default 5) of one core
run directly (compiled, in this process: GD, the run directory and its figures;
CPU time, so that a busy machine does not shrink the cells).

- commands: the cells' own commands, ``condensation train base.toml --set
  data.seed=K --out DIR``, one after another (the shell loop a sweep replaces:
  a fresh process per cell, each with its imports and its compilation, or its
  loads from the persistent compilation cache when that is on);
- direct: the 8 cells' library function (:func:`condensation.sweep.cells.run_cell`,
  what each task calls) one after another in one fresh process (its imports and
  one compilation included, as a worker's are): the strictest baseline;
- 1 worker / 2 workers: ``run_sweep`` on a fresh ``LocalCluster`` (start-up and
  shut-down included) into a fresh directory;
- warm worker: a second 8-cell sweep (other seeds) on a 1-worker cluster that
  has already run one (imports and compilation done), against the same cells run
  in this (warm) process: the engine's own cost per task.

Compilation: by default the persistent compilation cache is off in every arm,
so each process compiles as on a first run; ``--warm-cache`` gives every arm
one fresh cache that the pilot fills (as a later sweep on the same machine).

Reported: wall and CPU (user + sys, this process and its children) of each
arm, the cluster's start-up (measured apart), speed-up ``t(1 worker) /
t(2 workers)`` (target >= 1.7), overhead per cell against the cells' commands
``t(1 worker) / t(commands) - 1`` (target <= 5 %) and against the strict
baseline ``t(1 worker) / t(direct) - 1`` (also without the cluster's start-up),
and the warm per-task overhead.  The machine may be shared: the load average is printed with the
numbers, which are only as quiet as the machine was.
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
WARM = "--warm-cache" in sys.argv
# before condensation is imported: every arm (and its worker processes) sees the same
# cache.  Only in the benchmark's own process: each worker re-imports this file (as
# ``__mp_main__``, with the same argv) and inherits the variable; a fresh directory
# made there would leave the workers an empty cache.
if __name__ == "__main__":
    os.environ["CONDENSATION_JAX_CACHE"] = (
        tempfile.mkdtemp(prefix="bench_sweep-cache-") if WARM else "off"
    )

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


PILOT = (10_000, 20_000)  # pilot cell lengths (steps); the escape is near 7,600


def _spec(d: Path, steps: int, cells: int, first: int = 0) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    (d / "base.toml").write_text(BASE.format(steps=steps))
    seeds = ", ".join(str(i) for i in range(first, first + cells))
    (d / "spec.toml").write_text(SPEC.format(seeds=seeds))
    return d / "spec.toml"


def _cpu() -> float:
    """User + sys seconds of this process and its finished children."""
    import resource

    a, b = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return a.ru_utime + a.ru_stime + b.ru_utime + b.ru_stime


class _Clock:
    """Wall and CPU seconds of a block: ``with _Clock() as c: ...; c.wall, c.cpu``."""

    def __enter__(self):
        self.t0, self.c0 = time.perf_counter(), _cpu()
        return self

    def __exit__(self, *exc):
        self.wall, self.cpu = time.perf_counter() - self.t0, _cpu() - self.c0


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


def _commands(spec: Path, out: Path) -> None:
    """Each cell's own ``condensation train`` command, one after another."""
    out.mkdir(parents=True)
    for c in parse_spec(spec).cells:
        seed = c.axes["data.seed"]
        cmd = [sys.executable, "-m", "condensation", "train", str(spec.parent / "base.toml"),
               "--set", f"data.seed={seed}", "--out", str(out / str(seed))]  # fmt: skip
        subprocess.run(cmd, check=True, capture_output=True)


def _pct(v: float | None) -> str:
    return "not measured" if v is None else f"{100 * v:.1f} %"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cell-s", type=float, default=5.0, help="target seconds per cell")
    ap.add_argument("--cells", type=int, default=8)
    ap.add_argument(
        "--no-warm-arm", action="store_true", help="skip the warm per-task arm (saves 3 sweeps)"
    )
    ap.add_argument(
        "--warm-cache", action="store_true", help="every arm loads compiled programs (see above)"
    )
    args = ap.parse_args()
    load0 = os.getloadavg()
    root = Path(tempfile.mkdtemp(prefix="bench_sweep-"))
    # pilot: compile once, then time cells of two lengths (both past the escape, so
    # no horizon warning's T* solve) and fit CPU = fixed + per_step * steps: a cell's
    # fixed cost (run directory, figures) does not grow with its steps
    _direct(_spec(root / "pilot", PILOT[0], 1), root / "pilot" / "a")
    cost = []
    for n in PILOT:
        c0 = time.process_time()
        _direct(_spec(root / f"pilot{n}", n, 2), root / f"pilot{n}" / "b")
        cost.append((time.process_time() - c0) / 2)
    per_step = max((cost[1] - cost[0]) / (PILOT[1] - PILOT[0]), 1e-9)
    fixed = max(cost[0] - per_step * PILOT[0], 0.0)
    steps = max(PILOT[0], int((args.cell_s - fixed) / per_step))
    t = fixed + per_step * steps  # predicted CPU seconds of one cell
    spec = _spec(root / "sweep", steps, args.cells)
    wall, cpu = {}, {}
    with _Clock() as c:
        _commands(spec, root / "commands")
    wall["commands"], cpu["commands"] = c.wall, c.cpu
    with _Clock() as c:
        _direct_fresh(spec, root / "direct")
    wall["direct"], cpu["direct"] = c.wall, c.cpu
    startup = {}
    for w in (1, 2):
        with _Clock() as c:
            with Engine(workers=w):
                pass
        startup[w] = c.wall
        with _Clock() as c:
            s = run_sweep(spec, root / f"w{w}", workers=w, stream=io.StringIO())
        wall[f"{w} worker"], cpu[f"{w} worker"] = c.wall, c.cpu
        assert s["cells_done"] == args.cells and s["cells_failed"] == 0, s
    # the engine's own cost per task: a warm worker against this warm process
    if not args.no_warm_arm:
        again = _spec(root / "again", steps, args.cells, first=args.cells)
        with Engine(workers=1) as eng:
            addr = eng.cluster.scheduler_address
            run_sweep(spec, root / "warmup", scheduler=addr, stream=io.StringIO())
            with _Clock() as c:
                s = run_sweep(again, root / "warm", scheduler=addr, stream=io.StringIO())
            wall["warm worker"] = c.wall
            assert s["cells_done"] == args.cells and s["cells_failed"] == 0, s
        with _Clock() as c:
            _direct(again, root / "warm-direct")
        wall["warm direct"] = c.wall
    per_cell = wall["direct"] / args.cells
    res = {
        "cells": args.cells,
        "steps_per_cell": steps,
        "cell_cpu_s_pilot": round(t, 2),
        "cell_fixed_cpu_s_pilot": round(fixed, 2),
        "cell_s_direct": round(per_cell, 2),
        "compile_cache": "warm (filled by the pilot)" if WARM else "off",
        "wall_s": {k: round(v, 2) for k, v in wall.items()},
        "cpu_s": {k: round(v, 2) for k, v in cpu.items()},
        "speedup_2_vs_1_workers": round(wall["1 worker"] / wall["2 worker"], 3),
        "overhead_per_cell_1_worker_vs_commands": round(
            wall["1 worker"] / wall["commands"] - 1, 4
        ),
        "overhead_per_cell_1_worker": round(wall["1 worker"] / wall["direct"] - 1, 4),
        "cluster_start_s": {f"{w} worker": round(v, 2) for w, v in startup.items()},
        "overhead_per_cell_1_worker_after_start": round(
            (wall["1 worker"] - startup[1]) / wall["direct"] - 1, 4
        ),
        "overhead_per_task_warm": round(wall["warm worker"] / wall["warm direct"] - 1, 4)
        if "warm worker" in wall
        else None,
        "load_average": {"start": load0, "end": os.getloadavg()},
    }
    print(json.dumps(res, indent=2))
    print(
        f"{args.cells} cells of {per_cell:.1f} s (compile cache {res['compile_cache']}): "
        f"commands {wall['commands']:.1f} s, "
        f"direct {wall['direct']:.1f} s, 1 worker {wall['1 worker']:.1f} s, "
        f"2 workers {wall['2 worker']:.1f} s; "
        f"speed-up {res['speedup_2_vs_1_workers']:.2f}x (target >= 1.7), "
        f"overhead per cell {100 * res['overhead_per_cell_1_worker_vs_commands']:.1f} % against "
        f"the commands (target <= 5 %), {100 * res['overhead_per_cell_1_worker']:.1f} % against "
        "direct, "
        f"{100 * res['overhead_per_cell_1_worker_after_start']:.1f} % after the cluster's "
        f"start ({startup[1]:.1f} s), warm per-task overhead "
        f"{_pct(res['overhead_per_task_warm'])}; load {load0[0]:.1f} -> "
        f"{os.getloadavg()[0]:.1f}",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
