"""The compiled loop's chunks, sized by time (:class:`condensation.store.chunking.Pacer`):
they cover each interval exactly, grow to the target time, never shrink below the
first estimate, and never grow faster than :data:`GROWTH` a chunk."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from condensation.store.chunking import GROWTH, Pacer


class FakeClock:
    """A clock the caller advances by the seconds a piece of work takes."""

    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _drive(pacer: Pacer, clock: FakeClock, intervals, seconds_per_step, call_s=0.0):
    sizes = []
    for start, stop in intervals:
        pieces = []
        for a, b in pacer.pieces(start, stop):
            clock.now += call_s + (b - a) * seconds_per_step
            pieces.append((a, b))
        sizes.append(pieces)
    return sizes


@settings(max_examples=40, deadline=None)
@given(
    bounds=st.lists(st.integers(0, 5000), min_size=2, max_size=8, unique=True),
    first=st.integers(1, 50),
    step_s=st.floats(1e-5, 2.0),
)
def test_pieces_cover_every_interval_exactly(bounds, first, step_s):
    edges = sorted(bounds)
    clock = FakeClock()
    pacer = Pacer(first, target_s=0.5, clock=clock)
    for (start, stop), pieces in zip(
        zip(edges[:-1], edges[1:]), _drive(pacer, clock, zip(edges[:-1], edges[1:]), step_s)
    ):
        assert pieces[0][0] == start and pieces[-1][1] == stop
        assert all(a < b for a, b in pieces)
        assert all(p[1] == q[0] for p, q in zip(pieces[:-1], pieces[1:]))
        assert all(b - a >= 1 for a, b in pieces)


def test_chunks_grow_to_the_target_time_and_no_faster_than_growth():
    clock = FakeClock()
    pacer = Pacer(2, target_s=0.5, clock=clock)
    sizes = [b - a for p in _drive(pacer, clock, [(0, 100_000)], 1e-3, call_s=0.03) for a, b in p]
    assert sizes[0] == sizes[1] == 2  # the first piece (compiling) is not timed
    ratios = np.array(sizes[2:-1]) / np.array(sizes[1:-2])
    assert ratios.max() <= GROWTH
    # at 1 ms a step and 30 ms a call, a 0.5 s chunk is about 470 steps
    assert 400 <= sizes[-2] <= 500
    assert max(sizes) * 1e-3 + 0.03 < 2 * 0.5  # a signal waits at most about a chunk


def test_chunks_never_shrink_below_the_first_estimate():
    clock = FakeClock()
    pacer = Pacer(10, target_s=0.5, clock=clock)
    sizes = [b - a for p in _drive(pacer, clock, [(0, 200)], 3.0) for a, b in p]
    assert min(sizes) == 10 and sizes[:-1] == [10] * (len(sizes) - 1)
    assert pacer.steps == 10


def test_a_slower_machine_shrinks_the_chunks_back():
    clock = FakeClock()
    pacer = Pacer(1, target_s=0.5, clock=clock)
    _drive(pacer, clock, [(0, 20_000)], 1e-4)
    fast = pacer.steps
    _drive(pacer, clock, [(20_000, 40_000)], 1e-2)  # 100x slower from here
    assert pacer.steps < fast / 50 and abs(pacer.steps * 1e-2 - 0.5) < 0.1
