#!/usr/bin/env python
"""The whole ``condensation train`` process against a plain jitted JAX GD script.

For each width, two processes timed side by side (alternating, ``--repeats``
times; the minimum of each is reported), each from interpreter start to exit:

- ``condensation train configs/default.toml --set model.widths=[m, m]
  --set train.steps=S --out TMP``: defaults, every per-step watch on, snapshots,
  metrics, figures and the run directory;
- ``python benchmarks/naive_gd.py m S``: the same network shapes and steps in a
  ``fori_loop``, nothing else.

Reported: wall seconds of each, their ratio (issue 22's target: within 1.3x) and
each process's peak RSS (``wait4``).  Both use this checkout's compile cache
settings (``CONDENSATION_JAX_CACHE=off`` for a cold compile in both).

    python benchmarks/bench_process.py --widths 1000 2000 --steps 300
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def timed(cmd: list[str], env: dict) -> tuple[float, float]:
    """``(wall seconds, peak RSS in MB)`` of one process run to completion."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{proc.stderr.read().decode()[-2000:]}")
    return wall, usage.ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--widths", type=int, nargs="+", default=[1000, 2000])
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--json", type=Path, default=None)
    a = ap.parse_args()
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    rows = []
    print(f"bench_process: default example, {a.steps} steps, min of {a.repeats}")
    print(
        f"{'width':>6} {'train_s':>8} {'naive_s':>8} {'ratio':>6} {'train_MB':>9} {'naive_MB':>9}"
    )
    for m in a.widths:
        train, naive = [], []
        for _ in range(a.repeats):
            with tempfile.TemporaryDirectory(prefix="bench-process-") as tmp:
                cmd = [
                    sys.executable,
                    "-m",
                    "condensation",
                    "train",
                    str(ROOT / "configs/default.toml"),
                ]
                cmd += ["--set", f"model.widths=[{m}, {m}]", "--set", f"train.steps={a.steps}"]
                train.append(timed([*cmd, "--out", str(Path(tmp) / "run")], env))
            naive.append(
                timed(
                    [sys.executable, str(ROOT / "benchmarks/naive_gd.py"), str(m), str(a.steps)],
                    env,
                )
            )
        t, n = min(train), min(naive)
        row = {"width": m, "steps": a.steps, "train_s": t[0], "naive_s": n[0]}
        row |= {"ratio": t[0] / n[0], "train_rss_mb": max(r for _, r in train)}
        row |= {"naive_rss_mb": max(r for _, r in naive)}
        rows.append(row)
        print(
            f"{m:>6} {t[0]:>8.1f} {n[0]:>8.1f} {row['ratio']:>5.2f}x "
            f"{row['train_rss_mb']:>9.0f} {row['naive_rss_mb']:>9.0f}",
            flush=True,
        )
    if a.json:
        a.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
