"""The ``condensation`` command line: parse, call the library, write files.

Bad input ends in one line on stderr naming the field, the value and the fix,
with exit status 2 and no output directory left behind.  Ctrl-C (SIGINT) and
SIGTERM stop a run at the next interval boundary (bounded wall time), unwind
every context manager (no partial directory is left), print one line and exit
with 130 and 143 (128 + the signal number), as shells expect.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import warnings

import typer

from condensation import _jax_setup
from condensation.cli import _effective, _experiments, _matrix, _sweep, _train
from condensation.cli._common import (
    Interrupted,
    console_err,
    interrupt_note,
    print_literal,
    show_warning,
)
from condensation.errors import InputError, NumericalError
from condensation.inputs import UnderflowWarning

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Training dynamics of neural networks from small initialisation (Chen & Luo 2024).",
)


@app.callback()
def _root() -> None:
    """Train networks from small initialisation, integrate their effective dynamics
    through its blow-up, and reproduce the paper's experiments."""


_train.register(app)
_effective.register(app)
_experiments.register(app)
_matrix.register(app)
_sweep.register(app)


def _raise_interrupted(signum, frame) -> None:
    raise Interrupted(signum)


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


class _Notes(logging.Handler):
    """The library's notes (e.g. a stale partial directory removed), one line each on
    whatever stderr is at the time."""

    def emit(self, record: logging.LogRecord) -> None:
        print(f"note: {record.getMessage()}", file=sys.stderr)


def main() -> None:
    # SIGINT and SIGTERM raise an exception the command's context managers unwind
    # (partial directories removed, locks released); typer would map Ctrl-C to a
    # returned 130 and SIGTERM would kill the process with nothing cleaned up
    previous = {}
    if threading.current_thread() is threading.main_thread():  # (signals: main thread only)
        previous = {
            sig: signal.signal(sig, _raise_interrupted) for sig in (signal.SIGINT, signal.SIGTERM)
        }
    notes = logging.getLogger("condensation")
    if not any(isinstance(h, _Notes) for h in notes.handlers):
        notes.addHandler(_Notes())
        notes.propagate = False
    try:
        if _jax_setup.PROBLEM is not None:  # a bad CONDENSATION_CPU_DEVICES
            raise _jax_setup.PROBLEM
        with warnings.catch_warnings():  # numerical warnings: shown, one literal line each
            warnings.simplefilter("always", UnderflowWarning)
            warnings.showwarning = show_warning
            rc = app(standalone_mode=False)
    except Interrupted as e:
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
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if rc == 130:  # typer's answer to a KeyboardInterrupt it caught itself
        _interrupted(signal.SIGINT)
    if isinstance(rc, int) and rc != 0:
        sys.exit(rc)
