"""Progress of long work: a rich bar on a terminal, plain lines off one.

``with Progress(60, "cell", log_file=DIR / "progress.log") as p: p.advance()``

- On a terminal (the stream is a TTY): one rich progress bar.
- Otherwise (a batch log): plain lines such as ``cell 17/60 done, 2 failed,
  eta 4 min``, at most one every ``every_s`` seconds (the first and the last
  always), so a log of thousands of units stays short.
- ``log_file``: the same plain lines are also appended to this file (on a
  terminal too), so a run's progress can be read afterwards.

The command line also keeps a *session log* (:func:`session_log`): every progress
line, warning and note of the command, with its time, written as ``log.txt`` into
each run directory the command writes; warnings of other libraries (Dask, JAX)
go there instead of the terminal.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

_SESSION: list[list[str]] = []  # the lines of each open session log, innermost last


@contextmanager
def session_log() -> Iterator[list[str]]:
    """Collect the lines :func:`log_line` is given while the block runs (one command)."""
    lines: list[str] = []
    _SESSION.append(lines)
    try:
        yield lines
    finally:
        _SESSION.remove(lines)


def log_line(text: str) -> None:
    """Add ``text``, stamped with the time, to the open session log (if any)."""
    if _SESSION:
        _SESSION[-1].append(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {text}")


def write_session_log(directory: Path) -> None:
    """Write the open session log so far as ``directory/log.txt`` (nothing without one).

    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp())
    >>> with session_log():
    ...     log_line("gd steps 10/10 done, 1 s")
    ...     write_session_log(d)
    >>> (d / "log.txt").read_text().endswith("gd steps 10/10 done, 1 s\\n")
    True
    """
    if _SESSION and _SESSION[-1] and not (directory / "log.txt").exists():
        (directory / "log.txt").write_text("\n".join(_SESSION[-1]) + "\n")


def fmt_duration(s: float) -> str:
    if s < 90:
        return f"{s:.0f} s"
    if s < 5400:
        return f"{s / 60:.0f} min"
    return f"{s / 3600:.1f} h"


class Progress:
    """Count ``done`` (and ``failed``) units out of ``total``; see the module doc."""

    def __init__(
        self,
        total: int,
        unit: str = "cell",
        *,
        description: str = "",
        stream: IO[str] | None = None,
        log_file: str | Path | None = None,
        every_s: float = 10.0,
        clock=time.monotonic,
    ) -> None:
        self.total = int(total)
        self.unit = unit
        self.description = description
        self.done = 0
        self.failed = 0
        self.stream = sys.stderr if stream is None else stream
        self.log_file = Path(log_file) if log_file is not None else None
        self.every_s = every_s
        self._clock = clock
        self._t0 = clock()
        self._last_line: float | None = None
        self._first: tuple[float, int] | None = None  # (time, done) at the first report
        self._last_state: tuple[int, int, int] | None = None
        self._bar = None
        isatty = getattr(self.stream, "isatty", None)
        if isatty is not None and isatty():
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )
            from rich.progress import Progress as RichProgress

            self._bar = RichProgress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=Console(file=self.stream),
            )
            self._bar.start()
            self._task = self._bar.add_task(self._label(), total=self.total)

    # ---- API --------------------------------------------------------------
    def advance(self, n: int = 1, *, failed: int = 0, description: str | None = None) -> None:
        """``n`` more units finished, ``failed`` of them failed."""
        self.update(self.done + n, failed=self.failed + failed, description=description)

    def update(
        self,
        done: int | None = None,
        *,
        total: int | None = None,
        failed: int | None = None,
        description: str | None = None,
    ) -> None:
        if done is not None:
            self.done = done
        if total is not None:
            self.total = total
        if failed is not None:
            self.failed = failed
        if description is not None:
            self.description = description
        if self._bar is not None:
            self._bar.update(
                self._task, completed=self.done, total=self.total, description=self._label()
            )
        self._maybe_line(force=self.done >= self.total)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
        if self._last_state != (self.done, self.failed, self.total):
            self._maybe_line(force=True)

    def __enter__(self) -> Progress:
        self._maybe_line(force=True)
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ---- lines ------------------------------------------------------------
    def _label(self) -> str:
        extra = f", {self.failed} failed" if self.failed else ""
        unit = self.unit if self.unit.endswith("s") else self.unit + "s"
        return f"{self.description or unit}{extra}"

    def line(self) -> str:
        """``cell 17/60 done, 2 failed, eta 4 min`` (and what is being done)."""
        s = f"{self.unit} {self.done}/{self.total} done"
        if self.failed:
            s += f", {self.failed} failed"
        now = self._clock()
        elapsed = now - self._t0
        if self._first is None and self.done > 0:
            self._first = (now, self.done)
        if 0 < self.done < self.total and self._first is not None:
            # the rate since the first unit finished: the time to it holds start-up
            # work (compilation, a cluster's start) that the remaining units do not
            t1, d1 = self._first
            if self.done > d1 and now > t1:
                rate = (now - t1) / (self.done - d1)
                s += f", eta {fmt_duration(rate * (self.total - self.done))}"
        elif self.done >= self.total:
            s += f", {fmt_duration(elapsed)}"
        if self.description:
            s += f" ({self.description})"
        return s

    def _maybe_line(self, force: bool = False) -> None:
        now = self._clock()
        if not force and self._last_line is not None and now - self._last_line < self.every_s:
            return
        self._last_line = now
        self._last_state = (self.done, self.failed, self.total)
        text = self.line()
        log_line(text)
        if self._bar is None:
            print(text, file=self.stream, flush=True)
        if self.log_file is not None:
            with open(self.log_file, "a") as f:
                f.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {text}\n")


def forward_only(progress):
    """``progress(done)`` called only with counts beyond the furthest reported so far
    (work reported by two phases that overlap, e.g. a fast-forward's search and GD).

    >>> seen = []
    >>> report = forward_only(seen.append)
    >>> for done in (5, 3, 7, 7, 9):
    ...     report(done)
    >>> seen
    [5, 7, 9]
    """
    furthest = [-1]

    def report(done: int) -> None:
        if done > furthest[0]:
            furthest[0] = done
            progress(done)

    return report

