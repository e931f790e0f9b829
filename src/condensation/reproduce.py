"""Run registered experiments into directories; ``reproduce`` runs them all.

Layouts (every directory is built in a temporary sibling and renamed into place
only when complete, so an error or interrupt leaves nothing half-written):

- ``condensation run NAME --out DIR``: ``DIR/summary.json`` (kind
  ``experiment``: name, title, section, story, params, headline numbers,
  figure captions), ``DIR/arrays/*.npz``, ``DIR/figures/*.png``,
  ``DIR/report.html``.
- ``condensation reproduce --out DIR``: one such directory per experiment,
  ``DIR/<name>/``, plus ``DIR/summary.json`` (kind ``reproduce``: every headline
  number keyed by experiment) and ``DIR/report.html``.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from pathlib import Path

from condensation import experiments as X
from condensation._jax_setup import ENV_VAR, usable_cores
from condensation.errors import InputError
from condensation.report.html import render_report
from condensation.store import check_out_dir, run_directory, write_json


def run_into(
    exp: X.Experiment,
    params: dict,
    out_dir: Path,
    progress: X.Progress = X.null_progress,
    quick: bool = False,
) -> dict:
    """Run ``exp`` into the existing directory ``out_dir``; write its summary.json."""
    t0 = time.perf_counter()
    headline = exp.run(params, out_dir, lambda d, k, n: progress(f"{exp.name}: {d}", k, n))
    elapsed = time.perf_counter() - t0
    numbers = {f"{exp.key}.{n}" for f in exp.figures for n in f.numbers}
    summary = {
        "kind": "experiment",
        "name": exp.name,
        "title": exp.title,
        "section": exp.section,
        "story": exp.story,
        "quick": quick,
        "params": params,
        "headline": headline,
        "figures": [
            {
                "file": f.file,
                "caption": f.caption,
                "numbers": [f"{exp.key}.{n}" for n in f.numbers if f"{exp.key}.{n}" in headline],
            }
            for f in exp.figures
        ],
        "other_numbers": sorted(k for k in headline if k not in numbers),
        "elapsed_s": round(elapsed, 3),
    }
    write_json(out_dir / "summary.json", summary)
    return summary


def run_experiment(
    name: str,
    out: str | Path,
    overrides: Sequence[str] = (),
    quick: bool = False,
    progress: X.Progress = X.null_progress,
    overwrite: bool = False,
) -> dict:
    """``condensation run``: one experiment into ``out`` (atomically), with its report;
    an earlier run in ``out`` is replaced only with ``overwrite``."""
    exp = X.get(name)
    params = exp.params(overrides, quick=quick)
    out = Path(out)
    check_out_dir(out, overwrite)
    with run_directory(out, overwrite) as tmp:
        summary = run_into(exp, params, tmp, progress, quick)
        render_report(tmp)
    return summary


def _run_in_worker(name: str, quick: bool, out_dir: str) -> dict:
    """One experiment in a worker process (module-level so it can be pickled)."""
    exp = X.registry()[name]
    return run_into(exp, exp.params(quick=quick), Path(out_dir), X.null_progress, quick)


@contextmanager
def _worker_cores(workers: int):
    """Split the cores among the worker processes: each worker exposes its share
    as JAX devices (``CONDENSATION_CPU_DEVICES``, unless the user set it)."""
    if ENV_VAR in os.environ:
        yield
        return
    os.environ[ENV_VAR] = str(max(1, usable_cores() // workers))
    try:
        yield
    finally:
        del os.environ[ENV_VAR]


def default_workers() -> int:
    """Experiments run side by side in this many processes (most of a quick run is
    single-threaded JIT compilation, so two processes use two cores)."""
    return max(1, min(2, usable_cores()))


def reproduce(
    out: str | Path = "runs/reproduce",
    quick: bool = False,
    only: Sequence[str] | None = None,
    progress: X.Progress = X.null_progress,
    workers: int | None = None,
    overwrite: bool = False,
) -> dict:
    """Run every registered experiment (or those in ``only``) into ``out/<name>/``,
    then write ``out/summary.json`` and ``out/report.html``; all or nothing.

    With ``workers > 1`` experiments run in separate processes (results do not
    depend on it: each experiment is deterministic and writes only its own
    directory); progress is then reported per finished experiment."""
    reg = X.registry()
    chosen = list(reg)
    if only:
        for n in only:
            if n not in reg:
                raise InputError("--only", n, "unknown experiment", f"use one of: {', '.join(reg)}")
        chosen = [n for n in reg if n in set(only)]
    out = Path(out)
    check_out_dir(out, overwrite)
    summaries = {}
    workers = default_workers() if workers is None else workers
    with run_directory(out, overwrite) as tmp:
        for name in chosen:
            (tmp / name).mkdir()
        # a worker process sees only experiments it can import (the registered modules)
        importable = all(reg[n].run_fn.__module__ in X._MODULES for n in chosen)
        if workers > 1 and len(chosen) > 1 and importable:
            ctx = multiprocessing.get_context("spawn")  # JAX and fork do not mix
            with (
                _worker_cores(workers),
                ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool,
            ):
                futures = {
                    pool.submit(_run_in_worker, name, quick, str(tmp / name)): name
                    for name in chosen
                }
                progress("experiments", 0, len(chosen))
                for done, fut in enumerate(as_completed(futures), start=1):
                    summaries[futures[fut]] = fut.result()
                    progress(f"experiments ({futures[fut]} done)", done, len(chosen))
        else:
            for name in chosen:
                exp = reg[name]
                summaries[name] = run_into(
                    exp, exp.params(quick=quick), tmp / name, progress, quick
                )
        top = {
            "kind": "reproduce",
            "quick": quick,
            "experiments": chosen,
            "headline": {n: summaries[n]["headline"] for n in chosen},
            "elapsed_s": {n: summaries[n]["elapsed_s"] for n in chosen},
        }
        write_json(tmp / "summary.json", top)
        render_report(tmp)
    return top
