"""How big a run's output is, for every command in one place.

The snapshot plan of a network run (which snapshots are kept, and their bytes)
and the bytes a run directory of ``train``, ``effective`` and ``matrix`` takes,
checked against the free disk before any compute
(:func:`condensation.store.rundir.reserve`).  ``effective --compare-gd`` sizes its
training here as ``train`` does, without the train command's module.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from condensation.commands.prepare import Prepared, prepare_run
from condensation.config.network import Config
from condensation.core.snapshots import kept_indices, network_layer_bytes, stored_bytes
from condensation.store.rundir import FIGURE_BYTES
from condensation.training.network import snapshot_steps

if TYPE_CHECKING:
    from condensation import matrix as mx

MAX_SAVED_PRODUCTS = 4_000_000  # X(t) snapshots are saved when E*K*n1*n2 <= this


def snapshot_plan(cfg: Config, d_in: int, members: int, save: str | None = None):
    """The snapshots of a network run and what is kept of them.

    Args:
        cfg: the network config (``train.steps`` an integer).
        d_in: the input dimension of the data.
        members: the ensemble's size.
        save: which parameter snapshots to keep (default ``cfg.train.save``;
            :mod:`condensation.core.snapshots`).

    Returns:
        ``(snapshot steps, per-layer kept indices, stored bytes)``.
    """
    t = cfg.train
    steps = snapshot_steps(t.steps, t.snapshots, t.linear_snapshots)
    sizes = network_layer_bytes(d_in, cfg.model.widths, members, 8 if t.dtype == "float64" else 4)
    kept = kept_indices(t.save if save is None else save, len(steps), sizes)
    return steps, kept, stored_bytes(len(steps), sizes, kept)


def train_output_bytes(run: Prepared | Config) -> float:
    """About how many bytes a train run directory takes (uncompressed arrays, figures).

    Args:
        run: a prepared run (:func:`condensation.commands.prepare.prepare_run`); a
            config is prepared here.

    Returns:
        The estimate in bytes, the checkpoint written while the run runs included.
    """
    p = run if isinstance(run, Prepared) else prepare_run(run)
    cfg, data, ens = p.config, p.data, p.ensemble
    t = cfg.train
    steps, _, stored = snapshot_plan(cfg, data.d_in, ens.size)
    n_weights = sum(int(np.prod(np.shape(p)[1:])) for p in ens.params)
    itemsize = 8 if t.dtype == "float64" else 4
    # escape and plateau-exit states, per-snapshot numbers; the stored snapshots
    # twice: in the run directory and in its checkpoint while it runs
    records = ens.size * (2 * n_weights + 8 * len(steps)) * itemsize
    return 2 * (stored + records) + data.x.nbytes + FIGURE_BYTES


def effective_output_bytes(run: Prepared, *, compare_gd: bool = False) -> float:
    """About how many bytes an effective run directory takes.

    Args:
        run: the prepared run (:func:`condensation.commands.effective.prepare_effective`).
        compare_gd: the run also trains (its output sized as ``train``'s).

    Returns:
        A figure per member and one more, plus the training's output with ``compare_gd``.
    """
    figs = FIGURE_BYTES * (1 + len(run.config.member_seeds_scales))
    return figs + (train_output_bytes(run) if compare_gd else 0)


def matrix_output_bytes(cfg: mx.MatrixConfig, problem: mx.Problem) -> float:
    """About how many bytes a matrix run directory (and its checkpoint) takes.

    Args:
        cfg: the validated matrix config.
        problem: its loaded problem.

    Returns:
        The estimate in bytes.
    """
    from condensation import matrix as mx

    n1, n2 = problem.shape
    t = cfg.train
    k = len(snapshot_steps(t.steps, t.snapshots, t.linear_snapshots))
    e = len(cfg.member_seeds_scales)
    width = cfg.model.width if cfg.model.width is not None else max(n1, n2)
    factors = e * sum(a * b for a, b in mx.factor_shapes(n1, n2, cfg.model.depth, width))
    products = e * k * n1 * n2
    values = products + min(products, MAX_SAVED_PRODUCTS) + 3 * factors + 8 * n1 * n2
    return 8.0 * values + FIGURE_BYTES
