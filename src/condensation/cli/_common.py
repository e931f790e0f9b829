"""Shared CLI helpers: consoles, progress bars, option types."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.text import Text

console = Console()
console_err = Console(stderr=True)


def print_literal(prefix: str, message: object, style: str = "bold red") -> None:
    """One line on stderr: ``prefix`` styled, ``message`` printed literally (never
    read as rich markup, so ``[data]`` or ``[50, 50]`` stay as written)."""
    console_err.print(
        Text.assemble((prefix, style), " ", str(message)), highlight=False, soft_wrap=True
    )


def show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """``warnings.showwarning`` for the CLI: one literal line, no source location."""
    print_literal("warning:", message, "yellow")


ConfigArg = Annotated[
    Optional[Path],  # noqa: UP045 (typer needs Optional on 3.10)
    typer.Argument(help="TOML config; built-in defaults when omitted.", show_default=False),
]
SetOpt = Annotated[
    Optional[list[str]],  # noqa: UP045
    typer.Option("--set", help="Override a config value: section.key=value (repeatable)."),
]
OutOpt = Annotated[Path, typer.Option("--out", help="Run directory to write.")]


@contextmanager
def phase_progress():
    """Yield ``update(description, done, total)``: one rich bar (on stderr) per
    distinct description, so multi-phase work shows each phase."""
    with Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console_err,
        transient=False,
        disable=not console_err.is_terminal,
    ) as p:
        tasks: dict[str, int] = {}

        def update(description: str, done: int, total: int) -> None:
            if description not in tasks:
                tasks[description] = p.add_task(description, total=total)
            p.update(tasks[description], completed=done, total=total)

        yield update


@contextmanager
def progress_bar(total: int, description: str):
    """Yield ``update(done)`` for one phase of ``total`` units."""
    with phase_progress() as update:
        yield lambda done: update(description, done, total)
