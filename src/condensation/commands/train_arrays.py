"""The ``arrays/`` of a train run: snapshots, kept states and data, within the
``[train] save`` policy's bound on what is written
(:func:`condensation.core.snapshots.written_plan`), and the summary's note on
what the bound left out."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from condensation.core.snapshots import ARRAYS_BUDGET_BYTES, written_plan
from condensation.store.rundir import save_arrays

if TYPE_CHECKING:
    from condensation.commands.train import TrainRun


def write_arrays(run: TrainRun, out: Path) -> list[str]:
    """Write ``snapshots.npz``, ``escape_params.npz``, ``plateau_exit_params.npz``
    and ``data.npz`` into ``out`` (``arrays/`` of a run directory).

    Args:
        run: the train run.
        out: the folder to write into (exists).

    Returns:
        One note per layer the bound thinned (empty when everything is written).
    """
    r = run.result
    plan = written_plan(
        run.config.train.save,
        [w.shape[1] for w in r.snapshots],
        [float(w[:, 0].nbytes) for w in r.snapshots],
    )
    save_arrays(
        out / "snapshots.npz",
        steps=r.snapshot_steps,
        times=r.snapshot_times,
        loss=r.snapshot_loss,
        **{f"W{k + 1}": w[:, pos] for k, (w, (pos, _)) in enumerate(zip(r.snapshots, plan))},
        **{f"W{k + 1}_steps": r.layer_steps(k)[pos] for k, (pos, _) in enumerate(plan)},
    )
    states = {f"W{k + 1}": keep for k, (_, keep) in enumerate(plan)}
    save_arrays(
        out / "escape_params.npz",
        escape_step=r.escape_step,
        **{f"W{k + 1}": w for k, w in enumerate(r.escape_params) if states[f"W{k + 1}"]},
    )
    save_arrays(
        out / "plateau_exit_params.npz",
        plateau_exit_step=r.plateau_exit_step,
        peak_median_abs_cos=r.peak_median_abs_cos,
        peak_median_abs_cos_step=r.peak_median_abs_cos_step,
        **{f"W{k + 1}": w for k, w in enumerate(r.plateau_exit_params) if states[f"W{k + 1}"]},
    )
    save_arrays(out / "data.npz", x=run.data.x, y=run.data.y, z=run.data.z)
    return [
        _note(k, w, pos, keep)
        for k, (w, (pos, keep)) in enumerate(zip(r.snapshots, plan))
        if not keep or len(pos) < w.shape[1]
    ]


def _note(k: int, stored: np.ndarray, pos: np.ndarray, states: bool) -> str:
    where = f"at {len(pos)} of its {stored.shape[1]} stored snapshots"
    if not states:
        where += ", not in escape_params.npz or plateau_exit_params.npz"
    return (
        f"arrays: W{k + 1} written {where}: a copy is {stored[:, 0].nbytes / 1e6:.0f} MB and "
        f'train.save = "bounded" writes at most {ARRAYS_BUDGET_BYTES / 1e6:.0f} MB of weights '
        f'(its numbers in this summary use every stored snapshot); train.save = "full" '
        "writes them all"
    )
