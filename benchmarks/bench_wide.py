#!/usr/bin/env python
"""Wide networks: train wall time, post-processing share and array size, before/after.

For each width (default 100, 400, 1000; the default example ``configs/default.toml``
with ``model.widths = [m, m]`` and otherwise default settings, 12000 steps), two
runs side by side, each in a fresh Python process (same compile cost, memory
returned between runs):

- **before**: the behaviour without bounded snapshots.  With ``--before-src DIR``
  (a ``src`` folder of another checkout, e.g. ``git archive`` of main) that code
  runs the same ``run_training`` + ``write_train_run``; without it, this
  checkout with ``train.save = "full"`` (every layer at every snapshot, every
  metric at every snapshot).
- **after**: this checkout with its defaults (``train.save = "bounded"``).

Per run: ``train_s`` (``run_training``: compile and GD), ``post_s``
(``write_train_run``: arrays, metrics, summary and figures), the post-processing
share ``post_s / (train_s + post_s)``, and ``arrays_mb`` (the run's ``arrays/``
on disk).  Acceptance: at width 1000 the after-run's arrays <= 100 MB and its
post-processing <= 10 % of its wall time.

    python benchmarks/bench_wide.py                               # about 15 min on 2 cores
    python benchmarks/bench_wide.py --widths 100 400 --steps 3000 # quicker
    python benchmarks/bench_wide.py --before-src /tmp/main/src --json wide.json
    python benchmarks/bench_wide.py --widths 1000 --steps 300 --set train.linear_snapshots=20
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
CONFIG = ROOT / "configs" / "default.toml"
ARRAYS_LIMIT_MB = 100.0
SHARE_LIMIT = 0.10


def measure_one(width: int, steps: int | None, save: str | None, extra=()) -> dict:
    """One run in this process: ``run_training`` then ``write_train_run`` timed apart."""
    import condensation as C

    try:
        from condensation.commands.train import run_training, write_train_run
    except ImportError:  # a --before-src checkout from before the commands/ package
        from condensation.runs.train import run_training, write_train_run

    sets = [f"model.widths=[{width},{width}]"]
    if steps is not None:
        sets.append(f"train.steps={steps}")
    if save is not None:
        sets.append(f"train.save={save}")
    sets += list(extra)
    cfg = C.load_config(CONFIG, sets)
    with tempfile.TemporaryDirectory(prefix="bench-wide-") as tmp:
        t0 = time.perf_counter()
        run = run_training(cfg)
        t1 = time.perf_counter()
        write_train_run(run, Path(tmp))
        t2 = time.perf_counter()
        arrays = sum(f.stat().st_size for f in (Path(tmp) / "arrays").iterdir())
    return {
        "width": width,
        "train_s": t1 - t0,
        "post_s": t2 - t1,
        "post_share": (t2 - t1) / (t2 - t0),
        "arrays_mb": arrays / 1e6,
        "escape_step": run.result.escape_step.tolist(),
    }


def in_child(width: int, steps: int | None, save: str | None, src: Path, extra=()) -> dict:
    """:func:`measure_one` in a fresh interpreter importing ``condensation`` from ``src``."""
    cmd = [sys.executable, __file__, "--one", str(width), *(a for e in extra for a in ("--set", e))]
    cmd += ["--steps", str(steps)] if steps is not None else []
    cmd += ["--save", save] if save is not None else []
    env = {**os.environ, "PYTHONPATH": str(src)}
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"child run failed (width {width}, {src}):\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--widths", type=int, nargs="+", default=[100, 400, 1000])
    ap.add_argument("--steps", type=int, default=None, help="train.steps (default: the config's)")
    ap.add_argument("--before-src", type=Path, default=None, help="src folder of the 'before' code")
    ap.add_argument("--json", type=Path, default=None, help="also write the rows here")
    ap.add_argument("--set", action="append", default=[], help="more overrides, section.key=value")
    ap.add_argument("--one", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--save", default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.one is not None:
        print(json.dumps(measure_one(a.one, a.steps, a.save, a.set)))
        return
    here = ROOT / "src"
    before = (a.before_src, None) if a.before_src else (here, "full")
    label = f"before ({a.before_src})" if a.before_src else 'before (train.save = "full")'
    extra = f", --set {' '.join(a.set)}" if a.set else ""
    print(f"bench_wide: default example, steps {a.steps or 'default'}{extra}; {label} vs after")
    header = f"{'width':>6} {'run':>7} {'train_s':>8} {'post_s':>7} {'share':>6} {'arrays_MB':>10}"
    print(header)
    rows = []
    for w in a.widths:
        pair = {
            "before": in_child(w, a.steps, before[1], before[0], a.set),
            "after": in_child(w, a.steps, None, here, a.set),
        }
        for name, r in pair.items():
            print(
                f"{w:>6} {name:>7} {r['train_s']:8.1f} {r['post_s']:7.2f} "
                f"{r['post_share']:6.1%} {r['arrays_mb']:10.1f}",
                flush=True,
            )
        b, f = pair["before"], pair["after"]
        print(
            f"{w:>6} {'ratio':>7} wall before/after "
            f"{(b['train_s'] + b['post_s']) / (f['train_s'] + f['post_s']):.2f}x, "
            f"post {b['post_s'] / f['post_s']:.1f}x, arrays {b['arrays_mb'] / f['arrays_mb']:.1f}x"
            f"; same escape step: {b['escape_step'] == f['escape_step']}",
            flush=True,
        )
        rows.append({"width": w, **pair})
    last = rows[-1]["after"]
    ok = last["arrays_mb"] <= ARRAYS_LIMIT_MB and last["post_share"] <= SHARE_LIMIT
    print(
        f"width {rows[-1]['width']} after: arrays {last['arrays_mb']:.1f} MB "
        f"(limit {ARRAYS_LIMIT_MB:g}), post-processing {last['post_share']:.1%} "
        f"(limit {SHARE_LIMIT:.0%}): {'met' if ok else 'NOT met'}"
    )
    if a.json is not None:
        a.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
