"""The first code the ``condensation`` command runs: its SIGINT and SIGTERM handler.

Starting the command imports JAX, SciPy, matplotlib and typer: seconds before
anything is done.  A signal then must not raise into an import (a
``KeyboardInterrupt`` traceback, an ``ImportError`` from a half-imported module,
an abort in JAX's C++ extension), be swallowed by an import, or kill the process
with no word (SIGTERM's default).  So the console script enters here, a module
outside the ``condensation`` package that imports only the standard library, and
``python -m condensation`` calls :func:`install_for_python_m` first thing in the
package's ``__init__``.  From then on, one handler serves the whole process:

- while the command starts (imports, and until :func:`condensation.cli.main`
  takes over), a signal ends the process at once: one line on stderr,
  ``interrupted by SIGINT: nothing was written``, exit status 128 + the signal
  number (130, 143).  Nothing has been written then.
- :func:`condensation.cli.main` sets what a signal does next with
  :func:`on_signal` (raise an exception the command's context managers unwind;
  after the command, exit at once with a line that says what was written).

The handler is installed once and never replaced while the command runs; main
switches a module variable, which a handler reads when it runs.  A signal is
therefore never lost in a switch: it finds the old action or the new one.
Python runs handlers in the main thread between bytecodes, so "at once" means
after the C call in progress (loading an extension, say) returns.

Importing ``condensation`` as a library installs nothing: only this module's
:func:`main` and ``python -m condensation`` do.
"""

import os
import signal
import sys

SIGNALS = (signal.SIGINT, signal.SIGTERM)
PACKAGE = "condensation"

_action = None  # None: exit at once, saying nothing was written; else action(signum)


def exit_now(signum: int, note: str) -> None:
    """Print ``interrupted by NAME: note`` on stderr and end the process with
    128 + ``signum``, at once: no exception, no interpreter teardown."""
    line = f"interrupted by {signal.Signals(signum).name}: {note}\n"
    try:  # what the command printed (after it, the lines of a finished run) goes first
        if sys.stdout is not None:
            sys.stdout.flush()
    except Exception:  # noqa: BLE001 - a closed or re-entered stream: the line still goes
        pass
    try:
        os.write(2, line.encode("utf-8", "replace"))
    except OSError:  # no stderr: the exit status still tells
        pass
    os._exit(128 + signum)


def handler(signum: int, frame: object) -> None:
    """The process's SIGINT/SIGTERM handler: the current :func:`on_signal` action,
    else :func:`exit_now` with "nothing was written"."""
    action = _action
    if action is None:
        exit_now(signum, "nothing was written")
    action(signum)


def on_signal(action):
    """Set what a signal does from now on (``action(signum)``, or None for the
    start-up's :func:`exit_now`); returns the action it replaces."""
    global _action
    previous, _action = _action, action
    return previous


def installed() -> bool:
    """Whether :func:`handler` handles SIGINT (this process is the command)."""
    return signal.getsignal(signal.SIGINT) is handler


def install() -> None:
    """Make :func:`handler` the SIGINT and SIGTERM handler (main thread only)."""
    for sig in SIGNALS:
        signal.signal(sig, handler)


def started_by_python_m() -> bool:
    """True while ``python -m condensation`` imports the package: Python sets
    ``sys.argv[0]`` to ``"-m"`` while it locates the module, and the module's name
    is the entry of ``sys.orig_argv`` just before the command's own arguments."""
    argv = sys.argv
    orig = getattr(sys, "orig_argv", None)
    if not argv or argv[0] != "-m" or not orig or len(orig) < len(argv):
        return False
    name = orig[len(orig) - len(argv)]  # "condensation", or "-mcondensation" glued
    return name == PACKAGE or (name.startswith("-") and name.endswith("m" + PACKAGE))


def install_for_python_m() -> None:
    """Install the handler if this process is ``python -m condensation`` (called by
    the package's ``__init__`` before it imports anything heavy); else nothing."""
    if started_by_python_m():
        install()


def main() -> None:
    """The console script ``condensation``: install the handler, then import and run
    the command line."""
    install()
    from condensation.cli import main as cli_main

    cli_main()
