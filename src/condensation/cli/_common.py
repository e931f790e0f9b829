"""Shared CLI helpers: consoles, progress bars, option types."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

console = Console()
console_err = Console(stderr=True)

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
def progress_bar(total: int, description: str):
    """Yield ``update(done)``; shows a rich progress bar on stderr."""
    with Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console_err,
        transient=False,
        disable=not console_err.is_terminal,
    ) as p:
        task = p.add_task(description, total=total)
        yield lambda done: p.update(task, completed=done)
