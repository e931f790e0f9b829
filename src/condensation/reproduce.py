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

import time
from collections.abc import Sequence
from pathlib import Path

from condensation import experiments as X
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
) -> dict:
    """``condensation run``: one experiment into ``out`` (atomically), with its report."""
    exp = X.get(name)
    params = exp.params(overrides, quick=quick)
    out = Path(out)
    check_out_dir(out)
    with run_directory(out) as tmp:
        summary = run_into(exp, params, tmp, progress, quick)
        render_report(tmp)
    return summary


def reproduce(
    out: str | Path = "runs/reproduce",
    quick: bool = False,
    only: Sequence[str] | None = None,
    progress: X.Progress = X.null_progress,
) -> dict:
    """Run every registered experiment (or those in ``only``) into ``out/<name>/``,
    then write ``out/summary.json`` and ``out/report.html``; all or nothing."""
    reg = X.registry()
    chosen = list(reg)
    if only:
        for n in only:
            if n not in reg:
                raise InputError("--only", n, "unknown experiment", f"use one of: {', '.join(reg)}")
        chosen = [n for n in reg if n in set(only)]
    out = Path(out)
    check_out_dir(out)
    summaries = {}
    with run_directory(out) as tmp:
        for name in chosen:
            exp = reg[name]
            (tmp / name).mkdir()
            summaries[name] = run_into(exp, exp.params(quick=quick), tmp / name, progress, quick)
        top = {
            "kind": "reproduce",
            "quick": quick,
            "experiments": chosen,
            "headline": {n: s["headline"] for n, s in summaries.items()},
            "elapsed_s": {n: s["elapsed_s"] for n, s in summaries.items()},
        }
        write_json(tmp / "summary.json", top)
        render_report(tmp)
    return top
