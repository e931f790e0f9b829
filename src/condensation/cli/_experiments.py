"""``condensation run``, ``condensation reproduce`` and ``condensation report``."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Optional

import typer
from typer.core import TyperCommand

from condensation.cli._common import OverwriteOpt, SetOpt, console, phase_progress

QuickOpt = Annotated[
    bool, typer.Option("--quick", help="Reduced parameters: a fast check, less accurate numbers.")
]


def _print_headline(headline: dict) -> None:
    for k, v in headline.items():
        console.print(f"  {k} = {v:.6g}" if isinstance(v, float) else f"  {k} = {v}")


def run_cmd(
    name: Annotated[str, typer.Argument(help="Experiment name (listed below).")],
    set_: SetOpt = None,
    out: Annotated[Path, typer.Option("--out", help="Directory to write.")] = ...,
    quick: QuickOpt = False,
    overwrite: OverwriteOpt = False,
) -> None:
    """Run one registered experiment into a directory.

    Writes DIR/summary.json (params and headline numbers), DIR/arrays, DIR/figures
    and DIR/report.html.

    Example: condensation run escape-scaling --set eps_min=1e-5 --out runs/scaling
    """
    from condensation import experiments
    from condensation.reproduction import run_experiment

    exp = experiments.get(name)
    exp.params(set_ or [], quick=quick)  # bad --set values fail before any work
    with phase_progress() as update:
        s = run_experiment(name, out, set_ or [], quick=quick, progress=update, overwrite=overwrite)
    _print_headline(s["headline"])
    console.print(f"wrote {out} ({s['elapsed_s']:.1f} s)")


def reproduce_cmd(
    out: Annotated[Path, typer.Option("--out", help="Directory to write.")] = Path(
        "runs/reproduce"
    ),
    quick: QuickOpt = False,
    only: Annotated[
        Optional[list[str]],  # noqa: UP045 (typer needs Optional on 3.10)
        typer.Option("--only", help="Run only this experiment (repeatable)."),
    ] = None,
    workers: Annotated[
        Optional[int],  # noqa: UP045
        typer.Option(help="Experiments run side by side in this many processes (default 2)."),
    ] = None,
    overwrite: OverwriteOpt = False,
    resume: Annotated[
        bool,
        typer.Option(
            "--resume", help="Reuse experiments already finished (same parameters) in DIR."
        ),
    ] = False,
    set_: Annotated[
        Optional[list[str]],  # noqa: UP045
        typer.Option(
            "--set",
            help="data.KEY=VALUE for every experiment that trains on data (repeatable); "
            "the others are named on one line.",
        ),
    ] = None,
) -> None:
    """Run every registered experiment and write one self-contained report.

    Writes DIR/<name>/ per experiment, DIR/summary.json (every headline number)
    and DIR/report.html.

    Example: condensation reproduce --quick --out runs/quick
    """
    from condensation.errors import InputError
    from condensation.progress import Progress
    from condensation.reproduction import reproduce

    if workers is not None and workers < 1:
        raise InputError("--workers", workers, "must be >= 1", "give --workers 1 or more")
    t0 = time.perf_counter()
    bar: Progress | None = None

    def update(description: str, done: int, total: int) -> None:
        nonlocal bar
        if not description.startswith("experiments"):
            return  # one experiment's own phases: only the count of experiments is shown
        if bar is None:
            bar = Progress(total, "experiment")
        bar.update(done, total=total, description=description)

    try:
        top = reproduce(
            out,
            quick=quick,
            only=only,
            progress=update,
            workers=workers,
            resume=resume,
            overwrite=overwrite,
            overrides=set_ or [],
            notice=lambda line: console.print(line, markup=False, highlight=False),
        )
    finally:
        if bar is not None:
            bar.close()
    if top.get("reused"):
        console.print(f"reused {len(top['reused'])} finished: {', '.join(top['reused'])}")
    for name, head in top["headline"].items():
        console.print(f"{name} ({top['elapsed_s'][name]:.1f} s)")
        _print_headline(head)
    console.print(f"wrote {out}/report.html ({time.perf_counter() - t0:.1f} s)")


def report_cmd(
    directory: Annotated[Path, typer.Argument(help="A reproduce or run directory.")],
) -> None:
    """Re-render DIR/report.html from the stored results (no recomputation).

    Only in a directory condensation wrote (its .condensation-run marker), never over
    a report.html it did not write; every file the summaries name must lie inside DIR,
    and a malformed summary.json is refused in one line naming the file and the key.

    Example: condensation report runs/quick
    """
    from condensation.report.html import render_report

    console.print(f"wrote {render_report(directory)}", markup=False, highlight=False)


class ListsExperiments(TyperCommand):
    """``run --help`` ends with the registered experiments.  They are listed when the
    help is shown, not when the CLI starts: importing every experiment module takes
    seconds, which no other command should pay."""

    def format_help(self, ctx, formatter) -> None:
        from condensation import experiments

        self.epilog = "Experiments: " + ", ".join(experiments.names())
        super().format_help(ctx, formatter)


def register(app: typer.Typer) -> None:
    app.command("run", cls=ListsExperiments)(run_cmd)
    app.command("reproduce")(reproduce_cmd)
    app.command("report")(report_cmd)
