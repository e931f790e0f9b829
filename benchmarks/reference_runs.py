#!/usr/bin/env python
"""Reference runs: record the results of a fixed set of commands, and compare two records.

Issue 21 ("one house") moves most of the code; its promise is that results stay the
same.  This script pins that down.  Before a refactor, ``record`` runs a fixed set of
commands through the CLI and keeps what they wrote; after it, ``record`` again and
``compare`` the two sets: every number must be bit-identical, and each difference
that remains is listed (and then explained in the change that made it).

    python benchmarks/reference_runs.py record DIR [--only NAME ...] [--cache temp|off]
    python benchmarks/reference_runs.py compare A B
    python benchmarks/reference_runs.py list

``record DIR`` runs each command of ``RUNS`` (below) as ``python -m condensation ...``
in a fresh subprocess, from the repository root (the configs are those of
``configs/`` here), into a temporary directory, and keeps only small text files
under DIR: each run's ``summary.json`` and ``config.toml``; for the sweep also
``results.csv`` and each cell's ``summary.json``/``config.toml`` (cells renamed
by their order in ``results.csv``: ``cells/0``, ``cells/1``, ...; their hash ids
stay in the table's ``cell`` column); for ``reproduce --quick`` the top-level
``summary.json`` and one per experiment.  No arrays or figures.  DIR/manifest.json
lists the commands, their exit status and wall time, and the code that ran them
(the ``condensation`` package the interpreter imports: set ``PYTHONPATH=OTHER/src``
to record another checkout).  DIR must be new or empty.  The child processes get a
fixed environment: ``CONDENSATION_CPU_DEVICES=2``; the compilation cache in a fresh
temporary directory (``--cache temp``, shared by the runs of one record, removed
afterwards) or off (``--cache off``); every other ``CONDENSATION_*``, ``JAX_*`` and
``XLA_*`` variable removed.  The whole set took 458-520 s on a shared 2-core
machine at a load of 6-10, ``reproduce --quick`` about 285 s of it (faster when idle).
Exit status 0 when every command exited 0, 1 otherwise (the files of the commands
that ran are kept), 2 on bad arguments.

``compare A B`` compares two records file by file and key by key: JSON values by
type and value, floats bit for bit (NaN equal to NaN; 0.0 and -0.0 differ), the
TOML files as parsed, ``results.csv`` row by row and column by column (cells parsed
as int, float or text; a change of column order alone is reported once).  A file
present in one record only is a difference.  The keys in ``IGNORED_KEYS`` are
skipped wherever they occur: they are timings, paths or per-run details by nature.
The manifests are not compared beyond the runs they list and their exit status.
Prints one line per difference, ``train-default/members[0].escape_time: 367.95 !=
367.96`` (the run's name, then the key path within its ``summary.json``; another
file is named, ``sweep/results.csv[3].escape_time``), then a count; exits 1 if
there is any difference, else 0.

``list`` prints the runs and their commands.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
FORMAT = 1
DEVICES = "2"
TIMEOUT_S = 1800

# Keys skipped wherever they occur in the compared files, each with its reason.
# Only what differs between two runs of the same code by nature belongs here.
IGNORED_KEYS: dict[str, str] = {
    "elapsed_s": "wall time (reproduce, experiments)",
    "cpu_s": "CPU time (reproduce, experiments)",
    "wall_s": "wall time (sweep summary)",
    "spec": "absolute path of the sweep spec (sweep summary)",
    "base": "absolute path of the sweep's base config (sweep summary)",
    "path": "absolute path of a data/init file (config.toml)",
    "created": "a date, if a later version writes one",
    "pid": "a process id, if a later version writes one",
    "argv": "a command line, if a later version writes one",
    "versions": "package versions, if a later version writes them",
}


@dataclass(frozen=True)
class Run:
    """One command of the reference set: its name (DIR/name) and its arguments."""

    name: str
    args: tuple[str, ...]
    what: str


# The fixed set: each command on two configs (train on three: plain GD, the depth-2
# fast-forward map, and steps = "auto" with a data file), one sweep, every
# registered experiment --quick.  Sizes keep each run to seconds.
RUNS: tuple[Run, ...] = (
    Run(
        "train-default",
        ("train", "configs/default.toml"),
        "the default example: depth 3, 12000 steps, one member, through the escape",
    ),
    Run(
        "train-two-layer-fast-forward",
        ("train", "configs/two_layer_1d.toml", "--fast-forward"),
        "depth 2 with bias on 1-D data, two seeds, fast-forward (the depth-2 map)",
    ),
    Run(
        "train-csv-auto",
        (
            "train",
            "configs/ensemble.toml",
            "--set",
            "train.steps=auto",
            "--set",
            "data.path=configs/example_data.csv",
            "--set",
            "init.seeds=[0, 1]",
            "--set",
            "init.scales=[3e-3]",
        ),
        "a CSV data file, steps = auto, two members spread over two devices",
    ),
    Run(
        "effective-full-compare-gd",
        ("effective", "configs/default.toml", "--compare-gd"),
        "full form, depth 3, against GD from the same init",
    ),
    Run(
        "effective-spectral",
        ("effective", "configs/ensemble.toml", "--form", "spectral"),
        "spectral form, eight members",
    ),
    Run(
        "matrix-completion",
        ("matrix", "configs/matrix_completion.toml", "--set", "train.steps=20000"),
        "20x20 rank 2, four init seeds, through the first blow-up (t = 60)",
    ),
    Run(
        "matrix-fast-forward",
        (
            "matrix",
            "configs/matrix_100.toml",
            "--set",
            "problem.n=40",
            "--set",
            "problem.observed=600",
            "--set",
            "train.steps=3000",
            "--set",
            "train.fast_forward=true",
        ),
        "40x40 rank 5, fast-forward to the hand-off then GD",
    ),
    Run(
        "sweep",
        ("sweep", "configs/sweep_example.toml", "--workers", "2"),
        "2 cells x 4 members on a 2-worker Dask cluster",
    ),
    Run(
        "reproduce",
        ("reproduce", "--quick"),
        "every registered experiment, --quick, 2 workers",
    ),
)


# ---------------------------------------------------------------------------- record


def child_env(cache: Path | None) -> dict[str, str]:
    """The environment of each command: ours, less anything that steers condensation,
    JAX or XLA, plus the fixed device count and compilation cache."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("CONDENSATION_", "JAX_", "XLA_"))
    }
    env["CONDENSATION_CPU_DEVICES"] = DEVICES
    env["CONDENSATION_JAX_CACHE"] = str(cache) if cache is not None else "off"
    return env


def code_identity(python: str, env: dict[str, str]) -> dict:
    """Which ``condensation`` the commands import, and its git commit if it has one."""
    out = subprocess.run(
        [python, "-c", "import condensation, sys; print(condensation.__file__, sys.version)"],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        check=False,
    )
    package, _, python_version = out.stdout.strip().partition(" ")
    info: dict = {"package": package or None, "python": python_version or None}
    if info["package"]:
        git = subprocess.run(
            ["git", "-C", str(Path(info["package"]).parent), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=False,
        )
        info["commit"] = git.stdout.strip() or None
        dirty = subprocess.run(
            ["git", "-C", str(Path(info["package"]).parent), "status", "--porcelain", "--", "."],
            capture_output=True,
            text=True,
            check=False,
        )
        info["src_modified"] = bool(dirty.stdout.strip()) if git.returncode == 0 else None
    return info


def _copy(src: Path, dst: Path) -> str | None:
    if not src.is_file():
        return None
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)
    return dst.as_posix()


def keep_files(run: Run, out: Path, dest: Path) -> list[str]:
    """Copy the files of one run worth comparing from its output ``out`` to ``dest``;
    their paths relative to ``dest``'s parent."""
    kept: list[str] = []

    def keep(rel_src: str, rel_dst: str | None = None) -> None:
        got = _copy(out / rel_src, dest / (rel_dst or rel_src))
        if got is not None:
            kept.append(f"{run.name}/{rel_dst or rel_src}")

    keep("summary.json")
    keep("config.toml")
    if run.args[0] == "sweep":
        keep("results.csv")
        order: list[str] = []
        table = out / "results.csv"
        if table.is_file():
            with table.open(newline="") as fh:
                for row in csv.DictReader(fh):
                    if row.get("cell") and row["cell"] not in order:
                        order.append(row["cell"])
        cells = out / "cells"
        found = sorted(p.name for p in cells.iterdir() if p.is_dir()) if cells.is_dir() else []
        order += [c for c in found if c not in order]  # cells missing from the table, last
        for i, cid in enumerate(order):
            keep(f"cells/{cid}/summary.json", f"cells/{i}/summary.json")
            keep(f"cells/{cid}/config.toml", f"cells/{i}/config.toml")
    if run.args[0] == "reproduce":
        for sub in sorted(p for p in out.iterdir() if p.is_dir()):
            keep(f"{sub.name}/summary.json")
    return kept


def record(dest: Path, only: list[str] | None, cache_mode: str, python: str) -> int:
    """Run the reference set (or the runs named in ``only``) into ``dest``; 0 when
    every command exited 0, else 1."""
    runs = [r for r in RUNS if not only or r.name in only]
    work = Path(tempfile.mkdtemp(prefix="reference-runs-"))
    try:
        cache = work / "jax-cache" if cache_mode == "temp" else None
        env = child_env(cache)
        dest.mkdir(parents=True, exist_ok=True)
        manifest = {
            "format": FORMAT,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "code": code_identity(python, env),
            "env": {k: env[k] for k in ("CONDENSATION_CPU_DEVICES",)}
            | {"CONDENSATION_JAX_CACHE": "temp" if cache else "off"},
            "cwd": "repository root",
            "runs": [],
        }
        failed = 0
        for run in runs:
            out = work / "out" / run.name
            argv = [python, "-m", "condensation", *run.args, "--out", str(out)]
            print(f"{run.name}: condensation {' '.join(run.args)}", flush=True)
            t0 = time.perf_counter()
            try:
                proc = subprocess.run(
                    argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=TIMEOUT_S
                )
                rc, err = proc.returncode, proc.stderr
            except subprocess.TimeoutExpired as exc:
                rc, err = -1, f"timed out after {TIMEOUT_S} s: {exc}"
            wall = time.perf_counter() - t0
            kept = keep_files(run, out, dest / run.name) if out.is_dir() else []
            entry = {
                "name": run.name,
                "args": list(run.args) + ["--out", "OUT"],
                "what": run.what,
                "rc": rc,
                "wall_s": round(wall, 1),
                "files": kept,
            }
            if rc != 0:
                failed += 1
                entry["stderr_tail"] = err[-2000:]
                print(f"  exit {rc} after {wall:.1f} s:\n{err[-2000:]}", flush=True)
            else:
                print(f"  {wall:.1f} s, {len(kept)} files", flush=True)
            manifest["runs"].append(entry)
            (dest / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        total = sum(r["wall_s"] for r in manifest["runs"])
        print(f"recorded {len(runs) - failed} of {len(runs)} runs into {dest} ({total:.0f} s)")
        return 1 if failed else 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


# ---------------------------------------------------------------------------- compare


def same_scalar(a, b) -> bool:
    """Equal values of the same type; floats bit for bit, any NaN equal to any NaN."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        if math.isnan(a) and math.isnan(b):
            return True
        return struct.pack("<d", a) == struct.pack("<d", b)
    return a == b


def _show(v) -> str:
    return repr(v) if isinstance(v, (float, str)) else json.dumps(v)


def diff_values(a, b, where: str, out: list[str]) -> None:
    """Append one line per difference between ``a`` and ``b`` (JSON-like values) to
    ``out``, each starting with its key path ``where``."""
    if isinstance(a, dict) and isinstance(b, dict):
        sep = "." if where and not where.endswith("/") else ""
        for k in list(a) + [k for k in b if k not in a]:
            if k in IGNORED_KEYS:
                continue
            p = f"{where}{sep}{k}"
            if k not in b:
                out.append(f"{p}: only in A ({_show(a[k])[:80]})")
            elif k not in a:
                out.append(f"{p}: only in B ({_show(b[k])[:80]})")
            else:
                diff_values(a[k], b[k], p, out)
        return
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            out.append(f"{where}: length {len(a)} != {len(b)}")
        for i, (x, y) in enumerate(zip(a, b)):
            diff_values(x, y, f"{where}[{i}]", out)
        return
    if isinstance(a, (dict, list)) or isinstance(b, (dict, list)) or not same_scalar(a, b):
        kinds = f" ({type(a).__name__} vs {type(b).__name__})" if type(a) is not type(b) else ""
        out.append(f"{where}: {_show(a)[:200]} != {_show(b)[:200]}{kinds}")


_INT = re.compile(r"[+-]?\d+")


def _cell(s: str):
    if s == "":
        return None
    if _INT.fullmatch(s):
        return int(s)
    try:
        return float(s)
    except ValueError:
        return s


def read_csv(path: Path) -> tuple[list[str], list[dict]]:
    """A CSV table: its header and its rows, cells parsed as int, float or text."""
    with path.open(newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader, [])
        rows = [dict(zip(header, map(_cell, r))) for r in reader]
    return header, rows


def load_file(path: Path):
    """A recorded file as a comparable value."""
    if path.suffix == ".json":
        return json.loads(path.read_text())
    if path.suffix == ".toml":
        return tomllib.loads(path.read_text())
    if path.suffix == ".csv":
        return read_csv(path)
    return path.read_text()


def label(rel: str) -> str:
    """How a file is named in a difference: a run's summary.json by the run's path,
    any other file by its own path."""
    return rel[: -len("/summary.json")] + "/" if rel.endswith("/summary.json") else rel


def recorded_files(root: Path) -> list[str]:
    """The compared files of a record, relative to it (the manifest aside)."""
    return sorted(
        p.relative_to(root).as_posix()
        for p in root.rglob("*")
        if p.is_file() and p.name != "manifest.json"
    )


def compare_sets(a: Path, b: Path) -> list[str]:
    """Every difference between the records ``a`` and ``b``, one line each."""
    out: list[str] = []
    ma = json.loads((a / "manifest.json").read_text()) if (a / "manifest.json").is_file() else {}
    mb = json.loads((b / "manifest.json").read_text()) if (b / "manifest.json").is_file() else {}
    runs_a = {r["name"]: r.get("rc") for r in ma.get("runs", [])}
    runs_b = {r["name"]: r.get("rc") for r in mb.get("runs", [])}
    for name in list(runs_a) + [n for n in runs_b if n not in runs_a]:
        if name not in runs_b:
            out.append(f"{name}: run only in A")
        elif name not in runs_a:
            out.append(f"{name}: run only in B")
        elif runs_a[name] != runs_b[name]:
            out.append(f"{name}: exit status {runs_a[name]} != {runs_b[name]}")
    fa, fb = recorded_files(a), recorded_files(b)
    for rel in fa:
        if rel not in fb:
            out.append(f"{rel}: file only in A")
    for rel in fb:
        if rel not in fa:
            out.append(f"{rel}: file only in B")
    for rel in (r for r in fa if r in fb):
        va, vb = load_file(a / rel), load_file(b / rel)
        if rel.endswith(".csv"):
            (ha, rows_a), (hb, rows_b) = va, vb
            if set(ha) == set(hb) and ha != hb:
                out.append(f"{rel}: column order {ha} != {hb}")
            diff_values(rows_a, rows_b, rel, out)
        else:
            diff_values(va, vb, label(rel), out)
    return out


def compare(a: Path, b: Path) -> int:
    """Print the differences between two records; 1 if any, else 0."""
    lines = compare_sets(a, b)
    for line in lines:
        print(line)
    n_files = len(set(recorded_files(a)) & set(recorded_files(b)))
    if lines:
        print(f"{len(lines)} difference(s) between {a} and {b} ({n_files} files in both)")
        return 1
    print(f"identical: {n_files} files, ignoring {', '.join(IGNORED_KEYS)}")
    return 0


# ---------------------------------------------------------------------------- CLI


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    rec = sub.add_parser("record", help="run the reference set into DIR (new or empty)")
    rec.add_argument("dir", type=Path)
    rec.add_argument("--only", nargs="+", metavar="NAME", help="only these runs (see list)")
    rec.add_argument("--cache", choices=("temp", "off"), default="temp")
    rec.add_argument("--python", default=sys.executable, help="interpreter of the commands")
    cmp_ = sub.add_parser("compare", help="compare two records; exit 1 on any difference")
    cmp_.add_argument("a", type=Path)
    cmp_.add_argument("b", type=Path)
    sub.add_parser("list", help="print the runs and their commands")
    args = ap.parse_args(argv)
    if args.cmd == "list":
        for r in RUNS:
            print(f"{r.name:30} condensation {' '.join(r.args)}\n{'':30} {r.what}")
        return 0
    if args.cmd == "compare":
        for d in (args.a, args.b):
            if not (d / "manifest.json").is_file():
                print(f"error: {d}: not a record (no manifest.json)", file=sys.stderr)
                return 2
        return compare(args.a, args.b)
    names = {r.name for r in RUNS}
    unknown = [n for n in args.only or [] if n not in names]
    if unknown:
        err = f"error: --only {unknown[0]}: no such run; fix: one of {sorted(names)}"
        print(err, file=sys.stderr)
        return 2
    if args.dir.exists() and (not args.dir.is_dir() or any(args.dir.iterdir())):
        err = f"error: DIR = {args.dir}: exists and is not an empty directory; fix: a new DIR"
        print(err, file=sys.stderr)
        return 2
    return record(args.dir, args.only, args.cache, args.python)


if __name__ == "__main__":
    sys.exit(main())
