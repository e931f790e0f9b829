"""The stages of a run (THEORY §10): its loss curve split into plateaus and drops by
:func:`condensation.core.staircase.segment_stages`, and per stage what was learned.

- ``train``: the direction learned is the top right singular vector of the change
  of the first layer ``W1`` over the drop (an input direction; its ``|cos|`` with
  the target direction ``z`` is reported), with the share of that change it holds,
  and the number of condensed directions (clusters of ``W1``'s rows) at the end.
- ``matrix``: the change of the product ``X`` over the drop, its top singular
  pair's share, the singular pair of ``M`` it lies along (``mode``, 1-based, with
  the overlap ``|u1.u_k| |v1.v_k|``), and the effective rank at the end.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from condensation.core.metrics import cluster_counts
from condensation.core.staircase import segment_stages

if TYPE_CHECKING:
    from condensation.commands.matrix import MatrixRun
    from condensation.commands.train import TrainRun

MAX_DIRECTION = 64  # an input direction is listed in summary.json up to this dimension


def _nearest(times: np.ndarray, t: float) -> int:
    return int(np.argmin(np.abs(np.asarray(times) - t)))


def _top_change(delta: np.ndarray) -> tuple[np.ndarray, float, np.ndarray, float]:
    """``(u1, share, v1, s1)`` of a change: its top singular pair, ``s1^2 / |delta|_F^2``
    (1: a rank-one change), the sign fixed so the largest entry of ``v1`` is positive."""
    u, s, vt = np.linalg.svd(delta, full_matrices=False)
    total = float(np.sum(s**2))
    sign = 1.0 if vt[0][np.argmax(np.abs(vt[0]))] >= 0 else -1.0
    share = float(s[0] ** 2 / total) if total > 0 else float("nan")
    return sign * u[:, 0], share, sign * vt[0], float(s[0])


def _drop_changes(stages: list[dict], times: np.ndarray, states: np.ndarray):
    """Per stage: ``(stage, index of the state nearest the drop's end, the top change
    of the state over the drop (:func:`_top_change`), or None where it is zero)``."""
    for st in stages:
        a, b = _nearest(times, st["drop_start_t"]), _nearest(times, st["drop_end_t"])
        delta = np.asarray(states[b] - states[a], dtype=float)
        yield st, b, None if a == b or not np.any(delta) else _top_change(delta)


def train_stages(run: TrainRun, i: int) -> list[dict]:
    """Member ``i``'s stages (see the module doc); empty without a drop."""
    r = run.result
    stages = segment_stages(r.snapshot_times, r.snapshot_loss[i])
    w1 = r.snapshots[0][i]  # (K1, m1, d)
    w1_t = r.layer_steps(0) * r.lr
    z = np.asarray(run.data.z, dtype=float)
    zn = z / np.linalg.norm(z) if np.linalg.norm(z) > 0 else None
    for st, b, top in _drop_changes(stages, w1_t, w1):
        if top is None:
            st.update(direction=None, direction_share=None, direction_abs_cos_z=None)
        else:
            _, share, v, _ = top
            st.update(
                direction=[round(float(c), 6) for c in v] if v.size <= MAX_DIRECTION else None,
                direction_share=share,
                direction_abs_cos_z=float(abs(v @ zn)) if zn is not None else None,
            )
        st["n_clusters_end"] = int(cluster_counts(w1[b][None])[0])
    return stages


def matrix_stages(run: MatrixRun, i: int) -> list[dict]:
    """Member ``i``'s stages (see the module doc); empty without a drop."""
    r = run.result
    t = r.snapshot_times
    stages = segment_stages(t, r.series["loss"][i])
    um, _, vmt = np.linalg.svd(run.problem.m, full_matrices=False)
    x = r.series["x"][i]
    for st, b, top in _drop_changes(stages, t, x):
        if top is None:
            st.update(direction_share=None, mode=None, mode_overlap=None)
        else:
            u1, share, v1, _ = top
            overlap = np.abs(um.T @ u1) * np.abs(vmt @ v1)
            k = int(np.argmax(overlap))
            st.update(direction_share=share, mode=k + 1, mode_overlap=float(overlap[k]))
        st["effective_rank_end"] = float(r.series["effective_rank"][i, b])
    return stages


def no_stage_notes(members: list[dict]) -> list[str]:
    """One line per member summary whose loss curve has no stage (``n_stages`` 0),
    saying so and why that can be: nothing about a staircase is silent."""
    return [
        f"member {i}: no stage found: its loss never fell in a drop "
        "(condensation.core.staircase.segment_stages); the run may end on its first "
        "plateau (raise train.steps) or have nothing left to learn"
        for i, m in enumerate(members)
        if m.get("n_stages") == 0
    ]


def shade_stages(ax, t: np.ndarray, loss: np.ndarray) -> int:
    """Shade the drops of one loss curve on a figure's axis (grey bands, numbered
    at the top); returns the number of stages."""
    stages = segment_stages(t, loss)
    for j, st in enumerate(stages):
        ax.axvspan(st["drop_start_t"], st["drop_end_t"], color="0.6", alpha=0.25, lw=0)
        ax.annotate(
            f"{j + 1}",
            (0.5 * (st["drop_start_t"] + st["drop_end_t"]), 0.97),
            xycoords=("data", "axes fraction"),
            ha="center",
            va="top",
            fontsize=9,
        )
    return len(stages)
