"""A rich progress display for multi-phase work: ``progress(description, done, total)``."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from condensation.cli._common import console_err


@contextmanager
def phase_progress() -> Iterator:
    """Yield ``update(description, done, total)``: one bar per distinct description."""
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
