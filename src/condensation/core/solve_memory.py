"""How many states a fast-forward's second-order solve holds at once, and so its
bytes: pure functions of sizes, shared by the solve
(:class:`condensation.training.ff_flows.SecondOrderFlow`) and the memory check
run before compute (:mod:`condensation.config.memory`).

A query of the trajectory returns at most :func:`query_chunk` states (32; fewer
for a wide network, :data:`QUERY_FLOATS` numbers in all); Dopri8 holds its 14
stages and a few copies of the state; the forward-mode product of GD's modified
flow a few more; the flow keeps the latest query's states and older ones within
:data:`CACHE_FLOATS`.  Imports nothing of the package.
"""

from __future__ import annotations

CHUNK = 32  # times per state query: one compiled shape
QUERY_FLOATS = 1 << 25  # numbers of the states one query of a wide trajectory returns (256 MB)
CACHE_FLOATS = 1 << 23  # states a trajectory keeps besides its latest query (64 MB)
STATE_COPIES = 24  # Dopri8's 14 stages, the solver's and the controller's copies, the jvp


def query_chunk(floats: int) -> int:
    """States per query of a trajectory of ``floats`` numbers per state: ``CHUNK``,
    fewer (at least 4) where ``CHUNK`` states would exceed ``QUERY_FLOATS``.

    >>> query_chunk(1000), query_chunk(4_000_000), query_chunk(10**9)
    (32, 8, 4)
    """
    return int(max(4, min(CHUNK, QUERY_FLOATS // max(int(floats), 1))))


def solve_bytes(floats: int) -> float:
    """Bytes a second-order fast-forward holds at once for one member of ``floats``
    parameters (float64): a query's states three times (the solver's output, its
    host copy, the weights read off it), ``STATE_COPIES`` states inside the solve,
    the kept states.

    >>> round(solve_bytes(4_000_000) / 2**30, 2)  # a width-2000 three-layer network
    1.7
    """
    chunk = query_chunk(floats)
    cache = max(CACHE_FLOATS, (chunk + 1) * floats)
    return 8.0 * (3 * chunk * floats + STATE_COPIES * floats + cache)
