"""``condensation train``: GD over an ensemble, condensation measurements, figures."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import jax
import numpy as np

from condensation.config import checks as inputs
from condensation.config.network import AUTO, Config, scale_field
from condensation.core.final_stage import final_stage_counts
from condensation.core.metrics import (
    abs_cos_to,
    alignment_metrics,
    cluster_counts,
    condensation_metrics,
    layer_norms,
    sigma_ratios,
    top_direction_alignment,
)
from condensation.core.regime import rd_over_snapshots
from condensation.data import Dataset, load_dataset
from condensation.effective.theory import format_time
from condensation.errors import InputError
from condensation.models import Ensemble, NetworkSpec, init_ensemble, member_label
from condensation.report import figures
from condensation.store.checkpoint import Checkpoint
from condensation.store.rundir import FIGURE_BYTES, save_arrays, write_json, write_toml
from condensation.training.network import TrainResult, snapshot_steps, train
from condensation.training.optimizers import Optimizer, from_train_config
from condensation.training.snapshots import kept_indices, network_layer_bytes, stored_bytes

# one compiled program per shape (op by op it compiled ~10 tiny programs, 0.25 s a run)
_final_stage_counts = jax.jit(final_stage_counts)

if TYPE_CHECKING:
    from condensation.training import fastforward


def _fastforward():
    """:mod:`condensation.training.fastforward`, imported when first needed (fast-forward,
    ``steps = "auto"``, a horizon warning): it brings diffrax, ~0.6 s of imports
    that a plain run does not pay."""
    from condensation.training import fastforward

    return fastforward


@dataclass(frozen=True)
class TrainRun:
    config: Config
    data: Dataset
    spec: NetworkSpec
    ensemble: Ensemble
    result: TrainResult
    plan: fastforward.Plan | None = None  # the hand-offs, when train.fast_forward
    notes: tuple[str, ...] = ()  # one-line notes for the user (plain-GD members, horizon)
    steps_auto: bool = False  # train.steps was "auto" (config.train.steps is the result)


def load_checked_data(cfg: Config) -> Dataset:
    """The config's data set, its size checked against memory before it is built (a
    generated one) and after (both)."""
    _check_memory_before(cfg)
    data = load_dataset(cfg.data)
    inputs.check_train_memory(cfg, data.x.shape[0], data.d_in)
    return data


def _check_memory_before(cfg: Config) -> None:
    """The memory check of a generated data set, whose sizes are known before it is built."""
    d = cfg.data
    if d.path is None:
        d_in = (d.d if d.dataset == "teacher" else 1) + int(d.bias)
        inputs.check_train_memory(cfg, d.n, d_in)


def _network(cfg: Config, data: Dataset) -> tuple[NetworkSpec, Ensemble]:
    """The network spec and initial ensemble of a config on ``data`` (scales checked)."""
    inputs.check_scales(scale_field(cfg.init), cfg.scales, cfg.model.depth, cfg.train.dtype)
    spec = NetworkSpec.from_config(cfg.model, data.d_in)
    return spec, init_ensemble(cfg, spec)


def prepare(cfg: Config) -> tuple[Dataset, NetworkSpec, Ensemble]:
    """Data, network spec and initial ensemble of a config (all validated).

    A training run prepares through :func:`prepare_run` instead, which also checks
    the drive and resolves ``train.steps = "auto"`` from the same objects."""
    data = load_checked_data(cfg)
    return (data, *_network(cfg, data))


@dataclass(frozen=True)
class Prepared:
    """A network config made ready to run, once per command call: its data set,
    network spec and initial ensemble, built and checked by :func:`prepare_run` and
    passed on to the size estimate (:func:`output_bytes`), the run key (``config``)
    and the run (:func:`run_training`, :func:`condensation.commands.effective.run_effective`).

    Attributes:
        config: the config, ``train.steps`` resolved when it was ``"auto"`` (and the
            run trains).
        data: the data set (memory checked).
        spec: the network spec.
        ensemble: the initial ensemble (scales checked).
        notes: the note saying what ``"auto"`` chose, else empty.
        steps_auto: ``train.steps`` was ``"auto"`` and is resolved in ``config``.
    """

    config: Config
    data: Dataset
    spec: NetworkSpec
    ensemble: Ensemble
    notes: tuple[str, ...] = ()
    steps_auto: bool = False


def prepare_run(cfg: Config, *, train: bool = True) -> Prepared:
    """Load, check and build everything a run of ``cfg`` needs, once.

    With ``train`` (a run that trains): data with ``z = 0`` is refused
    (:func:`check_drive`) and ``train.steps = "auto"`` is resolved from the
    members' predicted T* (:func:`resolve_steps`), the memory checked again at the
    chosen horizon.  Without (``effective`` without ``--compare-gd``), the config
    is kept as it is.

    Args:
        cfg: a validated network config.
        train: whether the run trains.

    Returns:
        The :class:`Prepared` run.
    """
    if not train:
        return Prepared(cfg, *prepare(cfg))
    auto = cfg.train.steps == AUTO
    # until "auto" is resolved, the memory is checked at one step (as its probe)
    sized = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, steps=1)) if auto else cfg
    data = load_checked_data(sized)
    check_drive(cfg, data)  # z = 0: refused before anything is computed
    spec, ens = _network(sized, data)
    if not auto:
        return Prepared(cfg, data, spec, ens)
    steps, note = _auto_steps(cfg, data, spec, ens)
    cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, steps=steps))
    _check_memory_before(cfg)  # at the chosen horizon, as the data were checked
    inputs.check_train_memory(cfg, data.x.shape[0], data.d_in)
    return Prepared(cfg, data, spec, ens, (note,), True)


NO_DRIVE_RTOL = 1e-12  # |z| below this x rms(y) rms(|x|): z = 0, no effective drive


def has_drive(data: Dataset) -> bool:
    """False where ``z = mean(y x)`` is zero up to rounding (``|z| <= NO_DRIVE_RTOL
    rms(y) rms|x|``; labels uncorrelated with the inputs, or y = 0): the effective
    dynamics has no drive."""
    scale = np.sqrt(np.mean(data.y**2) * np.mean(np.sum(data.x**2, axis=1)))
    return bool(np.linalg.norm(data.z) > NO_DRIVE_RTOL * scale)


def check_drive(cfg: Config, data: Dataset) -> None:
    """Refuse data with ``z = 0`` (:func:`has_drive`), before anything is computed:
    a training run's every measure is relative to ``z`` (escape from the plateau
    along it, alignment of the neurons with it, the predicted T*), and from a small
    init GD has nothing to escape along."""
    if has_drive(data):
        return
    field, value = ("data.path", cfg.data.path) if cfg.data.path else ("data.dataset", data.name)
    raise InputError(
        field,
        value,
        f"z = mean(y x) = 0 (|z| = {float(np.linalg.norm(data.z)):.2g}): labels uncorrelated "
        "with the inputs give no effective drive, so there is no escape, no T* and no "
        "direction to condense along",
        "use labels that correlate with the inputs (mean(y x) != 0); "
        "condensation effective reports such data as no-drive",
    )


def optimizer_of(cfg: Config, data: Dataset) -> Optimizer:
    """The config's optimizer for this data set (``batch_size`` checked against n)."""
    return from_train_config(cfg.train, int(data.x.shape[0]))


def resolve_steps(cfg: Config) -> tuple[Config, tuple[str, ...]]:
    """``train.steps = "auto"`` replaced by the horizon from the members' predicted
    T* (:func:`condensation.training.fastforward.auto_steps`); other configs unchanged.
    Returns the config and a note saying what was chosen.  (A run prepares
    through :func:`prepare_run`, which resolves it from the objects it runs.)"""
    if cfg.train.steps != AUTO:
        return cfg, ()
    p = prepare_run(cfg)
    return p.config, p.notes


def _auto_steps(cfg: Config, data: Dataset, spec: NetworkSpec, ens: Ensemble) -> tuple[int, str]:
    """The number of steps ``train.steps = "auto"`` stands for, and the note saying
    why, from the members' predicted T* (refused in one line where there is none,
    or where it is over the step limit)."""
    z = data.z * cfg.model.output_scale  # the field of f = kappa g is kappa times g's
    ff = _fastforward()
    predictions = ff.t_star_predictions(ens.params, z, spec.activation)
    t_stars = [None if p is None else p[0] for p in predictions]
    steps = ff.auto_steps(t_stars, float(np.linalg.norm(z)), cfg.train.lr)
    if steps is None:
        why = spec.activation.why_not_effective() or (
            "depth 2 has no blow-up" if spec.depth == 2 else "no member's dynamics blows up"
        )
        raise InputError(
            "train.steps", AUTO, f"needs a predicted T* ({why})", "give train.steps = <integer>"
        )
    latest = max(
        (p for p in predictions if p is not None),
        key=lambda p: -math.inf if p[1] is None else p[1],
    )
    known = format_time(*latest)
    if steps > inputs.MAX_STEPS:
        raise InputError(
            "train.steps",
            AUTO,
            f"the largest predicted T* = {known} needs a horizon of "
            f"{format_time(float(steps), spec='.3g')} steps at lr = {cfg.train.lr:g}, over the "
            f"limit of {inputs.MAX_STEPS:.0e} (fast-forward does not lift it: train.steps "
            "counts the plateau it skips)",
            f"raise the init scale (T* grows like 1/eps^{max(spec.depth - 2, 1)}) or train.lr "
            "until T*/lr is below the limit, or give train.steps = <integer> for a horizon "
            "that ends before the escape",
        )
    note = (
        f'train.steps = "auto": {steps} steps (t = {steps * cfg.train.lr:.6g}) from the '
        f"largest predicted T* = {known} x {ff.AUTO_FACTOR} + {ff.AUTO_ROOM:g}/|z|"
    )
    return steps, note


def horizon_notes(cfg: Config, data: Dataset, spec: NetworkSpec, ens: Ensemble, r, plan) -> list:
    """One line per member that did not escape within an explicit horizon shorter
    than its predicted T* (the effective blow-up time), naming both."""
    horizon = cfg.train.steps * cfg.train.lr
    missing = np.flatnonzero((r.escape_step < 0) & (r.diverged_step < 0))
    if missing.size == 0 or spec.depth < 3 or spec.activation.why_not_effective() is not None:
        return []
    # depth 3, no solve needed: T* >= sqrt(3) / (|z| sqrt(rho_0)) (THEORY §4)
    if not has_drive(data):  # no T* to predict (run_training refuses such data)
        return []
    kappa = cfg.model.output_scale
    z = data.z * kappa  # the field of f = kappa g is kappa times g's
    ff = _fastforward()
    lower = ff.t_star_lower_bound(ens.params, z, spec.activation)
    logs: list = [None] * ens.size  # log10 T*, where T* itself overflows float64
    if plan is not None and all(m.t_star is None or math.isfinite(m.t_star) for m in plan.members):
        # solved already, in the time of g (t kappa^2)
        t_stars = [None if m.t_star is None else m.t_star / kappa**2 for m in plan.members]
        what = "T* = {}"
    elif lower is not None and all(horizon < lower[i] for i in missing):
        # no solve needed (a deep network at a tiny init: T* >= 10^300 in microseconds)
        t_stars = list(lower)
        logs = list(ff.log10_t_star_lower_bound(ens.params, z, spec.activation))
        what = (
            "T* >= {} (THEORY §4 lower bound)"
            if spec.depth == 3
            else "T* >= {} (lower bound: |theta| grows at most like |z| L^(1-L/2) |theta|^(L-1))"
        )
    else:
        predictions = ff.t_star_predictions(ens.params, z, spec.activation)
        t_stars = [None if p is None else p[0] for p in predictions]
        logs = [None if p is None else p[1] for p in predictions]
        what = "T* = {}"
    out = []
    for i in missing:
        t = t_stars[i]
        if t is not None and horizon < t:
            need = t / cfg.train.lr  # steps (a float: inf or huge where T* is)
            fix = (
                f"raise train.steps above {math.ceil(need)} or use \"auto\""
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


def snapshot_plan(cfg: Config, d_in: int, members: int, save: str | None = None):
    """``(snapshot steps, per-layer kept indices, stored bytes)`` of a network run under
    ``save`` (default ``cfg.train.save``; :mod:`condensation.training.snapshots`)."""
    t = cfg.train
    steps = snapshot_steps(t.steps, t.snapshots, t.linear_snapshots)
    sizes = network_layer_bytes(d_in, cfg.model.widths, members, 8 if t.dtype == "float64" else 4)
    kept = kept_indices(t.save if save is None else save, len(steps), sizes)
    return steps, kept, stored_bytes(len(steps), sizes, kept)


def measure_snapshot(params: list[np.ndarray], z: np.ndarray) -> dict[str, np.ndarray]:
    """What is recorded at every snapshot whatever is stored: the first layer's
    alignment with z and every layer's Frobenius norm, (E,) and (E, L)."""
    return {**alignment_metrics(params[0], z), "layer_norms": layer_norms(params)}


def run_training(
    cfg: Config | Prepared,
    progress: Callable[[int], None] | None = None,
    checkpoint: Checkpoint | None = None,
    save: str | None = None,
) -> TrainRun:
    """Train a config's ensemble (fast-forwarded when ``train.fast_forward``).

    ``cfg``: a config, prepared here (:func:`prepare_run`: ``train.steps = "auto"``
    resolved), or a run a caller prepared already, trained from its very data and
    ensemble.  ``save`` (default ``cfg.train.save``): which parameter snapshots to keep;
    callers that need every snapshot pass ``"full"``."""
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
        plan = _fastforward().plan(
            ens.params,
            data.x,
            data.y / kappa,
            activation=spec.activation,
            lr=t.lr * kappa**2,
            steps=t.steps,
            snapshots=snaps,
            delta=t.handoff,
            plateau_drop=t.plateau_drop,
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
    the time ``t = step * lr`` differ.  ``kappa = 1`` returns ``result`` unchanged."""
    if kappa == 1.0:
        return result
    return dataclasses.replace(result, lr=float(lr), snapshot_loss=result.snapshot_loss * kappa**2)


def output_bytes(run: Prepared | Config) -> float:
    """About how many bytes a train run directory takes (uncompressed arrays, figures),
    for a prepared run (a config is prepared here)."""
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


def _state_numbers(params, z: np.ndarray, where: str) -> dict:
    """At one recorded state (``where`` = ``plateau_exit`` or ``escape``): W1's rows'
    alignment with its own top singular direction and, for depth 3, how many
    neurons violate the inner-product constraint and how many pairs the angle
    constraint of the final-stage condition; all None when ``params`` is None."""
    keys = (
        f"median_abs_cos_top_direction_at_{where}",
        f"final_stage_inner_violations_at_{where}",
        f"final_stage_angle_violations_at_{where}",
    )
    if params is None:
        return dict.fromkeys(keys)
    out = {keys[0]: top_direction_alignment(params[0])}
    if len(params) == 3:
        b, w, a = params
        n_inner, n_pairs = _final_stage_counts(a[0], w, b @ z)
        out[keys[1]], out[keys[2]] = int(n_inner), int(n_pairs)
    else:
        out[keys[1]] = out[keys[2]] = None
    return out


def plateau_numbers(r: TrainResult, i: int, z: np.ndarray) -> dict:
    """Member ``i``'s condensation measured where it happens: at the plateau exit
    (loss down by ``plateau_drop``) and at the peak of the median |cos(b_j, z)|."""
    exited = r.plateau_exit_step[i] >= 0
    params = [np.asarray(w[i], dtype=float) for w in r.plateau_exit_params] if exited else None
    return {
        "plateau_exit_step": int(r.plateau_exit_step[i]) if exited else None,
        "plateau_exit_time": float(r.plateau_exit_step[i] * r.lr) if exited else None,
        "median_abs_cos_at_plateau_exit": (
            float(np.median(abs_cos_to(params[0], z))) if exited else None
        ),
        "peak_median_abs_cos": float(r.peak_median_abs_cos[i]),
        "peak_median_abs_cos_time": float(r.peak_median_abs_cos_step[i] * r.lr),
        **_state_numbers(params, z, "plateau_exit"),
    }


def member_summaries(run: TrainRun) -> list[dict]:
    r, z = run.result, run.data.z
    stuck = never_moved(r.snapshots, run.ensemble.scales, run.spec.depth, run.config.train.dtype)
    rd_end, rd_max = rd_over_snapshots(r.snapshots)  # (E, L), at the snapshot times
    out = []
    for i in range(run.ensemble.size):
        escaped = r.escape_step[i] >= 0
        at_escape = (
            condensation_metrics([np.asarray(w[i], dtype=float) for w in r.escape_params], z)
            if escaped
            else dict.fromkeys(
                ("median_abs_cos", "frac_abs_cos_above_0_95", "w_sigma_ratio", "n_clusters")
            )
        )
        fs = r.final_stage_step[i]
        out.append(
            {
                "seed": run.ensemble.seeds[i],
                "scale": run.ensemble.scales[i],
                "status": member_status(r.diverged_step[i], stuck[i]),
                "diverged_step": int(r.diverged_step[i]) if r.diverged_step[i] >= 0 else None,
                "loss_initial": r.loss_initial[i],
                "loss_final": r.loss_final[i],
                "escape_step": int(r.escape_step[i]) if escaped else None,
                "escape_time": float(r.escape_step[i] * r.lr) if escaped else None,
                **at_escape,
                "final_stage_entry_time": float(fs * r.lr) if fs >= 0 else None,
                **plateau_numbers(r, i, z),
                **_state_numbers(
                    [np.asarray(w[i], dtype=float) for w in r.escape_params] if escaped else None,
                    z,
                    "escape",
                ),
                **{f"rd_layer{k + 1}_end": float(v) for k, v in enumerate(rd_end[i])},
                **{f"rd_layer{k + 1}_max": float(v) for k, v in enumerate(rd_max[i])},
                **_fast_forward_numbers(run, i),
            }
        )
    return out


def _fast_forward_numbers(run: TrainRun, i: int) -> dict:
    """Member ``i``'s hand-off (``train.fast_forward``): ``{"fast_forward": {...}}``."""
    if run.plan is None:
        return {}
    r = run.result
    esc = int(r.escape_step[i]) if r.escape_step[i] >= 0 else None
    out = run.plan.members[i].summary(r.steps, esc)
    k2 = run.config.model.output_scale**2  # the plan ran in the time of g: t kappa^2
    for key in ("handoff_time", "effective_t_star"):
        if out.get(key) is not None and k2 != 1.0:
            out[key] = out[key] / k2
    return {"fast_forward": out}


def never_moved(snapshots, scales, depth: int, dtype: str) -> np.ndarray:
    """(E,) True where a member's gradients underflow (``eps^(depth-1)`` below the
    dtype's smallest normal number) and its parameters never changed from the first
    snapshot to the last: underflow to zero, not a trained network."""
    tiny = float(inputs.dtype_limits(dtype).smallest_normal)
    risky = np.array([s is not None and s ** (depth - 1) < tiny for s in scales])
    same = np.all(
        np.stack(
            [np.all(w[:, -1] == w[:, 0], axis=tuple(range(1, w.ndim - 1))) for w in snapshots]
        ),
        axis=0,
    )
    return risky & same


def member_status(diverged_step: int, stuck: bool) -> str:
    """``diverged`` (loss or parameters became non-finite: overflow), ``underflow``
    (see :func:`never_moved`) or ``ok``."""
    if diverged_step >= 0:
        return "diverged"
    return "underflow" if stuck else "ok"


def optimizer_summary(opt: Optimizer) -> dict:
    """The optimizer, its settings, and what the effective prediction is for it."""
    return {
        **opt.settings(),
        "loss_measured_on": "full batch",
        "effective_prediction": opt.theory_reach,
    }


def summary(run: TrainRun) -> dict:
    cfg, d = run.config, run.data
    return {
        "kind": "train",
        "dataset": d.name,
        "n": int(d.x.shape[0]),
        "d_in": d.d_in,
        "z": d.z,
        "z_norm": float(np.linalg.norm(d.z)),
        "depth": run.spec.depth,
        "widths": list(run.spec.widths),
        "activation": run.spec.activation.name,
        "output_scale": cfg.model.output_scale,
        "layer_scales": list(run.ensemble.layer_scales) if run.ensemble.layer_scales else None,
        "antisymmetric": cfg.init.antisymmetric,
        "lr": cfg.train.lr,
        "steps": cfg.train.steps,
        "dtype": cfg.train.dtype,
        "optimizer": optimizer_summary(optimizer_of(cfg, d)),
        "plateau_drop": cfg.train.plateau_drop,
        "steps_auto": run.steps_auto,
        "fast_forward": cfg.train.fast_forward,
        "handoff": cfg.train.handoff if cfg.train.fast_forward else None,
        "notes": list(run.notes),
        "save": cfg.train.save,
        "stored_snapshots": [len(run.result.layer_steps(k)) for k in range(run.spec.depth)],
        "members": member_summaries(run),
    }


def write_train_run(run: TrainRun, out: Path) -> dict:
    """Write config, arrays, summary.json and figures into ``out`` (exists, empty)."""
    r = run.result
    write_toml(out / "config.toml", run.config.to_dict())
    (out / "arrays").mkdir()
    save_arrays(
        out / "arrays" / "snapshots.npz",
        steps=r.snapshot_steps,
        times=r.snapshot_times,
        loss=r.snapshot_loss,
        **{f"W{k + 1}": w for k, w in enumerate(r.snapshots)},
        **{f"W{k + 1}_steps": r.layer_steps(k) for k in range(len(r.snapshots))},
    )
    save_arrays(
        out / "arrays" / "escape_params.npz",
        escape_step=r.escape_step,
        **{f"W{k + 1}": w for k, w in enumerate(r.escape_params)},
    )
    save_arrays(
        out / "arrays" / "plateau_exit_params.npz",
        plateau_exit_step=r.plateau_exit_step,
        peak_median_abs_cos=r.peak_median_abs_cos,
        peak_median_abs_cos_step=r.peak_median_abs_cos_step,
        **{f"W{k + 1}": w for k, w in enumerate(r.plateau_exit_params)},
    )
    save_arrays(out / "arrays" / "data.npz", x=run.data.x, y=run.data.y, z=run.data.z)
    met = run_metrics(r, run.config.train.save)
    save_arrays(out / "arrays" / "metrics.npz", times=r.snapshot_times, **met)
    s = summary(run)
    write_json(out / "summary.json", s)
    (out / "figures").mkdir()
    plot_train_run(run, met, out / "figures")
    return s


def _positions(r: TrainResult, k: int) -> np.ndarray:
    """(K,) position of each snapshot in layer ``k``'s stored snapshots, -1 if not stored."""
    pos = np.full(len(r.snapshot_steps), -1)
    idx = r.snapshot_index[k] if r.snapshot_index is not None else None
    idx = np.arange(len(pos)) if idx is None else idx
    pos[idx] = np.arange(len(idx))
    return pos


def run_metrics(r: TrainResult, save: str) -> dict[str, np.ndarray]:
    """The per-snapshot metrics of ``arrays/metrics.npz`` (E, K): the alignment and
    layer norms recorded at every snapshot; ``w_sigma_ratio`` (depth >= 3) at every
    snapshot where W2 is stored, ``n_clusters`` where W1 is (under ``save = "bounded"``
    at most ``CLUSTER_BUDGET / (E m1^2)`` of them, evenly spread); NaN elsewhere."""
    e, k = r.snapshot_loss.shape
    out = {name: r.measures[name] for name in ("median_abs_cos", "frac_abs_cos_above_0_95")}
    out["layer_norms"] = r.measures["layer_norms"]
    pos = _positions(r, 0)
    stored = np.flatnonzero(pos >= 0)
    most = max(2, int(CLUSTER_BUDGET // (e * r.snapshots[0].shape[-2] ** 2)))
    if save != "full" and stored.size > most:
        pick = np.round(np.linspace(0, stored.size - 1, most)).astype(np.int64)
        stored = stored[np.unique(pick)]
    out["n_clusters"] = np.full((e, k), np.nan)
    out["n_clusters"][:, stored] = cluster_counts(r.snapshots[0][:, pos[stored]])
    if len(r.snapshots) >= 3:
        pos = _positions(r, 1)
        out["w_sigma_ratio"] = np.full((e, k), np.nan)
        out["w_sigma_ratio"][:, pos >= 0] = sigma_ratios(r.snapshots[1])
    return out


def _heatmap_states(r: TrainResult, member: int, layers: list[int]) -> list[tuple[float, list]]:
    """``(t, [W_layer of member])`` nearest to 0, 50%, 90%, 100% of the escape time
    and the end, among the snapshots where every layer in ``layers`` is stored and
    the recorded escape and plateau-exit states."""
    t = r.snapshot_times
    pos = [_positions(r, k) for k in layers]
    both = np.flatnonzero(np.all([p >= 0 for p in pos], axis=0))
    cands = [
        (float(t[j]), [r.snapshots[k][member, p[j]] for k, p in zip(layers, pos)]) for j in both
    ]
    for step, params in (
        (r.escape_step, r.escape_params),
        (r.plateau_exit_step, r.plateau_exit_params),
    ):
        if step is not None and step[member] >= 0:
            cands.append((float(step[member] * r.lr), [params[k][member] for k in layers]))
    cand_t = np.array([c[0] for c in cands])
    t_esc = r.escape_time[member]
    ref = t_esc if np.isfinite(t_esc) else t[-1]
    want = [0.0, 0.5 * ref, 0.9 * ref, ref, t[-1]]
    chosen = {int(np.argmin(np.abs(cand_t - w))) for w in want}
    return sorted((cands[i] for i in chosen), key=lambda c: c[0])


def plot_train_run(run: TrainRun, met: dict, fig_dir: Path) -> None:
    r = run.result
    t = r.snapshot_times
    labels = [
        member_label(s, e, i, run.config.init.path)
        for i, (s, e) in enumerate(zip(run.ensemble.seeds, run.ensemble.scales))
    ]
    show = range(min(run.ensemble.size, 8))

    fig, ax = figures.subplots(figsize=(6, 4))
    for i in show:
        fs = r.final_stage_step[i] * r.lr if r.final_stage_step[i] >= 0 else None
        arts = figures.loss_curve(
            ax, t, r.snapshot_loss[i], label=labels[i], escape=r.escape_time[i], final_stage=fs
        )
        if np.isfinite(r.plateau_exit_time[i]):
            ax.axvline(r.plateau_exit_time[i], ls="-.", color=arts[0].get_color(), lw=0.8)
    ax.set_title(
        "loss (dash-dot: plateau exit, dashed: escape, dotted: final-stage entry)", fontsize=9
    )
    ax.legend(fontsize=7)
    figures.save(fig, fig_dir / "loss.png")

    fig, axs = figures.subplots(1, 2, figsize=(9, 3.5))
    for i in show:
        (line,) = axs[0].plot(t, met["median_abs_cos"][i], label=labels[i])
        axs[1].plot(t, met["frac_abs_cos_above_0_95"][i], color=line.get_color())
        for a in axs:
            if np.isfinite(r.plateau_exit_time[i]):
                a.axvline(r.plateau_exit_time[i], ls="-.", color=line.get_color(), lw=0.8)
            if np.isfinite(r.escape_time[i]):
                a.axvline(r.escape_time[i], ls="--", color=line.get_color(), lw=0.8)
        axs[0].plot(
            [r.peak_median_abs_cos_step[i] * r.lr], [r.peak_median_abs_cos[i]], "v",
            color=line.get_color(), ms=5,
        )  # fmt: skip
    axs[0].set_title("dash-dot: plateau exit, dashed: escape, triangle: peak", fontsize=8)
    axs[0].set_ylabel("median |cos(b_j, z)|")
    axs[1].set_ylabel("fraction |cos(b_j, z)| > 0.95")
    for a in axs:
        a.set_xlabel("time t")
        a.set_ylim(0, 1.02)
    axs[0].legend(fontsize=7)
    figures.save(fig, fig_dir / "alignment.png")

    ok = np.flatnonzero(r.diverged_step < 0)
    shown = int(ok[0]) if ok.size else 0  # heatmaps of the first member that did not diverge
    layers = [0, 1] if run.spec.depth >= 3 else [0]
    states = _heatmap_states(r, shown, layers)
    fig, axs = figures.subplots(
        len(layers), len(states), figsize=(2.2 * len(states), 2.3 * len(layers)), squeeze=False
    )
    for row, layer in enumerate(layers):
        for col, (tj, ws) in enumerate(states):
            name = "B rows b_j" if layer == 0 else "W rows"  # input weights of each neuron
            figures.cosine_heatmap(axs[row, col], ws[row], title=f"{name}, t={tj:.4g}")
    figures.save(fig, fig_dir / "cosine_heatmaps.png")
