"""SIGINT and SIGTERM seen while the main thread is inside one long compiled call.

Python runs a signal handler in the main thread between bytecodes, so a handler
waits for the C call in progress: a second-order solve of a wide network, an
eigendecomposition, an XLA compilation.  The command line therefore *arms* this
module (:func:`arm`): the C-level handler of CPython then also writes the signal's
number into a pipe (``signal.set_wakeup_fd``), which a watcher thread reads at
once, whatever the main thread is doing.  Two things use it:

- :func:`pending`, polled from inside compiled loops (the fast-forward solve calls
  it once per solver step through ``jax.experimental.io_callback``): the loop
  stops at its next step, the call returns, and the handler raises in the main
  thread as usual, so the command unwinds and exits 130 / 143;
- a deadline: where the main thread has not ended the process ``grace`` seconds
  after the signal (it is inside a call that does not poll), ``on_overdue(signum)``
  is called from the watcher thread (the command line prints its one line and
  exits at once; a partial directory left then is cleaned by the next run of that
  output, which proves by its marker that this tool made it).

Not armed (a library caller, the tests' in-process calls), :func:`pending` is
always False and nothing else happens.  Standard library only.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable

WATCHED = (signal.SIGINT, signal.SIGTERM)
GRACE = 1.5  # seconds from a signal to the deadline (the acceptance asks for 2)

_lock = threading.Lock()
_seen = threading.Event()
_state: dict = {"pipe": None, "thread": None}
_deadline: dict = {"grace": None, "on_overdue": None}


def _watch(read_fd: int, stop: threading.Event) -> None:
    while True:
        try:
            data = os.read(read_fd, 64)
        except OSError:
            return
        if not data:  # the write end closed: disarmed
            return
        hits = [b for b in data if b in WATCHED]
        if not hits or _seen.is_set():
            continue
        _seen.set()
        grace, overdue = _deadline["grace"], _deadline["on_overdue"]
        if grace is not None and overdue is not None and not stop.wait(grace):
            overdue(hits[0])


def arm(on_overdue: Callable[[int], None] | None = None, grace: float | None = GRACE) -> bool:
    """Watch for SIGINT/SIGTERM from now on (main thread only; the Python handlers
    stay as they are).  ``on_overdue(signum)``: called ``grace`` seconds after a
    signal if the process still runs (None: no deadline).  Returns False, and arms
    nothing, off the main thread or where a wakeup fd is already set (an asyncio
    loop's)."""
    if threading.current_thread() is not threading.main_thread():
        return False
    with _lock:
        if _state["pipe"] is not None:
            return True
        r, w = os.pipe()
        os.set_blocking(w, False)
        try:
            previous = signal.set_wakeup_fd(w, warn_on_full_buffer=False)
        except (ValueError, OSError):
            os.close(r)
            os.close(w)
            return False
        if previous != -1:  # someone else's: give it back
            signal.set_wakeup_fd(previous)
            os.close(r)
            os.close(w)
            return False
        stop = threading.Event()
        _seen.clear()
        _deadline.update(grace=grace, on_overdue=on_overdue)
        thread = threading.Thread(target=_watch, args=(r, stop), name="signal-watch", daemon=True)
        _state.update(pipe=(r, w), thread=(thread, stop))
        thread.start()
        return True


def disarm() -> None:
    """Stop watching (the wakeup fd unset, the watcher ended, no deadline)."""
    with _lock:
        pipe = _state["pipe"]
        if pipe is None:
            return
        try:
            signal.set_wakeup_fd(-1)
        except ValueError:  # not the main thread: the interpreter is ending anyway
            pass
        thread, stop = _state["thread"]
        stop.set()
        os.close(pipe[1])  # the watcher reads EOF and returns
        thread.join(timeout=1.0)
        os.close(pipe[0])
        _state.update(pipe=None, thread=None)
        _deadline.update(grace=None, on_overdue=None)
        _seen.clear()


def pending() -> bool:
    """True once a watched signal has arrived while armed (cheap; any thread)."""
    return _seen.is_set()


def set_grace(grace: float | None) -> float | None:
    """Change the deadline's grace (None: no deadline, e.g. while worker processes
    must be shut down first); returns the previous value."""
    previous, _deadline["grace"] = _deadline["grace"], grace
    return previous
