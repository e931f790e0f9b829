"""``condensation train``: GD over an ensemble, condensation measurements, figures.

load -> prepare once (:mod:`condensation.commands.prepare`) -> :func:`run_training`
-> :func:`write_train_run`; the summary's numbers are in
:mod:`condensation.commands.train_summary`, the figures in
:mod:`condensation.commands.train_figures`, the output's size in
:mod:`condensation.commands.sizing`.  :data:`COMMAND` is the command's entry in
the registry (:mod:`condensation.commands.registry`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from condensation.commands.prepare import (  # noqa: F401 (re-exported: their old home)
    NO_DRIVE_RTOL,
    Prepared,
    check_drive,
    has_drive,
    load_checked_data,
    optimizer_of,
    prepare,
    prepare_run,
    resolve_steps,
)
from condensation.commands.registry import Command
from condensation.commands.sizing import snapshot_plan
from condensation.commands.sizing import train_output_bytes as output_bytes
from condensation.commands.train_arrays import write_arrays
from condensation.commands.train_figures import plot_train_run, snapshot_positions
from condensation.commands.train_summary import (  # noqa: F401 (re-exported: their old home)
    member_status,
    member_summaries,
    never_moved,
    optimizer_summary,
    plateau_numbers,
    summary,
)
from condensation.config import checks as inputs
from condensation.config.network import AUTO, Config
from condensation.core.metrics import alignment_metrics, cluster_counts, layer_norms, sigma_ratios
from condensation.data import Dataset
from condensation.effective.theory import format_time
from condensation.models import Ensemble, NetworkSpec, member_label
from condensation.progress import forward_only
from condensation.store.checkpoint import Checkpoint, run_key
from condensation.store.rundir import save_arrays, write_json, write_toml
from condensation.training.network import TrainResult, train

if TYPE_CHECKING:
    from condensation.training import fastforward

__all__ = [
    "COMMAND",
    "CLUSTER_BUDGET",
    "NO_DRIVE_RTOL",
    "Prepared",
    "TrainRun",
    "check_drive",
    "has_drive",
    "horizon_notes",
    "load_checked_data",
    "measure_snapshot",
    "member_status",
    "member_summaries",
    "never_moved",
    "optimizer_of",
    "optimizer_summary",
    "output_bytes",
    "plateau_numbers",
    "plot_train_run",
    "prepare",
    "prepare_run",
    "resolve_steps",
    "run_metrics",
    "run_training",
    "snapshot_plan",
    "summary",
    "with_output_scale",
    "write_train_run",
]


@dataclass(frozen=True)
class TrainRun:
    """A finished train run: what it ran on and what it gave.

    Attributes:
        config: the config (``train.steps`` resolved).
        data: the data set.
        spec: the network spec.
        ensemble: the initial ensemble.
        result: the training's result (in the time of ``f = kappa g``).
        plan: the fast-forward hand-offs, when ``train.fast_forward``.
        notes: one-line notes for the user (plain-GD members, horizon, ``"auto"``).
        steps_auto: ``train.steps`` was ``"auto"``.
    """

    config: Config
    data: Dataset
    spec: NetworkSpec
    ensemble: Ensemble
    result: TrainResult
    plan: fastforward.Plan | None = None  # the hand-offs, when train.fast_forward
    notes: tuple[str, ...] = ()  # one-line notes for the user (plain-GD members, horizon)
    steps_auto: bool = False  # train.steps was "auto" (config.train.steps is the result)


def horizon_notes(cfg: Config, data: Dataset, spec: NetworkSpec, ens: Ensemble, r, plan) -> list:
    """One line per member that did not escape within an explicit horizon shorter
    than its predicted T* (the effective blow-up time), naming both.

    Args:
        cfg: the run's config.
        data: its data set.
        spec: its network spec.
        ens: its initial ensemble.
        r: the training's result (in the time of ``g``).
        plan: the fast-forward plan, or None.

    Returns:
        The warning lines (empty when every member escaped or none can be predicted).
    """
    horizon = cfg.train.steps * cfg.train.lr
    missing = np.flatnonzero((r.escape_step < 0) & (r.diverged_step < 0))
    if missing.size == 0 or spec.depth < 3 or spec.activation.why_not_effective() is not None:
        return []
    # depth 3, no solve needed: T* >= sqrt(3) / (|z| sqrt(rho_0)) (THEORY §4)
    if not has_drive(data):  # no T* to predict (run_training refuses such data)
        return []
    kappa = cfg.model.output_scale
    z = data.z * kappa  # the field of f = kappa g is kappa times g's
    from condensation.effective import predictions as pred  # diffrax: imported when needed

    lower = pred.t_star_lower_bound(ens.params, z, spec.activation)
    logs: list = [None] * ens.size  # log10 T*, where T* itself overflows float64
    if plan is not None and all(m.t_star is None or math.isfinite(m.t_star) for m in plan.members):
        # solved already, in the time of g (t kappa^2)
        t_stars = [None if m.t_star is None else m.t_star / kappa**2 for m in plan.members]
        what = "T* = {}"
    elif lower is not None and all(horizon < lower[i] for i in missing):
        # no solve needed (a deep network at a tiny init: T* >= 10^300 in microseconds)
        t_stars = list(lower)
        logs = list(pred.log10_t_star_lower_bound(ens.params, z, spec.activation))
        what = (
            "T* >= {} (THEORY §4 lower bound)"
            if spec.depth == 3
            else "T* >= {} (lower bound: |theta| grows at most like |z| L^(1-L/2) |theta|^(L-1))"
        )
    else:
        # a note, not a result: the spectral form (depth 3) costs one eigendecomposition
        form = pred.spectral_form(spec.depth)
        predictions = pred.t_star_predictions(ens.params, z, spec.activation, form)
        t_stars = [None if p is None else p[0] for p in predictions]
        logs = [None if p is None else p[1] for p in predictions]
        what = "T* = {}"
    out = []
    for i in missing:
        t = t_stars[i]
        if t is not None and horizon < t:
            need = t / cfg.train.lr  # steps (a float: inf or huge where T* is)
            fix = (
                f'raise train.steps above {math.ceil(need)} or use "auto"'
                if need < inputs.MAX_STEPS
                else f"no train.steps within the limit {inputs.MAX_STEPS:.0e} reaches it at "
                f"lr = {cfg.train.lr:g}: raise the init scale or train.lr"
            )
            who = member_label(ens.seeds[i], ens.scales[i], i, cfg.init.path)
            out.append(
                f"warning: member {i} ({who}): the horizon "
                f"t = {horizon:.6g} (train.steps = {cfg.train.steps}) ends before its predicted "
                f"{what.format(format_time(t, logs[i]))}; {fix}"
            )
    return out


# save = "bounded": n_clusters (complete linkage, O(m1^2) each, about 0.1 s at m1 = 1000)
# at most at CLUSTER_BUDGET / (E m1^2) snapshots, evenly spread: every snapshot for
# small networks, about 20 for one member of width 1000
CLUSTER_BUDGET = 2e7


def measure_snapshot(params: list[np.ndarray], z: np.ndarray) -> dict[str, np.ndarray]:
    """What is recorded at every snapshot whatever is stored: the first layer's
    alignment with z and every layer's Frobenius norm, (E,) and (E, L).

    Args:
        params: per layer, (E, ...) parameters.
        z: the data's ``z = mean(y x)``.

    Returns:
        The measures by name.
    """
    return {**alignment_metrics(params[0], z), "layer_norms": layer_norms(params)}


def run_training(
    cfg: Config | Prepared,
    progress: Callable[[int], None] | None = None,
    checkpoint: Checkpoint | None = None,
    save: str | None = None,
) -> TrainRun:
    """Train a config's ensemble (fast-forwarded when ``train.fast_forward``).

    Args:
        cfg: a config, prepared here (:func:`prepare_run`: ``train.steps = "auto"``
            resolved), or a run a caller prepared already, trained from its very
            data and ensemble.
        progress: called with the number of steps done.
        checkpoint: where the training checkpoints (and resumes from).
        save: which parameter snapshots to keep (default ``cfg.train.save``);
            callers that need every snapshot pass ``"full"``.

    Returns:
        The :class:`TrainRun`.
    """
    p = cfg if isinstance(cfg, Prepared) else prepare_run(cfg)
    if p.config.train.steps == AUTO:
        raise ValueError("run_training needs a run prepared to train (prepare_run(cfg))")
    cfg, data, spec, ens = p.config, p.data, p.spec, p.ensemble
    notes, steps_auto = p.notes, p.steps_auto
    t = cfg.train
    opt = optimizer_of(cfg, data)
    kappa = cfg.model.output_scale
    snaps, kept, _ = snapshot_plan(cfg, data.d_in, ens.size, save)
    plan = None
    if t.fast_forward:
        progress = None if progress is None else forward_only(progress)  # plan, then GD
        from condensation.training import fastforward as ff  # diffrax: imported when needed

        plan = ff.plan(
            ens.params,
            data.x,
            data.y / kappa,
            activation=spec.activation,
            lr=t.lr * kappa**2,
            steps=t.steps,
            snapshots=snaps,
            delta=t.handoff,
            plateau_drop=t.plateau_drop,
            keep=kept,
            measure=partial(measure_snapshot, z=data.z),
            progress=progress,
        )
        notes = (*notes, *plan.notes)
    result = train(
        ens.params,
        data.x,
        data.y / kappa,  # output scale kappa: see with_output_scale
        act=spec.activation.fn,
        lr=t.lr * kappa**2,
        steps=t.steps,
        snapshots=snaps,
        dtype=t.dtype,
        plateau_drop=t.plateau_drop,
        progress=progress,
        checkpoint=checkpoint,
        optimizer=opt,
        streams=[s or 0 for s in ens.seeds],  # each init seed its own mini-batch order
        handoff=None if plan is None else plan.handoff,
        keep=kept,
        measure=partial(measure_snapshot, z=data.z),
    )
    if not steps_auto and opt.name == "gd":
        notes = (*notes, *horizon_notes(cfg, data, spec, ens, result, plan))
    result = with_output_scale(result, t.lr, kappa)
    return TrainRun(cfg, data, spec, ens, result, plan, tuple(notes), steps_auto)


def with_output_scale(result: TrainResult, lr: float, kappa: float) -> TrainResult:
    """The run of ``f = kappa g`` from the run of ``g`` on targets ``y / kappa`` at
    ``lr kappa^2``: ``R_kappa(theta) = kappa^2 R_1(theta; y / kappa)``, so their
    gradient steps are the same steps exactly; only the loss (times ``kappa^2``) and
    the time ``t = step * lr`` differ.  ``kappa = 1`` returns ``result`` unchanged.

    Args:
        result: the run of ``g``.
        lr: the configured learning rate.
        kappa: the output scale.

    Returns:
        The run of ``f``.
    """
    if kappa == 1.0:
        return result
    return dataclasses.replace(result, lr=float(lr), snapshot_loss=result.snapshot_loss * kappa**2)


def write_train_run(run: TrainRun, out: Path) -> dict:
    """Write config, arrays, summary.json and figures into ``out``.

    Args:
        run: the train run.
        out: the directory to write into (exists, empty).

    Returns:
        The summary, as written to ``summary.json``.
    """
    r = run.result
    write_toml(out / "config.toml", run.config.to_dict())
    (out / "arrays").mkdir()
    thinned = write_arrays(run, out / "arrays")
    met = run_metrics(r, run.config.train.save)
    save_arrays(out / "arrays" / "metrics.npz", times=r.snapshot_times, **met)
    s = summary(run)
    s["notes"] = [*s["notes"], *thinned]
    write_json(out / "summary.json", s)
    (out / "figures").mkdir()
    plot_train_run(run, met, out / "figures")
    return s


def run_metrics(r: TrainResult, save: str) -> dict[str, np.ndarray]:
    """The per-snapshot metrics of ``arrays/metrics.npz`` (E, K): the alignment and
    layer norms recorded at every snapshot; ``w_sigma_ratio`` (depth >= 3) at every
    snapshot where W2 is stored, ``n_clusters`` where W1 is (under ``save = "bounded"``
    at most ``CLUSTER_BUDGET / (E m1^2)`` of them, evenly spread); NaN elsewhere.

    Args:
        r: the training's result.
        save: the run's ``train.save``.

    Returns:
        The metrics by name, each (E, K) ((E, K, L) for ``layer_norms``).
    """
    e, k = r.snapshot_loss.shape
    out = {name: r.measures[name] for name in ("median_abs_cos", "frac_abs_cos_above_0_95")}
    out["layer_norms"] = r.measures["layer_norms"]
    pos = snapshot_positions(r, 0)
    stored = np.flatnonzero(pos >= 0)
    most = max(2, int(CLUSTER_BUDGET // (e * r.snapshots[0].shape[-2] ** 2)))
    if save != "full" and stored.size > most:
        pick = np.round(np.linspace(0, stored.size - 1, most)).astype(np.int64)
        stored = stored[np.unique(pick)]
    out["n_clusters"] = np.full((e, k), np.nan)
    out["n_clusters"][:, stored] = cluster_counts(r.snapshots[0][:, pos[stored]])
    if len(r.snapshots) >= 3:
        pos = snapshot_positions(r, 1)
        out["w_sigma_ratio"] = np.full((e, k), np.nan)
        out["w_sigma_ratio"][:, pos >= 0] = sigma_ratios(r.snapshots[1])
    return out


# ---- the command: load -> prepare once -> run -> write -------------------------------
def load(path: Path | None, overrides: Sequence[str] = ()) -> Config:
    """The validated network config of ``condensation train``.

    Args:
        path: a TOML config (None: the built-in defaults).
        overrides: ``section.key=value`` strings (``--set``).

    Returns:
        The :class:`condensation.config.network.Config`.
    """
    from condensation.config.network import load_config

    return load_config(path, list(overrides))


def _key(prep: Prepared, options: Mapping) -> str:
    return run_key("train", prep.config.to_dict())


COMMAND = Command(
    name="train",
    load=load,
    prepare=lambda cfg, options: prepare_run(cfg),
    run=lambda prep, options, progress, checkpoint: run_training(
        prep, progress=progress, checkpoint=checkpoint
    ),
    write=write_train_run,
    key=_key,
    output_bytes=lambda prep, options: output_bytes(prep),
)
