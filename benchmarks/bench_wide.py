#!/usr/bin/env python
"""Wide networks: per-step cost against the matmul ceiling, the whole process
against a plain JAX GD script, post-processing share, memory, and fast-forward.

Default (issue 22): three-layer widths 500, 1000, 2000, 4000 on the default
example (``configs/default.toml``, n = 100, all tracking on, default snapshots),
each with ``train.steps`` sized from the ceiling measured here so that a run
takes about ``--budget`` seconds (default 60).  Per width, measured side by side:

- ``ceiling_ms``: the three (n x m)-by-(m x m) products a GD step is made of
  (forward, backward, weight gradient), jitted alone at the step's shapes,
  float64, the faster of the sample-major and feature-major layouts;
- the training process (``--one``: interpreter start, ``run_training``,
  ``write_train_run``, exit) timed whole, with ``train_s`` and ``post_s`` inside
  it, its peak RSS (``wait4``) and the size of ``arrays/``;
- ``naive_gd.py`` (a ten-line jitted JAX GD of the same network and steps),
  timed whole: ``ratio`` = process / naive (target: within 1.3x);
- ``step_ms`` = ``train_s / steps`` (compilation and snapshots included, so an
  upper bound) and ``ceiling share`` = ``ceiling_ms / step_ms``.

``--ff WIDTH`` adds plain GD against ``train.fast_forward`` at that width
(``steps = "auto"``, ``--ff-eps``, default 1e-3): wall, peak RSS, escape time and
gradient evaluations of each.  ``--cell`` adds one two-layer phase-diagram cell of
Luo et al.'s 1-d setting (3 points, ReLU) at widths 1e4 and 1e5: wall and peak RSS.

``--before-src DIR`` runs the older comparison instead (issue 12: bounded
snapshot storage, before and after; ``DIR`` a ``src`` folder of another checkout).

    python benchmarks/bench_wide.py                                # ~10 min on 2 cores
    python benchmarks/bench_wide.py --widths 500 1000 --budget 20  # quicker
    python benchmarks/bench_wide.py --widths 1000 --ff 500 --cell --json wide.json
    python benchmarks/bench_wide.py --before-src /tmp/main/src --widths 100 400 --steps 3000
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import timeit
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


def timed(cmd: list[str], env: dict) -> tuple[float, float, str]:
    """``(wall seconds, peak RSS in MB, stdout)`` of one process run to completion
    (output through files, so a chatty process cannot block on a full pipe)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        out.seek(0), err.seek(0)
        if os.waitstatus_to_exitcode(status) != 0:
            raise SystemExit(f"failed: {' '.join(cmd)}\n{err.read().decode()[-3000:]}")
        return wall, usage.ru_maxrss / 1024, out.read().decode()


def ceiling_ms(m: int, n: int = 100, repeats: int = 7) -> float:
    """Median ms of the three products of a GD step at width ``m`` (float64), the
    faster layout: sample-major ``H W^T, D W, D^T H`` or feature-major ``W H, W^T D,
    D H^T``."""
    import jax

    jax.config.update("jax_enable_x64", True)
    k = jax.random.split(jax.random.PRNGKey(0), 3)
    w = jax.random.normal(k[0], (m, m))
    h, d = jax.random.normal(k[1], (n, m)), jax.random.normal(k[2], (n, m))
    sample = jax.jit(lambda h, w, d: (h @ w.T, d @ w, d.T @ h))
    feature = jax.jit(lambda h, w, d: (w @ h, w.T @ d, d @ h.T))
    best = []
    for fn, args in ((sample, (h, w, d)), (feature, (h.T, w, d.T))):
        def call(fn=fn, args=args):
            return jax.block_until_ready(fn(*args))

        call()  # compiled first
        best.append(statistics.median(timeit.repeat(call, number=1, repeat=repeats)))
    return 1000 * min(best)


def scaling(widths, budget: float, env: dict) -> list[dict]:
    """The issue-22 table: per width, steps sized to ``budget`` seconds."""
    print(f"bench_wide: default example (n = 100, three layers, float64), ~{budget:g} s per run")
    print(
        f"{'width':>6} {'steps':>6} {'ceil_ms':>8} {'step_ms':>8} {'ceil%':>6} {'proc_s':>7} "
        f"{'naive_s':>8} {'ratio':>6} {'post%':>6} {'RSS_MB':>7} {'arrays_MB':>9}"
    )
    rows = []
    for m in widths:
        ceil = ceiling_ms(m)
        steps = max(50, int(round(budget / (2.0 * ceil / 1000) / 10)) * 10)  # step ~ 2 ceilings
        proc = timed([sys.executable, __file__, "--one", str(m), "--steps", str(steps)], env)
        one = json.loads(proc[2].strip().splitlines()[-1])
        naive_cmd = [sys.executable, str(ROOT / "benchmarks/naive_gd.py"), str(m), str(steps)]
        naive = timed(naive_cmd, env)
        step_ms = 1000 * one["train_s"] / steps
        row = {"width": m, "steps": steps, "ceiling_ms": ceil, "step_ms": step_ms}
        row |= {"process_s": proc[0], "naive_s": naive[0], "ratio": proc[0] / naive[0]}
        row |= {"post_share": one["post_s"] / proc[0], "rss_mb": proc[1], **one}
        rows.append(row)
        print(
            f"{m:>6} {steps:>6} {ceil:8.1f} {step_ms:8.1f} {ceil / step_ms:6.0%} {proc[0]:7.1f} "
            f"{naive[0]:8.1f} {row['ratio']:5.2f}x {row['post_share']:6.1%} {proc[1]:7.0f} "
            f"{one['arrays_mb']:9.1f}",
            flush=True,
        )
    return rows


def fast_forward(m: int, eps: float, env: dict) -> dict:
    """Plain GD against fast-forward at width ``m``, ``steps = "auto"``, whole processes."""
    out = {}
    for name, ff in (("gd", "false"), ("fast_forward", "true")):
        with tempfile.TemporaryDirectory(prefix="bench-wide-ff-") as tmp:
            cmd = [sys.executable, "-m", "condensation", "train", str(CONFIG)]
            for s in (f"model.widths=[{m},{m}]", "train.steps=auto", f"init.scale={eps}"):
                cmd += ["--set", s]
            cmd += ["--set", f"train.fast_forward={ff}", "--out", tmp + "/r"]
            wall, rss, _ = timed(cmd, env)
            summ = json.loads((Path(tmp) / "r" / "summary.json").read_text())
        hand = summ.get("handoff") or {}
        out[name] = {"wall_s": wall, "rss_mb": rss, "steps": summ["steps"]}
        out[name] |= {"escape_time": [mb["escape_time"] for mb in summ["members"]]}
        out[name] |= {"gradient_evaluations": hand.get("gradient_evaluations", summ["steps"])}
        print(f"  width {m} eps {eps:g} {name:>12}: {out[name]}", flush=True)
    g, f = out["gd"], out["fast_forward"]
    print(f"  wall gd / fast-forward: {g['wall_s'] / f['wall_s']:.2f}x", flush=True)
    return out


def phase_cell(env: dict) -> dict:
    """One two-layer phase-diagram cell at widths 1e4 and 1e5 (3 points, ReLU), in a
    fresh process: wall and peak RSS."""
    code = (
        "from condensation.experiments import phase_diagram as pd\n"
        "p = {**pd.DEFAULTS, 'widths': [10000, 100000], 'seeds': [0], 'workers': 0,"
        " 'max_steps': 3000, 'gammas': [1.5], 'gamma_primes': [0.5]}\n"
        "print(pd.run_cell(pd.cell_list(p)[0], p)['steps'])\n"
    )
    wall, rss, out = timed([sys.executable, "-c", code], env)
    row = {"wall_s": wall, "rss_mb": rss, "steps": out.strip()}
    print(f"  phase-diagram cell, widths 1e4 and 1e5: {row}", flush=True)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    ap.add_argument("--widths", type=int, nargs="+", default=None)
    ap.add_argument("--budget", type=float, default=60.0, help="seconds per training run")
    ap.add_argument("--ff", type=int, default=None, metavar="WIDTH", help="GD vs fast-forward")
    ap.add_argument("--ff-eps", type=float, default=1e-3)
    ap.add_argument("--cell", action="store_true", help="a phase-diagram cell at width 1e5")
    ap.add_argument("--steps", type=int, default=None, help="train.steps (--before-src)")
    ap.add_argument("--before-src", type=Path, default=None, help="src folder of the 'before' code")
    ap.add_argument("--json", type=Path, default=None, help="also write the rows here")
    ap.add_argument("--set", action="append", default=[], help="more overrides, section.key=value")
    ap.add_argument("--one", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--save", default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.one is not None:
        print(json.dumps(measure_one(a.one, a.steps, a.save, a.set)))
        return
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    if a.before_src is not None:
        return compare_storage(a)
    out: dict = {"scaling": scaling(a.widths or [500, 1000, 2000, 4000], a.budget, env)}
    out["device"] = _device()
    if a.ff is not None:
        out["fast_forward"] = fast_forward(a.ff, a.ff_eps, env)
    if a.cell:
        out["phase_cell"] = phase_cell(env)
    print(f"device: {out['device']}")
    if a.json is not None:
        a.json.write_text(json.dumps(out, indent=1))


def _device() -> str:
    import jax

    d = jax.devices()[0]
    return f"{d.platform} ({getattr(d, 'device_kind', '?')}), {os.cpu_count()} cores"


def compare_storage(a) -> None:
    """The issue-12 comparison: bounded snapshot storage, before and after."""
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
