"""The ``condensation`` command line: parse, call the library, write files.

Bad input ends in one line on stderr naming the field, the value and the fix,
with exit status 2 and no output directory left behind; so does an error of the
operating system (disk full, read-only, name too long: the path, the reason, a
fix).  Ctrl-C (SIGINT) and SIGTERM stop a run at the next interval boundary
(bounded wall time), unwind every context manager (no partial directory is
left), print one line and exit with 130 and 143 (128 + the signal number), as
shells expect.  From the process's first instruction: while the command starts
(imports), a signal ends it at once with the same line (see
:mod:`_condensation_entry`, the console script's entry).
"""

from __future__ import annotations

import errno
import logging
import os
import signal
import sys
import threading
import warnings
from typing import Annotated

import typer

import _condensation_entry as entry
from condensation import interrupts, jax_setup
from condensation.cli import _effective, _experiments, _matrix, _sweep, _train
from condensation.cli._common import (
    Interrupted,
    console_err,
    interrupt_note,
    print_literal,
    show_warning,
)
from condensation.config.checks import UnderflowWarning
from condensation.errors import InputError, NumericalError
from condensation.progress import log_line, session_log

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Training dynamics of neural networks from small initialisation (Chen & Luo 2024).",
)


def _print_version(value: bool) -> None:
    if value:
        from condensation import __version__

        print(f"condensation {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_print_version,
            is_eager=True,
            help="Print the version and exit.",
        ),
    ] = False,
) -> None:
    """Train networks from small initialisation, integrate their effective dynamics
    through its blow-up, and reproduce the paper's experiments."""


_train.register(app)
_effective.register(app)
_experiments.register(app)
_matrix.register(app)
_sweep.register(app)


def _raise_interrupted(signum: int) -> None:
    raise Interrupted(signum)


def _overdue(signum: int) -> None:
    """The deadline of :mod:`condensation.interrupts`: the main thread is inside one
    long C call; end now with the line (a partial directory is left to the next run
    of the same output, which proves by its marker that it is ours and removes it)."""
    entry.exit_now(signum, interrupt_note())


def _ignore(signum: int) -> None:
    """A further signal while an interrupt is reported: the process is already ending."""


def _exit_after_command(finished: bool):
    """What a signal does once the command has returned or raised: end at once, with
    one line saying what was written (the interpreter's teardown is skipped)."""

    def action(signum: int) -> None:
        note = "the command had finished (its output is complete)" if finished else None
        entry.exit_now(signum, note or interrupt_note())

    return action


def _interrupted(signum: int, hard: bool = False) -> None:
    name = signal.Signals(signum).name
    console_err.print(
        f"interrupted by {name}: {interrupt_note()}", markup=False, highlight=False, soft_wrap=True
    )
    if hard:
        # a real signal: everything is unwound; skip the interpreter's teardown, which
        # can crash (SIGSEGV) while XLA's threads are still compiling or running
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(128 + signum)
    sys.exit(128 + signum)


_OS_FIXES = {
    errno.ENOSPC: "free some space on that disk, or write somewhere else (--out), then rerun",
    errno.EACCES: "choose a place you can write to (--out), or change its permissions",
    errno.EPERM: "choose a place you can write to (--out), or change its permissions",
    errno.EROFS: "that file system is read-only: choose a place on another one (--out)",
    errno.ENAMETOOLONG: "choose a shorter name (at most about 200 characters) or a shorter path",
    errno.ENOENT: "check that the path exists (was a folder removed while the command ran?)",
    errno.ENOTDIR: "a part of the path is a file, not a folder: choose another path",
    errno.EISDIR: "the path is a folder where a file was expected: choose another path",
    errno.EEXIST: "move away what is at that path, or choose another",
    errno.EMFILE: "too many open files: raise the limit (ulimit -n) or run fewer at once",
    errno.ENFILE: "too many open files: raise the limit (ulimit -n) or run fewer at once",
    errno.EIO: "the disk reported an input/output error: check it, or write somewhere else",
    errno.ELOOP: "the path holds a loop of symbolic links: choose another path",
}
if hasattr(errno, "EDQUOT"):  # not on Windows
    _OS_FIXES[errno.EDQUOT] = (
        "free some of your disk quota, or write somewhere else (--out), then rerun"
    )


def describe_os_error(e: OSError) -> str:
    """One line for an error of the operating system that reached the command line's
    top: the path (both, for a rename), the OS's reason and its code, and a fix.

    >>> import errno
    >>> line = describe_os_error(OSError(errno.ENOSPC, "No space left on device", "/data/run"))
    >>> line.split("; fix: ")[0]
    "path = '/data/run': No space left on device (ENOSPC)"
    """
    code = errno.errorcode.get(e.errno, str(e.errno))
    reason = f"{e.strerror or os.strerror(e.errno)} ({code})"
    fix = _OS_FIXES.get(e.errno, "check the path and its file system, then rerun")
    if e.filename is None:
        return f"a file operation failed: {reason}; fix: {fix}"
    path = os.fsdecode(e.filename) if isinstance(e.filename, (str, bytes)) else str(e.filename)
    if e.filename2 is not None:
        path = f"{path} -> {os.fsdecode(e.filename2)}"
    return str(InputError("path", path, reason, fix))


class _Notes(logging.Handler):
    """The library's notes (e.g. a stale partial directory removed), one line each on
    whatever stderr is at the time."""

    def emit(self, record: logging.LogRecord) -> None:
        log_line(f"note: {record.getMessage()}")
        print(f"note: {record.getMessage()}", file=sys.stderr)


def _run_app():
    if jax_setup.PROBLEM is not None:  # a bad CONDENSATION_CPU_DEVICES
        raise jax_setup.PROBLEM
    # warnings: condensation's shown, one literal line each; all in the session log
    with warnings.catch_warnings(), session_log():
        warnings.simplefilter("always", UnderflowWarning)
        warnings.showwarning = show_warning
        return app(standalone_mode=False)


def main() -> None:
    """Run the command line (``condensation ...``; the console script enters through
    :func:`_condensation_entry.main`, which installs the signal handler first).

    While the command runs, SIGINT and SIGTERM raise :class:`Interrupted`, which the
    command's context managers unwind (partial directories removed, locks released,
    the checkpoint kept for ``--resume``); typer would map Ctrl-C to a returned 130
    and SIGTERM would kill the process with nothing cleaned up.  Before it (imports)
    and after it (reporting, teardown), a signal ends the process at once with one
    line.  Called in-process (tests), the handler is installed for the call and the
    previous handlers are restored after it."""
    notes = logging.getLogger("condensation")
    if not any(isinstance(h, _Notes) for h in notes.handlers):
        notes.addHandler(_Notes())
        notes.propagate = False
    own = threading.current_thread() is threading.main_thread()  # signals: main thread only
    # the process is the command (not an in-process call): a signal the main thread
    # cannot take within interrupts.GRACE (inside one long C call) ends it at once
    if own and entry.installed():
        interrupts.arm(_overdue)
    previous: dict = {}
    before = None
    try:
        try:
            # one handler throughout; only its action changes (a module variable, read
            # when a signal is handled), so no signal is lost in a switch
            if own:
                before = entry.on_signal(_raise_interrupted)
                if not entry.installed():  # in-process: ours for this call
                    for sig in entry.SIGNALS:
                        previous[sig] = signal.signal(sig, entry.handler)
            rc = _run_app()
        except BaseException:
            if own:  # a signal before this line raises Interrupted: caught below
                entry.on_signal(_exit_after_command(False))
            raise
        if own:
            entry.on_signal(_exit_after_command(rc in (None, 0)))
    except Interrupted as e:
        if own:
            entry.on_signal(_ignore)
        _interrupted(e.signum, hard=True)
    except InputError as e:
        print_literal("error:", e)
        sys.exit(2)
    except NumericalError as e:
        print_literal("numerical failure:", e)
        sys.exit(3)
    except typer.Abort:
        console_err.print("aborted")
        sys.exit(130)
    except KeyboardInterrupt:
        _interrupted(signal.SIGINT)
    except OSError as e:
        # the last resort for the operating system's refusals (disk full, read-only,
        # name too long, quota): one line with the path, the reason and a fix.  Most
        # are turned into InputErrors earlier; an OSError without an errno is a bug
        if e.errno is None:
            raise
        print_literal("error:", describe_os_error(e))
        sys.exit(2)
    except Exception as e:
        # usage errors (typer's click layer, vendored or not) carry their own exit
        # code and know how to print themselves; anything else is a bug: re-raise
        code = getattr(e, "exit_code", None)
        if code is None:
            raise
        if hasattr(e, "show"):
            e.show()
        sys.exit(code)
    finally:
        interrupts.disarm()
        if previous:  # in-process: give the caller its handlers back
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            entry.on_signal(before)
    if rc == 130:  # typer's answer to a KeyboardInterrupt it caught itself
        _interrupted(signal.SIGINT)
    if isinstance(rc, int) and rc != 0:
        sys.exit(rc)
