#!/usr/bin/env python
"""Where the time of ``reproduce`` goes: per experiment, compilation against running.

Each registered experiment (or those named) runs in a fresh process on one JAX
CPU device (as a ``reproduce`` worker does), into a temporary directory, with
JAX's monitoring events counted:

- ``programs``: XLA programs compiled (backend compilations, persistent-cache
  hits not included);
- ``trace_s`` / ``lower_s`` / ``compile_s``: seconds spent tracing to jaxprs,
  lowering to MLIR and compiling in XLA (the compile part of the wall time);
- ``cache_hits``: programs loaded from the persistent compilation cache;
- ``wall_s`` (the experiment's ``run`` alone, imports excluded), ``cpu_s``
  (user + sys of the whole process), ``import_s``.

``--cache DIR`` points ``CONDENSATION_JAX_CACHE`` at DIR (default: switched off,
so the numbers are those of a first run); run twice with the same DIR to see a
second run.  The machine may be shared: the load average is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

CHILD = r"""
import json, os, sys, time
t0 = time.perf_counter()
from collections import defaultdict
import jax
from jax import monitoring
import condensation.experiments as X
from condensation.reproduction import run_into
import pathlib, tempfile
t_import = time.perf_counter() - t0
dur = defaultdict(float)
cnt = defaultdict(int)
by_fun = defaultdict(lambda: [0, 0.0])
def on_dur(event, secs, **kw):
    dur[event] += secs
    cnt[event] += 1
    if event == "/jax/core/compile/backend_compile_duration":
        by_fun[kw.get("fun_name", "?")][0] += 1
        by_fun[kw.get("fun_name", "?")][1] += secs
def on_event(event, **kw):
    cnt[event] += 1
monitoring.register_event_duration_secs_listener(on_dur)
monitoring.register_event_listener(on_event)
name, quick = sys.argv[1], sys.argv[2] == "1"
exp = X.get(name)
params = exp.params(quick=quick)
out = pathlib.Path(tempfile.mkdtemp(prefix="bench_reproduce-"))
t1 = time.perf_counter()
run_into(exp, params, out, quick=quick)
wall = time.perf_counter() - t1
ts = os.times()
print(json.dumps({
    "name": name,
    "wall_s": round(wall, 2),
    "cpu_s": round(ts.user + ts.system, 2),
    "import_s": round(t_import, 2),
    "programs": cnt["/jax/core/compile/backend_compile_duration"],
    "trace_s": round(dur["/jax/core/compile/jaxpr_trace_duration"], 2),
    "lower_s": round(dur["/jax/core/compile/jaxpr_to_mlir_module_duration"], 2),
    "compile_s": round(dur["/jax/core/compile/backend_compile_duration"], 2),
    "cache_hits": cnt["/jax/compilation_cache/cache_hits"],
    "top_programs": sorted(([f, c, round(t, 2)] for f, (c, t) in by_fun.items()),
                           key=lambda r: -r[2])[:8],
}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("names", nargs="*", help="experiments (default: all registered)")
    ap.add_argument("--full", action="store_true", help="the default variants, not --quick")
    ap.add_argument("--cache", help="persistent compilation cache directory (default: off)")
    ap.add_argument("--programs", action="store_true", help="print the dearest programs")
    ap.add_argument("--json", help="also write the rows to this file")
    args = ap.parse_args()
    import condensation.experiments as X

    names = args.names or list(X.registry())
    env = dict(os.environ, CONDENSATION_CPU_DEVICES="1")
    env["CONDENSATION_JAX_CACHE"] = args.cache or "off"
    print(f"load average at start: {os.getloadavg()}", file=sys.stderr)
    rows = []
    for n in names:
        r = subprocess.run(
            [sys.executable, "-c", CHILD, n, "0" if args.full else "1"],
            env=env,
            capture_output=True,
            text=True,
            cwd=tempfile.gettempdir(),
        )
        if r.returncode != 0:
            print(f"{n}: failed\n{r.stderr[-2000:]}", file=sys.stderr)
            continue
        row = json.loads(r.stdout.strip().splitlines()[-1])
        rows.append(row)
        print(
            f"{n:24s} wall {row['wall_s']:6.1f} s  cpu {row['cpu_s']:6.1f} s  "
            f"programs {row['programs']:4d}  compile {row['compile_s']:5.1f} s  "
            f"trace+lower {row['trace_s'] + row['lower_s']:5.1f} s  hits {row['cache_hits']}",
            flush=True,
        )
        if args.programs:
            for f, c, t in row["top_programs"]:
                print(f"    {t:6.2f} s  {c:3d} x  {f}", flush=True)
    tot = {k: round(sum(r[k] for r in rows), 2) for k in ("wall_s", "cpu_s", "compile_s")}
    print(f"total: {tot}; load average at end: {os.getloadavg()}", file=sys.stderr)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"rows": rows, "total": tot, "load": os.getloadavg()}, f, indent=2)


if __name__ == "__main__":
    main()
