"""Shared CLI helpers: consoles, progress bars, option types."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Annotated, Any, NamedTuple, Optional

import typer
from rich.console import Console
from rich.text import Text

from condensation import commands
from condensation.progress import log_line
from condensation.store.checkpoint import Checkpoint, checkpoint_dir
from condensation.store.rundir import completed_run, read_marker, reserve, run_directory

log = logging.getLogger("condensation")
# Every line is printed literally (no rich markup, no highlighting: ``[50, 50]`` or
# ``[sweep]`` stay as written) and never wrapped by rich: piped into a file, a
# line is the program's line, not cut at 80 columns mid-value; a terminal wraps
# long lines itself.
console = Console(soft_wrap=True, markup=False, highlight=False)
console_err = Console(stderr=True, soft_wrap=True, markup=False, highlight=False)


def print_literal(prefix: str, message: object, style: str = "bold red") -> None:
    """One line on stderr: ``prefix`` styled, ``message`` printed literally (never
    read as rich markup, so ``[data]`` or ``[50, 50]`` stay as written); also in the
    session log."""
    log_line(f"{prefix} {message}")
    console_err.print(
        Text.assemble((prefix, style), " ", str(message)), highlight=False, soft_wrap=True
    )


def num(v, none: str = "None") -> str:
    """A number for the console: at most 6 significant digits (``367.95000000000005``
    prints ``367.95``); ``none`` where it is not defined (None)."""
    return none if v is None else format(v, ".6g")


_PACKAGE = Path(__file__).resolve().parents[1]  # src/condensation


def ours(category: type, filename: str) -> bool:
    """A warning condensation gave (its class or the code that warned is the package's),
    not one of another library (Dask's "port in use", a JAX notice)."""
    if getattr(category, "__module__", "").startswith("condensation"):
        return True
    try:
        return Path(filename).resolve().is_relative_to(_PACKAGE)
    except (OSError, ValueError):
        return False


def show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """``warnings.showwarning`` for the CLI: every warning goes to the session log (a
    run directory's log.txt, :mod:`condensation.progress`); condensation's own are
    also shown, one literal line each, with no source location; other libraries'
    stay off the terminal."""
    if ours(category, filename):
        print_literal("warning:", message, "yellow")  # (print_literal logs it too)
    else:
        text = " ".join(str(message).split())
        log_line(f"warning: {text} ({category.__name__}, {filename}:{lineno})")


ConfigArg = Annotated[
    Optional[Path],  # noqa: UP045 (typer needs Optional on 3.10)
    typer.Argument(help="TOML config; built-in defaults when omitted.", show_default=False),
]
SetOpt = Annotated[
    Optional[list[str]],  # noqa: UP045
    typer.Option("--set", help="Override a config value: section.key=value (repeatable)."),
]
OutOpt = Annotated[Path, typer.Option("--out", help="Run directory to write.")]
OverwriteOpt = Annotated[
    bool,
    typer.Option(
        "--overwrite",
        help="Replace --out if it is an earlier run holding only files condensation wrote.",
    ),
]
ResumeOpt = Annotated[
    bool,
    typer.Option(
        "--resume",
        help="Continue from the checkpoint an interrupted run of the same command left.",
    ),
]


class Interrupted(BaseException):
    """SIGINT or SIGTERM, raised in the main thread so that context managers unwind."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


_NOTE: list = ["nothing was written"]


def set_interrupt_note(note) -> None:
    """What the one line printed on an interrupt says (a string, or a function giving one)."""
    _NOTE[0] = note


def interrupt_note() -> str:
    return _NOTE[0]() if callable(_NOTE[0]) else _NOTE[0]


def already_done(out: Path, key: str, resume: bool) -> bool:
    """With ``--resume``: ``out`` is already the finished run of this command (say so)."""
    if resume and completed_run(out, key):
        console.print(f"{out} is already complete (nothing to resume)", highlight=False)
        return True
    return False


@contextmanager
def guarded_run(out: Path, key: str, *, overwrite: bool, resume: bool, need_bytes: float):
    """Check, lock and reserve ``out`` before any compute (store.reserve) and yield the
    run's :class:`Checkpoint`; it is discarded once the block (the run) succeeds."""
    with reserve(out, overwrite, need_bytes):
        ck = Checkpoint(checkpoint_dir(out), key, resume=resume)
        before = read_marker(out)

        def committed() -> bool:  # this run's directory is in place (a new marker)
            after = read_marker(out)
            return after is not None and after != before and completed_run(out, key)

        def note() -> str:
            if committed():  # the signal came as the directory was renamed
                return f"{out} was written completely before the interrupt"
            if ck.exists:
                return f"nothing was written to {out}; continue with the same command and --resume"
            return f"nothing was written to {out}"

        set_interrupt_note(note)
        try:
            yield ck
        except Exception:  # a failure, not an interrupt: nothing is kept
            ck.discard()
            raise
        except BaseException:  # an interrupt: keep the last boundary for --resume
            if committed():
                ck.discard()
            else:
                try:
                    ck.flush()
                except OSError as e:  # e.g. the disk is full: the interrupt still wins
                    log.warning("the checkpoint could not be saved (%s)", e.strerror or e)
            raise
        ck.discard()


@contextmanager
def phase_progress():
    """Yield ``update(description, done, total)``: one :class:`condensation.progress.Progress`
    per distinct description, so multi-phase work shows each phase: a rich bar on a
    terminal, plain lines at a bounded rate (``gd steps 3000/12000 done, eta 20 s``)
    when stderr is not one (a batch log)."""
    from condensation.progress import Progress as Phase

    phases: dict[str, Phase] = {}

    def update(description: str, done: int, total: int) -> None:
        if description not in phases:
            phases[description] = Phase(total, description, stream=sys.stderr)
        phases[description].update(done, total=total)

    try:
        yield update
    finally:
        for phase in phases.values():
            phase.close()


@contextmanager
def progress_bar(total: int, description: str):
    """Yield ``update(done)`` for one phase of ``total`` units."""
    with phase_progress() as update:
        yield lambda done: update(description, done, total)


class Outcome(NamedTuple):
    """What :func:`run_command` ran: the prepared run, the run and its summary."""

    prepared: Any
    run: Any
    summary: dict


def run_command(
    name: str,
    config: Path | None,
    overrides: Sequence[str],
    out: Path,
    *,
    overwrite: bool,
    resume: bool,
    options: Mapping[str, Any] | None = None,
    progress: Callable[[Any], AbstractContextManager] | None = None,
) -> Outcome | None:
    """One command of the registry (:mod:`condensation.commands.registry`) on the
    command line: load -> options -> prepare once -> key -> (``--resume`` of a
    finished run: nothing to do) -> disk checked, ``out`` locked -> run -> write.

    Args:
        name: the registered command.
        config: the TOML config (None: the built-in defaults).
        overrides: the ``--set`` strings.
        out: the run directory (``--out``).
        overwrite: ``--overwrite``.
        resume: ``--resume``.
        options: the command's own options (``effective``'s ``form``, ...).
        progress: ``prepared -> context manager`` yielding the run's progress
            callback (or None), entered around the run alone.

    Returns:
        The :class:`Outcome`, or None when ``out`` already holds this finished run.
    """
    cmd = commands.get(name)
    cfg = cmd.load(config, overrides)
    opts = cmd.options(options or {})
    prep = cmd.prepare(cfg, opts)
    key = cmd.key(prep, opts)
    if already_done(out, key, resume):
        return None
    need = cmd.output_bytes(prep, opts)
    with guarded_run(out, key, overwrite=overwrite, resume=resume, need_bytes=need) as ck:
        with (progress or (lambda prep: nullcontext()))(prep) as update:
            run = cmd.run(prep, opts, update, ck)
        with run_directory(out, overwrite, key=key) as tmp:
            s = cmd.write(run, tmp)
    return Outcome(prep, run, s)
