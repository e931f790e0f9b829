"""Cutting a compiled loop's interval into chunks of bounded time, so that a signal
(Ctrl-C, SIGTERM) is handled within about a second, whatever the interval, while
each compiled call is long enough for its fixed cost not to matter.

A compiled call has a cost of its own besides its steps: XLA allocates the call's
temporary buffers and the kernel maps and zeroes their pages on first touch (at
hidden width 2000, about 35 ms a call against about 65 ms a step: a step per call
ran at 1.6x the steps' own time).  :class:`Pacer` sizes the chunks by the time the
previous ones took (:data:`TARGET_S` each), starting from an estimate from the
work of a step (:data:`CHUNK_FLOPS`), below which it never goes.  How an interval
is cut never changes a result: the loop is the same for any cut.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

# the first chunks hold at most this much work (a tenth of a second on a core of
# ~40 GFLOP/s), and no chunk holds less: a lower bound on the steps per call
CHUNK_FLOPS = 4e9
TARGET_S = 0.5  # the time a chunk is sized to, once the calls are timed
GROWTH = 4  # a chunk is at most this many times the one before


def chunk_steps(flops_per_step: float) -> int:
    """Steps per chunk: about :data:`CHUNK_FLOPS` of work, at least one step.

    Args:
        flops_per_step: the work of one step (floating-point operations).

    Returns:
        The number of steps of one chunk.

    >>> chunk_steps(1e6), chunk_steps(1e12)
    (4000, 1)
    """
    return max(1, int(CHUNK_FLOPS // max(flops_per_step, 1.0)))


class Pacer:
    """The chunks of a run's compiled loop, sized by the time the last ones took.

    Each piece that :meth:`pieces` yields is timed from the yield to the request
    for the next piece, so the caller must finish a piece's work (block on its
    result) before asking for the next.  The first piece of the pacer is not timed
    (it compiles); after it, each piece is ``rate * target_s`` steps, between
    ``steps`` (the estimate it starts from) and :data:`GROWTH` times the last.

    Args:
        steps: the first chunk's steps (:func:`chunk_steps`), and the least.
        target_s: the seconds a chunk is sized to.
        clock: seconds, monotonic (a test's fake clock).
    """

    def __init__(
        self,
        steps: int,
        target_s: float = TARGET_S,
        clock: Callable[[], float] = time.perf_counter,
    ):
        self.floor = max(1, int(steps))
        self.steps = self.floor
        self.target_s = float(target_s)
        self._clock = clock
        self._timed = False

    def pieces(self, start: int, stop: int) -> Iterator[tuple[int, int]]:
        """``[start, stop)`` cut into consecutive pieces of the current chunk size."""
        a = int(start)
        while a < stop:
            b = min(int(stop), a + self.steps)
            t0 = self._clock()
            yield a, b
            self._learn(b - a, self._clock() - t0)
            a = b

    def _learn(self, steps: int, seconds: float) -> None:
        if not self._timed:  # the first call compiles: its time says nothing
            self._timed = True
            return
        wanted = steps * self.target_s / max(seconds, 1e-9)
        self.steps = int(min(max(wanted, self.floor), GROWTH * self.steps))
