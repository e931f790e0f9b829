"""``condensation sweep``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from condensation.cli._common import console, print_literal, set_interrupt_note

EXIT_CELLS_FAILED = 4  # the table is written, but some cells failed (listed on stderr)


def sweep_cmd(
    spec: Annotated[Path, typer.Argument(help="Sweep spec (TOML with a \\[sweep] table).")],
    out: Annotated[Path, typer.Option("--out", help="Sweep directory (rerun to continue).")],
    workers: Annotated[
        Optional[int],  # noqa: UP045 (typer needs Optional on 3.10)
        typer.Option(help="Local worker processes (default: one per core; 0: in this process)."),
    ] = None,
    scheduler: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(help="Address of a running Dask scheduler, e.g. tcp://host:8786."),
    ] = None,
    retries: Annotated[int, typer.Option(help="Resubmissions of a task whose worker died.")] = 2,
    plot: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--plot", help="Afterwards, draw --y over this axis from the table."),
    ] = None,
    y: Annotated[Optional[str], typer.Option("--y", help="Metric (column) to plot.")] = None,  # noqa: UP045
    hue: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--hue", help="One line (colour) per value of this axis."),
    ] = None,
    logx: Annotated[
        Optional[bool],  # noqa: UP045
        typer.Option(
            "--logx/--no-logx",
            help="Log (or linear) x axis; default: log where the values are positive "
            "and span a decade or more.",
        ),
    ] = None,
    logy: Annotated[
        Optional[bool],  # noqa: UP045
        typer.Option("--logy/--no-logy", help="Log (or linear) y axis; default as for x."),
    ] = None,
) -> None:
    """Run the product of a spec's axes as cells on a Dask cluster; one results table.

    Writes DIR/cells/<id>/ (one run directory per cell), DIR/results.parquet and
    DIR/results.csv (one row per member), DIR/summary.json. Rerun to continue.
    DIR must be new, empty, or an earlier sweep (its .condensation-sweep marker);
    one sweep at a time per DIR.

    --plot AXIS --y METRIC draws DIR/figures/METRIC_vs_AXIS.png: one colour per
    --hue value, the mean over init.seed per point (members as dots), one panel
    per combination of every other axis; members without a value (not escaped)
    are counted on the figure and here.

    Exit status: 0 every cell complete; 2 bad input (one line, nothing written);
    4 the table is written but some cells failed (each named on stderr; rerun to
    retry them); 130 / 143 interrupted (the line says what was written).

    Example: condensation sweep configs/sweep_example.toml --out runs/sweep
    --plot init.scale --y escape_time --hue model.widths
    """
    from condensation.errors import InputError
    from condensation.sweep import parse_spec, plot_sweep, run_sweep

    if (plot is None) != (y is None):
        raise InputError("--plot", plot, "--plot and --y go together", "give both, or neither")
    for opt, given in (("--hue", hue), ("--logx", logx), ("--logy", logy)):
        if given is not None and plot is None:
            raise InputError(opt, given, "only with --plot", "add --plot AXIS --y METRIC")
    parsed = parse_spec(spec, stream=sys.stderr)  # a bad spec fails here: nothing is written
    if plot is not None:
        check_plot(parsed.axes, plot, y, hue, logx)
    written: dict = {}
    set_interrupt_note(lambda: interrupt_note(out, written))
    s = run_sweep(
        parsed,
        out,
        workers=workers,
        scheduler=scheduler,
        retries=retries,
        on_written=written.update,
    )
    console.print(f"{counts_line(s)}, {s['wall_s']:.1f} s", highlight=False)
    if plot is not None:
        drawn = plot_sweep(out, plot, y, hue, logx=logx, logy=logy)
        for note in drawn.notes:
            console.print(f"note: {note}", markup=False, highlight=False)
        console.print(f"wrote {drawn.path}", markup=False, highlight=False)
    console.print(f"wrote {out}/results.parquet and results.csv")
    if s["failed"]:
        for cell, err in s["failed"].items():
            print_literal("failed:", f"cell {cell}: {err}")
        print_literal(
            "error:",
            f"{s['cells_failed']} of {s['cells']} cells failed (their rows are `failed` in "
            f"{out}/results.csv); rerun the same command to retry them",
        )
        sys.exit(EXIT_CELLS_FAILED)


def check_plot(axes: dict, x: str, y: str, hue: str | None, logx: bool | None) -> None:
    """The plot options against the spec's axes, before anything runs: ``--plot`` and
    ``--hue`` name axes (or ``cell`` / ``status``), the unplotted axes give at most
    :data:`condensation.sweep.facets.MAX_PANELS` panels, ``--logx`` has positive values."""
    from condensation.errors import InputError
    from condensation.sweep.facets import check_log, layout

    cols = {*axes, "cell", "status"}
    for opt, name in (("--plot", x), ("--hue", hue)):
        if name is not None and name not in cols:
            raise InputError(opt, name, "not an axis", f"use one of: {', '.join(axes)}")
    layout({a: v for a, v in axes.items() if a not in ("cell", "status")}, x, y, hue)
    if logx and x in axes:
        check_log("--logx", x, axes[x])


def counts_line(s: dict) -> str:
    """``N cells (M members): a computed, b reused, c failed, d not run``."""
    return (
        f"{s['cells']} cells ({s['members']} members): {s['cells_done']} computed, "
        f"{s['cells_reused']} reused, {s['cells_failed']} failed, {s['cells_not_run']} not run"
    )


def interrupt_note(out: Path, written: dict) -> str:
    """What an interrupted sweep wrote, from what :func:`run_sweep` reported."""
    if "kind" in written:
        return (
            f"wrote the table of what is complete to {out} (results.csv, summary.json): "
            f"{counts_line(written)}; rerun the same command to continue"
        )
    if written.get("claimed"):
        return (
            f"the table was not written (complete cells are kept in {out}/cells); "
            "rerun the same command to continue"
        )
    return f"nothing was written to {out}"


def register(app: typer.Typer) -> None:
    app.command("sweep")(sweep_cmd)
