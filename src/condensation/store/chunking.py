"""Cutting a compiled loop's interval into chunks of bounded work, so that a signal
(Ctrl-C, SIGTERM) is handled within about a second, whatever the interval.
"""

from __future__ import annotations

from collections.abc import Iterator

# an interval of the compiled loop is cut into chunks of at most this much work
# (about a second of one core), so that a signal is handled within bounded time
CHUNK_FLOPS = 4e9


def chunks(start: int, stop: int, max_steps: int) -> Iterator[tuple[int, int]]:
    """``[start, stop)`` cut into consecutive pieces of at most ``max_steps`` steps."""
    a = int(start)
    while a < stop:
        b = min(int(stop), a + max(1, int(max_steps)))
        yield a, b
        a = b


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
