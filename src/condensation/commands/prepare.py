"""A network config made ready to run, once per command call.

:func:`prepare_run` loads the data (memory checked), refuses data without drive
(``z = 0``), builds the network spec and initial ensemble (scales checked) and
resolves ``train.steps = "auto"`` from the members' predicted T*; the train and
effective commands size, key and run from the :class:`Prepared` it returns.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from condensation.config import checks as inputs
from condensation.config.network import AUTO, Config, scale_field
from condensation.data import Dataset, load_dataset
from condensation.datasets import TEACHERS
from condensation.effective.theory import format_time
from condensation.errors import InputError
from condensation.models import Ensemble, NetworkSpec, init_ensemble
from condensation.training.optimizers import Optimizer, from_train_config


def load_checked_data(cfg: Config) -> Dataset:
    """The config's data set, its size checked against memory before it is built (a
    generated one) and after (both).

    Args:
        cfg: a validated network config.

    Returns:
        The :class:`condensation.data.Dataset`.
    """
    _check_memory_before(cfg)
    data = load_dataset(cfg.data)
    inputs.check_train_memory(cfg, data.x.shape[0], data.d_in)
    return data


def _check_memory_before(cfg: Config) -> None:
    """The memory check of a generated data set, whose sizes are known before it is built."""
    d = cfg.data
    if d.path is None:
        d_in = (d.d if d.dataset in TEACHERS else 1) + int(d.bias)
        inputs.check_train_memory(cfg, d.n, d_in)


def _network(cfg: Config, data: Dataset) -> tuple[NetworkSpec, Ensemble]:
    """The network spec and initial ensemble of a config on ``data`` (scales checked)."""
    inputs.check_scales(scale_field(cfg.init), cfg.scales, cfg.model.depth, cfg.train.dtype)
    spec = NetworkSpec.from_config(cfg.model, data.d_in)
    return spec, init_ensemble(cfg, spec)


def prepare(cfg: Config) -> tuple[Dataset, NetworkSpec, Ensemble]:
    """Data, network spec and initial ensemble of a config (all validated).

    A training run prepares through :func:`prepare_run` instead, which also checks
    the drive and resolves ``train.steps = "auto"`` from the same objects.

    Args:
        cfg: a validated network config.

    Returns:
        ``(data, spec, ensemble)``.
    """
    data = load_checked_data(cfg)
    return (data, *_network(cfg, data))


@dataclass(frozen=True)
class Prepared:
    """A network config made ready to run, once per command call: its data set,
    network spec and initial ensemble, built and checked by :func:`prepare_run` and
    passed on to the size estimate (:mod:`condensation.commands.sizing`), the run key
    (``config``) and the run (:func:`condensation.commands.train.run_training`,
    :func:`condensation.commands.effective.run_effective`).

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
    dynamics has no drive.

    Args:
        data: the data set.

    Returns:
        Whether ``z`` is nonzero beyond rounding.
    """
    scale = np.sqrt(np.mean(data.y**2) * np.mean(np.sum(data.x**2, axis=1)))
    return bool(np.linalg.norm(data.z) > NO_DRIVE_RTOL * scale)


def check_drive(cfg: Config, data: Dataset) -> None:
    """Refuse data with ``z = 0`` (:func:`has_drive`), before anything is computed:
    a training run's every measure is relative to ``z`` (escape from the plateau
    along it, alignment of the neurons with it, the predicted T*), and from a small
    init GD has nothing to escape along.

    Args:
        cfg: the config (names the field: ``data.path`` or ``data.dataset``).
        data: its data set.

    Raises:
        InputError: ``z = 0``.
    """
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
    """The config's optimizer for this data set (``batch_size`` checked against n).

    Args:
        cfg: a validated network config.
        data: its data set.

    Returns:
        The :class:`condensation.training.optimizers.Optimizer`.
    """
    return from_train_config(cfg.train, int(data.x.shape[0]))


def resolve_steps(cfg: Config) -> tuple[Config, tuple[str, ...]]:
    """``train.steps = "auto"`` replaced by the horizon from the members' predicted
    T* (:func:`condensation.training.fastforward.auto_steps`); other configs unchanged.
    (A run prepares through :func:`prepare_run`, which resolves it from the
    objects it runs.)

    Args:
        cfg: a validated network config.

    Returns:
        ``(config, notes)``: the config with an integer ``train.steps`` and the
        note saying what was chosen (empty when nothing was resolved).
    """
    if cfg.train.steps != AUTO:
        return cfg, ()
    p = prepare_run(cfg)
    return p.config, p.notes


def _auto_steps(cfg: Config, data: Dataset, spec: NetworkSpec, ens: Ensemble) -> tuple[int, str]:
    """The number of steps ``train.steps = "auto"`` stands for, and the note saying
    why, from the members' predicted T* (refused in one line where there is none,
    or where it is over the step limit)."""
    z = data.z * cfg.model.output_scale  # the field of f = kappa g is kappa times g's
    from condensation.effective import predictions as pred  # diffrax: imported when needed
    from condensation.training import fastforward as ff

    form = pred.spectral_form(spec.depth)  # at depth 3 the form that scales with width
    predictions = pred.t_star_predictions(ens.params, z, spec.activation, form)
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
