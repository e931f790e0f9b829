"""Fast-forward's plan: where on each member's effective trajectory GD takes over
(:func:`grid_handoff`, :func:`flow_handoff`: the first step of the GD grid at which
a predicate holds, bracketed then narrowed chunk by chunk), and what the run keeps
from before it (:func:`build_plan`: the snapshots, their loss and measures, the
peak alignment and the final-stage entry, read off the trajectory).  See
:mod:`condensation.training.fastforward`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from condensation.core.final_stage import holds_with_witnesses
from condensation.effective.blowup import Blowup
from condensation.training.ff_flows import Trajectory
from condensation.training.network import Handoff

PLAIN = "plain"
FAST_FORWARD = "fast-forward"


@dataclass(frozen=True)
class MemberPlan:
    """One member's hand-off: where GD starts and why (``mode`` plain or fast-forward)."""

    mode: str
    reason: str | None  # why plain GD; None when fast-forwarded
    handoff_step: int  # 0 for plain GD
    handoff_time: float
    error_estimate: float | None  # err(theta) at the hand-off (None: plain)
    effective_evaluations: int  # vector-field (or GD-map) evaluations of the effective dynamics
    t_star: float | None  # the effective blow-up time (depth >= 3), None otherwise

    def summary(self, steps: int, escape_step: int | None) -> dict:
        """The member's ``fast_forward`` summary entry."""
        gd = steps - self.handoff_step
        return {
            "mode": self.mode,
            "reason": self.reason,
            "handoff_step": self.handoff_step,
            "handoff_time": self.handoff_time,
            "handoff_error_estimate": self.error_estimate,
            "gradient_evaluations": gd,
            "gradient_evaluations_to_escape": (
                None if escape_step is None else max(escape_step - self.handoff_step, 0)
            ),
            "effective_evaluations": self.effective_evaluations,
            "effective_t_star": self.t_star,
        }


@dataclass(frozen=True)
class Plan:
    """The hand-offs of an ensemble and the GD
    :class:`~condensation.training.network.Handoff`."""

    delta: float
    members: list[MemberPlan]
    handoff: Handoff = field(repr=False)

    @property
    def notes(self) -> list[str]:
        """One line per member that runs plain GD, saying why."""
        return [
            f"member {i}: fast-forward not used, plain GD ({m.reason})"
            for i, m in enumerate(self.members)
            if m.mode == PLAIN
        ]


def plain_gd_member(reason: str, t_star: float | None = None, evals: int = 0) -> MemberPlan:
    return MemberPlan(PLAIN, reason, 0, 0.0, None, evals, t_star)



def grid_handoff(traj: Trajectory, pred, lo: int, hi: int, steps: int):
    """``(k_h, state)``: the first grid step in ``(lo, hi]`` where ``pred`` holds (it
    fails at ``lo``, holds at ``hi``), capped at the horizon ``steps`` (then the
    whole run is on the plateau and GD computes nothing)."""
    if hi > steps and (lo >= steps or not pred(traj.at(np.array([steps])))[0]):
        return steps, [w[0] for w in traj.at(np.array([steps]))]
    return first_true(traj, pred, lo, min(hi, steps))


def flow_handoff(traj: Trajectory, sol: Blowup, pred, lr: float, steps: int):
    """:func:`grid_handoff` of a blow-up solve, bracketed first on the solver's own
    steps (dense near T*; :func:`first_candidate`), then on the step grid."""
    ks = np.unique(np.floor(sol.steps["t"][1:-1] / lr).astype(np.int64))
    ks = ks[(ks > 0) & (ks <= steps)]
    lo, hi = first_candidate(traj, pred, ks)
    if hi is None:  # not reached on the solver's steps (or the horizon): up to just before T*
        hi = max(int(math.floor(sol.T_star / lr)), lo + 1)
    return grid_handoff(traj, pred, lo, hi, steps)


def first_candidate(traj: Trajectory, pred, ks: np.ndarray) -> tuple[int, int | None]:
    """``(lo, hi)``: the first of the sorted steps ``ks`` at which the monotone
    ``pred`` holds (``hi``; None where none does) and the one before it (``lo``; 0
    for the first).  Each query takes ``traj.chunk`` of the candidates left, spread
    evenly over them, and keeps those between the last that fails and the first
    that holds: about ``log(len(ks)) / log(chunk)`` queries, each integrating only
    from the bracket's start, where a scan would evaluate ``pred`` at every step."""
    lo, hi = 0, None
    ks = np.asarray(ks, dtype=np.int64)
    while ks.size:
        if ks.size <= traj.chunk:
            pick = ks
        else:
            pick = ks[np.unique(np.linspace(0, ks.size - 1, traj.chunk).round().astype(np.int64))]
        ok = pred(traj.at(pick))
        if not ok.any():
            lo = int(pick[-1])
            ks = ks[ks > lo] if hi is not None else ks[:0]
            continue
        j = int(np.argmax(ok))
        hi = int(pick[j])
        lo = int(pick[j - 1]) if j > 0 else lo
        ks = ks[(ks > lo) & (ks < hi)]
    return lo, hi


def first_true(traj: Trajectory, pred, lo: int, hi: int) -> tuple[int, list[np.ndarray]]:
    """The first step in ``(lo, hi]`` at which ``pred`` holds, given that it fails at
    ``lo`` and holds at ``hi`` (a monotone predicate on W_k (T, ...) -> (T,) bool),
    and the state there; narrowed ``traj.chunk``-fold per query."""
    state = None
    while hi - lo > 1:
        ks = np.unique(np.linspace(lo, hi, traj.chunk + 1).round().astype(np.int64)[1:])
        ws = traj.at(ks)
        ok = pred(ws)
        j = int(np.argmax(ok)) if ok.any() else len(ks) - 1  # ks[-1] = hi holds
        lo, hi = (int(ks[j - 1]) if j > 0 else lo), int(ks[j])
        state = [w[j : j + 1] for w in ws]
    if state is None:
        state = traj.at(np.array([hi]))
    return hi, [w[0] for w in state]


class SnapshotReader:
    """What a run keeps of one member's effective trajectory at its snapshot steps:
    of each layer the states ``keep`` names (per layer: snapshot indices, or None for
    all; :mod:`condensation.core.snapshots`), and at every snapshot the loss, the
    run's measures (``measure(ws) -> {name: (T, ...)}``), the alignment ``peak(ws)``
    and the final-stage condition ``holds(ws)`` (until it first holds).  Shown
    states as a trajectory passes the steps (:meth:`see`, the watch of
    :class:`condensation.training.ff_flows.SecondOrderFlow`), so memory stays that
    of a few states whatever the width and the snapshot count; where ``holds``
    first holds, the state at the snapshot before is pinned in the trajectory, for
    the search of the entry step between the two."""

    def __init__(self, snapshots, keep, *, loss, measure=None, peak=None, holds=None):
        self.steps = np.asarray(snapshots, dtype=np.int64)
        self.keep, self.loss, self.measure = keep, loss, measure
        self.peak, self.holds = peak, holds
        self.rows: dict[int, dict] = {}  # snapshot index -> what is kept there
        self.first_hold: int | None = None  # snapshot index where holds first held
        self.traj = None  # the trajectory to pin a state in
        self._prev = None  # (step, state) of the last snapshot seen

    def unseen(self, k0: int, k1: int) -> np.ndarray:
        """The snapshot steps in ``(k0, k1]`` not seen yet."""
        lo, hi = np.searchsorted(self.steps, [k0, k1], side="right")
        idx = [i for i in range(int(lo), int(hi)) if i not in self.rows]
        return self.steps[idx]

    def see(self, ks, ws) -> None:
        """Take the states ``ws`` (W_k (T, ...)) at the snapshot steps ``ks`` (sorted)."""
        ks = np.asarray(ks, dtype=np.int64)
        idx = np.searchsorted(self.steps, ks)
        losses = self.loss(ws)
        measured = {} if self.measure is None else self.measure(ws)
        cos = None if self.peak is None else self.peak(ws)
        hold = None  # until it first holds (a step read late, before that, too)
        if self.holds is not None and (self.first_hold is None or idx[0] < self.first_hold):
            hold = self.holds(ws)
        for t, i in enumerate(idx):
            layers = {
                k: w[t]
                for k, w in enumerate(ws)
                if self.keep[k] is None or int(i) in self.keep[k]
            }
            row = {"layers": layers, "loss": losses[t], "cos": None if cos is None else cos[t]}
            row["measures"] = {name: v[t] for name, v in measured.items()}
            row["holds"] = None if hold is None else bool(hold[t])
            self.rows[int(i)] = row
        if hold is not None and hold.any() and (
            self.first_hold is None or idx[int(np.argmax(hold))] < self.first_hold
        ):
            j = int(np.argmax(hold))
            self.first_hold = int(idx[j])
            before = (ks[j - 1], [w[j - 1] for w in ws]) if j > 0 else self._prev
            if before is not None and self.traj is not None and hasattr(self.traj, "remember"):
                self.traj.remember(int(before[0]), before[1])
        self._prev = (int(ks[-1]), [w[-1] for w in ws])

    def read(self, traj, before: np.ndarray) -> None:
        """Read the snapshot steps ``before`` not seen yet off ``traj``."""
        missing = before[[int(i) not in self.rows for i in range(before.size)]]
        for c in range(0, missing.size, traj.chunk):
            ks = missing[c : c + traj.chunk]
            self.see(ks, traj.at(ks))


def build_plan(
    members,
    trajs,
    states,
    params0,
    snapshots,
    delta,
    *,
    loss,
    peak=None,
    holds=None,
    keep=None,
    measure=None,
    readers=None,
):
    """The :class:`Plan` of per-member hand-offs: start states, pre-hand-off snapshots,
    and, read off the effective trajectory before the hand-off, the peak of
    ``peak(ws) -> (T,)`` at the snapshots and the first grid step where
    ``holds(ws) -> (T,) bool`` (the final-stage condition); ``loss(ws) -> (T,)``
    gives the snapshots' losses.  ``keep`` and ``measure``: see
    :class:`SnapshotReader`; ``readers`` (per member, or None): readers already
    shown the trajectory during the hand-off search (the steps they have not seen
    are read now)."""
    depth, e = len(params0), int(params0[0].shape[0])
    kept = [None] * depth if keep is None else [None if i is None else np.asarray(i) for i in keep]
    k_h = np.array([m.handoff_step for m in members], dtype=np.int64)
    start = [p.copy() for p in params0]
    n_snap = len(snapshots)
    sizes = [n_snap if i is None else len(i) for i in kept]
    snaps = [np.repeat(p[:, None], c, axis=1) for p, c in zip(params0, sizes)]
    snap_loss = np.repeat(loss([p for p in params0])[:, None], n_snap, axis=1)
    measures = None
    if measure is not None:
        m0 = {name: np.asarray(v) for name, v in measure(list(params0)).items()}
        measures = {name: np.repeat(v[:, None], n_snap, axis=1) for name, v in m0.items()}
    fs = np.full(e, -1, dtype=np.int64)
    best, best_step = np.full(e, -1.0), np.full(e, -1, dtype=np.int64)
    out = []
    for i, (m, traj, state) in enumerate(zip(members, trajs, states)):
        if traj is None:
            out.append(m)
            continue
        for k in range(depth):
            start[k][i] = state[k]
        before = snapshots[snapshots < m.handoff_step]  # the first before.size indices
        reader = None if readers is None else readers[i]
        if reader is None:
            reader = SnapshotReader(
                snapshots, kept, loss=loss, measure=measure, peak=peak, holds=holds
            )
        reader.read(traj, before)
        inside = np.zeros(before.size, bool)
        for j in range(before.size):
            row = reader.rows[j]
            for k, w in row["layers"].items():
                pos = j if kept[k] is None else int(np.searchsorted(kept[k], j))
                snaps[k][i, pos] = w
            snap_loss[i, j] = row["loss"]
            for name, v in row["measures"].items():
                measures[name][i, j] = v
            if row["cos"] is not None and row["cos"] > best[i]:
                best[i], best_step[i] = float(row["cos"]), int(before[j])
            inside[j] = bool(row["holds"])
        if holds is not None and before.size:
            fs[i] = _final_stage_entry(traj, inside, before, m.handoff_step, holds)
        out.append(
            MemberPlan(
                m.mode,
                m.reason,
                m.handoff_step,
                m.handoff_time,
                m.error_estimate,
                traj.evaluations,
                m.t_star,
            )
        )
    index = None if keep is None else tuple(kept)
    handoff = Handoff(k_h, tuple(start), snaps, fs, best, best_step, snap_loss, index, measures)
    return Plan(delta, out, handoff)


class FinalStageCheck:
    """The final-stage condition (:func:`condensation.core.final_stage.final_stage_holds`)
    at states W_k (T, ...) of a depth-3 trajectory: (T,) bool.  State by state, with
    the witnesses of the last Gram matrix tried first
    (:func:`condensation.core.final_stage.holds_with_witnesses`): the same verdicts,
    with a Gram matrix (``m1^2 m2``) only where no witness still disproves the angle
    constraint, not one per state."""

    def __init__(self, z):
        self.z, self.pairs = np.asarray(z), None

    def __call__(self, ws) -> np.ndarray:
        b, w, a = ws
        out = np.zeros(b.shape[0], bool)
        for t in range(b.shape[0]):
            out[t], self.pairs = holds_with_witnesses(a[t, 0], w[t], b[t] @ self.z, self.pairs)
        return out


def _final_stage_entry(traj, inside, before, k_h: int, holds) -> int:
    """First grid step before ``k_h`` in the final-stage set (-1: not before ``k_h``),
    given ``inside``, the condition at the snapshot steps ``before``; bracketed by
    those steps, then narrowed on the grid."""
    end = holds(traj.at(np.array([k_h - 1])))[0] if k_h > 0 else False
    if not (inside.any() or end):
        return -1
    if inside.any():
        j = int(np.argmax(inside))
        if j == 0:
            return int(before[0])
        lo, hi = int(before[j - 1]), int(before[j])
    else:
        lo, hi = int(before[-1]), k_h - 1
    k, _ = first_true(traj, holds, lo, hi)
    return k
