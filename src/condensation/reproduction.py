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

import json
import shutil
import time
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from pathlib import Path

from condensation import experiments as X
from condensation.engine import Engine, Task
from condensation.errors import InputError
from condensation.jax_setup import usable_cores
from condensation.report.html import write_report
from condensation.report.schema import check_experiment
from condensation.store.rundir import (
    check_out_dir,
    claim_staging,
    put_in_place,
    reserve,
    resolve_out,
    run_directory,
    write_json,
    write_marker,
)


def run_into(
    exp: X.Experiment,
    params: dict,
    out_dir: Path,
    progress: X.Progress = X.null_progress,
    quick: bool = False,
) -> dict:
    """Run ``exp`` into the existing directory ``out_dir``; write its summary.json
    (with ``data``: what it trained on, :meth:`Experiment.data_used`, or None)."""
    data = exp.data_used(params)  # a malformed data.path is refused before compute
    t0, c0 = time.perf_counter(), time.process_time()
    headline = exp.run(params, out_dir, lambda d, k, n: progress(f"{exp.name}: {d}", k, n))
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
    numbers = {f"{exp.key}.{n}" for f in exp.figures for n in f.numbers}
    summary = {
        "kind": "experiment",
        "name": exp.name,
        "title": exp.title,
        "section": exp.section,
        "story": exp.story,
        "quick": quick,
        "params": params,
        "data": data,
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
        "cpu_s": round(cpu, 3),  # this process's CPU (all its threads) while it ran
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
        write_report(tmp)
    return summary


def _run_task(name: str, params: dict, quick: bool, out_dir: str, progress=None) -> dict:
    """One experiment as an engine task: into ``out_dir`` (built beside it, renamed
    when complete, so a directory that exists is a finished experiment)."""
    exp = X.registry()[name]
    out = Path(out_dir)
    with run_directory(out) as tmp:
        summary = run_into(exp, params, tmp, progress or X.null_progress, quick)
    return summary


def default_workers() -> int:
    """Experiments run side by side in this many processes (most of a quick run is
    single-threaded JIT compilation, so two processes use two cores)."""
    return max(1, min(2, usable_cores()))


def _finished(d: Path, params: dict, quick: bool) -> bool:
    """``d`` holds a finished run of the experiment with these params (a real
    directory, not a symlink, whose summary.json is well formed)."""
    if d.is_symlink() or not d.is_dir() or (d / "summary.json").is_symlink():
        return False
    try:
        raw = json.loads((d / "summary.json").read_text())
        s = check_experiment(raw, str(d))
    except (OSError, ValueError, RecursionError):  # InputError is a ValueError
        return False
    return (
        s["quick"] == quick
        and s["params"] == params
        and "headline" in raw
        and isinstance(raw.get("elapsed_s"), (int, float))
    )


def reproduce(
    out: str | Path = "runs/reproduce",
    quick: bool = False,
    only: Sequence[str] | None = None,
    progress: X.Progress = X.null_progress,
    workers: int | None = None,
    overwrite: bool = False,
    resume: bool = False,
    overrides: Sequence[str] = (),
    notice: Callable[[str], None] = lambda line: None,
) -> dict:
    """Run every registered experiment (or those in ``only``) into ``out/<name>/``,
    then write ``out/summary.json`` and ``out/report.html``; all or nothing.

    Experiments are tasks on the engine (:mod:`condensation.engine`): with
    ``workers > 1`` they run side by side in worker processes (results do not
    depend on it: each experiment is deterministic and writes only its own
    directory).  ``overrides`` (``data.KEY=VALUE``) go to every experiment that
    trains on data; the chosen experiments without a data set are named in one
    line to ``notice`` before anything is computed (none taking data: InputError),
    and the data of every experiment are loaded (checked) first.  With ``resume``,
    an experiment already finished with the same parameters (in ``out`` or in the
    staging directory a killed or failed ``--resume`` run left beside it) is reused,
    and the staging directory is kept when this run fails, so the next ``--resume``
    continues from there."""
    reg = X.registry()
    chosen = list(reg)
    if only:
        for n in only:
            if n not in reg:
                raise InputError("--only", n, "unknown experiment", f"use one of: {', '.join(reg)}")
        chosen = [n for n in reg if n in set(only)]
    for item in overrides:
        if not item.split("=", 1)[0].strip().startswith("data."):
            raise InputError(
                "--set",
                item,
                "reproduce takes only data.KEY=VALUE",
                "write e.g. --set data.path=my.npz",
            )
    if overrides and not any(reg[n].uses_data for n in chosen):
        raise InputError("--set", overrides[0], "no chosen experiment takes data", "drop --set")
    params = {
        n: reg[n].params(overrides if reg[n].uses_data else (), quick=quick, reproduce=True)
        for n in chosen
    }
    if overrides:
        for n in chosen:
            reg[n].data_used(params[n])  # every data set loaded (checked) before compute
        without = [n for n in chosen if not reg[n].uses_data]
        if without:
            notice(data_not_used_line(overrides, without))
    out = Path(out)
    workers = default_workers() if workers is None else workers
    if resume:
        # an earlier finished run in ``out`` is reused and then replaced (only if it
        # holds nothing but its own files); a killed --resume run's staging is kept
        with reserve(out, overwrite=True):
            stage = claim_staging(out, "resume")
            with _staged(out, stage) as tmp:
                return _reproduce_into(tmp, reg, chosen, params, quick, progress, workers, out)
    check_out_dir(out, overwrite)
    with run_directory(out, overwrite) as tmp:
        return _reproduce_into(tmp, reg, chosen, params, quick, progress, workers, None)


def data_not_used_line(overrides: Sequence[str], names: Sequence[str]) -> str:
    """The one console line naming the experiments that ``data.*`` overrides do not
    reach (they train on no data set)."""
    keys = ", ".join(dict.fromkeys(item.split("=", 1)[0].strip() for item in overrides))
    return f"{keys}: not used by {', '.join(names)} (they train on no data set)"


@contextmanager
def _staged(out: Path, stage: Path):
    """Like :func:`run_directory`, on a fixed staging directory kept on failure."""
    yield stage
    write_marker(stage)
    put_in_place(stage, resolve_out(out))


def _reproduce_into(tmp, reg, chosen, params, quick, progress, workers, earlier) -> dict:
    summaries: dict[str, dict] = {}
    for name in chosen:
        d = tmp / name
        if _finished(d, params[name], quick):
            summaries[name] = json.loads((d / "summary.json").read_text())
        elif d.is_symlink():
            d.unlink()  # never followed: the link itself goes, not what it points to
        elif d.exists():
            shutil.rmtree(d)  # our own half-written staging entry
        elif earlier is not None and _finished(earlier / name, params[name], quick):
            shutil.copytree(earlier / name, d, symlinks=True)  # never a copy of an outside file
            summaries[name] = json.loads((d / "summary.json").read_text())
    todo = [n for n in chosen if n not in summaries]
    # longest first (the modules' measured SECONDS), so the workers finish together;
    # the report keeps the registry's order
    todo.sort(key=lambda n: -reg[n].seconds[0 if quick else 1])
    # a worker process sees only experiments it can import (the registered modules)
    importable = all(reg[n].run_fn.__module__ in X.MODULES for n in todo)
    inline = workers <= 1 or len(todo) <= 1 or not importable
    tasks = [
        Task(
            n,
            _run_task,
            (n, params[n], quick, str(tmp / n)),
            {"progress": progress} if inline else {},
        )
        for n in todo
    ]
    progress("experiments", len(summaries), len(chosen))
    with Engine(workers=0 if inline else min(workers, len(todo)), retries=2) as eng:
        for o in eng.run(tasks):
            if not o.ok:
                o.raise_input_error()
                raise ExperimentError(f"experiment {o.key} failed: {o.error}")
            summaries[o.key] = o.value
            progress(f"experiments ({o.key} done)", len(summaries), len(chosen))
    top = {
        "kind": "reproduce",
        "quick": quick,
        "experiments": chosen,
        "headline": {n: summaries[n]["headline"] for n in chosen},
        "elapsed_s": {n: summaries[n]["elapsed_s"] for n in chosen},
        # CPU seconds per experiment (SECONDS of each module are these, measured);
        # None for a run reused from before this field existed
        "cpu_s": {n: summaries[n].get("cpu_s") for n in chosen},
        "reused": sorted(set(chosen) - set(todo)),
        # what each experiment trained on (None: no data set; absent: an older run)
        "data": {n: summaries[n].get("data") for n in chosen},
    }
    write_json(tmp / "summary.json", top)
    write_report(tmp)
    return top


class ExperimentError(RuntimeError):
    """An experiment raised (its one-line error); nothing of this reproduce is kept."""
