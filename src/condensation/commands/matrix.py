"""``condensation matrix``: deep matrix factorisation runs, summaries, figures.

:func:`prepare_matrix` loads and checks a config's problem and builds its
ensemble once; :func:`run_matrix` trains the ensemble, integrates the effective
dynamics of every member (depth >= 3) to its blow-up time ``T*`` and solves the
minimum-nuclear-norm baseline; :func:`write_matrix_run` writes config, arrays,
``summary.json`` and figures.  :data:`COMMAND` is the command's entry in the
registry (:mod:`condensation.commands.registry`).  The ``matrix-completion``
experiment lives in :mod:`condensation.experiments.matrix_completion`.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from condensation import matrix as mx
from condensation.commands.matrix_figures import plot_matrix_run
from condensation.commands.matrix_summary import (  # noqa: F401 (re-exported: their old home)
    N_REPORT,
    SIGNIFICANT,
    member_summaries,
    run_v1,
    summary,
    t_star_notes,
)
from condensation.commands.registry import Command
from condensation.commands.sizing import MAX_SAVED_PRODUCTS
from condensation.commands.sizing import matrix_output_bytes as output_bytes
from condensation.config import checks as inputs
from condensation.effective import theory
from condensation.errors import InputError
from condensation.store.checkpoint import Checkpoint, run_key
from condensation.store.rundir import save_arrays, write_json, write_toml
from condensation.training.network import snapshot_steps


@dataclass(frozen=True)
class MatrixRun:
    """A finished matrix run.

    Attributes:
        config: its config.
        problem: the problem it fitted.
        ensemble: the initial factors.
        result: the training's result.
        blowups: each member's effective blow-up (depth >= 3 and ``t_star``), else None.
        baseline: the minimum-nuclear-norm solution, or None.
        plan: the fast-forward hand-offs when ``train.fast_forward``.
    """

    config: mx.MatrixConfig
    problem: mx.Problem
    ensemble: mx.MatrixEnsemble
    result: mx.FactorisationResult
    blowups: list[Any] | None  # per member (depth >= 3), else None
    baseline: mx.NuclearResult | None
    plan: Any = None  # hand-offs (training.fastforward.Plan) when train.fast_forward


def prepare(cfg: mx.MatrixConfig) -> tuple[mx.Problem, mx.MatrixEnsemble]:
    """Problem and initial ensemble of a validated config.

    Args:
        cfg: a validated matrix config.

    Returns:
        ``(problem, ensemble)``.

    Raises:
        InputError: a bad problem file, a size over the memory limit, no drive, bad scales.
    """
    problem = load_checked_problem(cfg)
    return problem, mx.init_ensemble(cfg, problem.shape)


def load_checked_problem(cfg: mx.MatrixConfig) -> mx.Problem:
    """The config's problem, its size checked against memory before it is built (a
    generated one) and before training (both), its drive and the init scales checked.

    Args:
        cfg: a validated matrix config.

    Returns:
        The :class:`condensation.matrix.Problem`.
    """
    p = cfg.problem
    if p.path is None:
        inputs.check_matrix_memory(cfg, p.n, p.cols if p.cols is not None else p.n, p.observed)
    problem = mx.load_problem(p)
    inputs.check_matrix_memory(cfg, *problem.shape, problem.n_observed)
    check_drive(problem, "problem.path" if p.path is not None else "problem")
    inputs.check_scales(
        "init.scales" if cfg.init.scales is not None else "init.scale",
        cfg.scales,
        cfg.model.depth,
        cfg.train.dtype,
    )
    return problem


NO_DRIVE_RTOL = 1e-12  # |M_O| below this x the size of the terms summed into it: no drive


def has_drive(problem: mx.Problem) -> bool:
    """False where ``M_O`` (``P_Omega(M)``, or ``A^*(y)``), the drive of the effective
    dynamics, is zero up to rounding: every observed entry of ``M`` is 0, or the
    measurements cancel (``|A^*(y)| <= NO_DRIVE_RTOL sum_k |y_k| |A_k|_F``)."""
    m_o = np.asarray(problem.m_obs, dtype=np.float64)
    if problem.kind == "completion":
        return bool(np.any(m_o != 0))
    size = float(np.sum(np.abs(problem.y) * np.linalg.norm(problem.a, axis=(1, 2))))
    return bool(np.linalg.norm(m_o) > NO_DRIVE_RTOL * size)


def check_drive(problem: mx.Problem, field: str = "problem") -> None:
    """Refuse a problem without drive (:func:`has_drive`) before anything is computed:
    from a small init GD has nothing to fit (``X`` stays at 0), and the run's
    measures (escape, ``T*``, alignment with the top singular vector of ``M_O``) do
    not exist."""
    if has_drive(problem):
        return
    what = (
        "every observed entry of M is 0 (M_O = P(M) = 0)"
        if problem.kind == "completion"
        else "the measurements give A^*(y) = 0"
    )
    raise InputError(
        field,
        problem.name,
        f"{what}: the effective dynamics has no drive, so X stays at 0 and there is no "
        "escape, no T* and no singular direction to align with",
        "give a target with nonzero observed entries"
        if problem.kind == "completion"
        else "give measurements y that correlate with the sensing matrices A",
    )


def check_fast_forward_scales(ens: mx.MatrixEnsemble, depth: int) -> None:
    """Refuse ``train.fast_forward`` where a member's effective solve would run in a
    time unit ``|W(0)|^-(L-2)`` beyond float64 (a deep factorisation at a tiny init):
    its T* is beyond any GD horizon, and the hand-off cannot be placed on the grid."""
    if depth < 3:
        return
    for i in range(ens.size):
        n0 = math.sqrt(sum(float(np.sum(np.asarray(p[i], np.float64) ** 2)) for p in ens.params))
        log_unit = theory.log_time_unit(n0, depth - 1) if n0 > 0 else math.inf
        if log_unit > theory.LOG_UNIT_LIMIT:
            raise InputError(
                "train.fast_forward",
                True,
                f"member {i} (eps {ens.scales[i]:.3g}): the effective time unit "
                f"|W(0)|^-{depth - 2} = 10^{log_unit / math.log(10):.0f} is beyond float64, "
                "so T* is beyond any horizon and there is no hand-off to fast-forward to",
                "raise the init scale, or set train.fast_forward = false",
            )


@dataclass(frozen=True)
class MatrixPrepared:
    """A matrix config made ready to run, once per command call (:func:`prepare_matrix`).

    Attributes:
        config: the config.
        problem: its problem (loaded and checked).
        ensemble: the initial factors (fast-forward's time unit checked).
    """

    config: mx.MatrixConfig
    problem: mx.Problem
    ensemble: mx.MatrixEnsemble


def prepare_matrix(cfg: mx.MatrixConfig) -> MatrixPrepared:
    """Load and check the problem and build the ensemble of a run of ``cfg``, once.

    Bad files, sizes and scales, a problem without drive and (``train.fast_forward``)
    a time unit beyond float64 are refused here, before anything runs.

    Args:
        cfg: a validated matrix config.

    Returns:
        The :class:`MatrixPrepared` run.
    """
    problem, ens = prepare(cfg)
    if cfg.train.fast_forward:
        check_fast_forward_scales(ens, cfg.model.depth)
    return MatrixPrepared(cfg, problem, ens)


def run_matrix(
    cfg: mx.MatrixConfig | MatrixPrepared,
    progress: Callable[[int], None] | None = None,
    *,
    problem: mx.Problem | None = None,
    t_star: bool = True,
    baseline: bool = True,
    checkpoint: Checkpoint | None = None,
) -> MatrixRun:
    """Train, then ``T*`` of every member (depth >= 3) and the nuclear-norm baseline.

    Args:
        cfg: a validated config (prepared here), or a run prepared by
            :func:`prepare_matrix`, trained from its very problem and ensemble.
        progress: called with the number of steps done.
        problem: the config's problem, loaded already (without the checks of
            :func:`load_checked_problem`; a config only).
        t_star: integrate each member's effective dynamics to ``T*`` (depth >= 3).
        baseline: solve the minimum-nuclear-norm problem.
        checkpoint: where the training checkpoints (and resumes from).

    Returns:
        The :class:`MatrixRun`.
    """
    if isinstance(cfg, MatrixPrepared):
        cfg, problem, ens = cfg.config, cfg.problem, cfg.ensemble
    elif problem is None:
        problem, ens = prepare(cfg)
    else:
        ens = mx.init_ensemble(cfg, problem.shape)
    t = cfg.train
    snaps = snapshot_steps(t.steps, t.snapshots, t.linear_snapshots)
    plan = None
    if t.fast_forward:
        from condensation.matrix.fastforward import plan as plan_handoffs

        check_fast_forward_scales(ens, cfg.model.depth)

        plan = plan_handoffs(
            problem, ens.params, lr=t.lr, steps=t.steps, snapshots=snaps, delta=t.handoff
        )
    result = mx.train_factorisation(
        problem,
        ens.params,
        lr=t.lr,
        steps=t.steps,
        snapshots=snaps,
        dtype=t.dtype,
        progress=progress,
        checkpoint=checkpoint,
        handoff=None if plan is None else plan.handoff,
    )
    blowups = None
    if t_star and cfg.model.depth >= 3:
        m_o = problem.m_obs
        blowups = [mx.effective_blowup([p[i] for p in ens.params], m_o) for i in range(ens.size)]
    base = mx.min_nuclear_norm(problem) if baseline else None
    return MatrixRun(cfg, problem, ens, result, blowups, base, plan)


def write_matrix_run(run: MatrixRun, out: Path) -> dict:
    """Write config, arrays, summary.json and figures into ``out``.

    Args:
        run: the matrix run.
        out: the directory to write into (exists, empty).

    Returns:
        The summary, as written to ``summary.json``.
    """
    r, pb = run.result, run.problem
    write_toml(out / "config.toml", run.config.to_dict())
    (out / "arrays").mkdir()
    series = {k: v for k, v in r.series.items() if k != "x"}
    save_arrays(
        out / "arrays" / "series.npz",
        steps=r.snapshot_steps,
        times=r.snapshot_times,
        tracked_singular_values=r.tracked_singular_values,
        **series,
    )
    x = r.series["x"]
    if x.size <= MAX_SAVED_PRODUCTS:
        save_arrays(out / "arrays" / "products.npz", times=r.snapshot_times, X=x)
    else:
        save_arrays(out / "arrays" / "products.npz", times=r.snapshot_times[-1:], X=x[:, -1:])
    save_arrays(
        out / "arrays" / "final_factors.npz",
        escape_step=r.escape_step,
        plateau_exit_step=r.plateau_exit_step,
        escape_W1=r.escape_w1,
        **{f"W{k + 1}": w for k, w in enumerate(r.final_params)},
    )
    arrays = {"M": pb.m, "M_obs": pb.m_obs}
    if pb.kind == "completion":
        arrays["mask"] = pb.mask
    else:
        arrays.update(A=pb.a, y=pb.y)
    if run.baseline is not None:
        arrays["X_nuclear"] = run.baseline.x
    save_arrays(out / "arrays" / "problem.npz", **arrays)
    s = summary(run)
    write_json(out / "summary.json", s)
    (out / "figures").mkdir()
    plot_matrix_run(run, s, out / "figures")
    return s


# ---- the command: load -> prepare once -> run -> write -------------------------------
def load(path: Path | None, overrides: Sequence[str] = ()) -> mx.MatrixConfig:
    """The validated config of ``condensation matrix``.

    Args:
        path: a TOML config (None: the built-in defaults).
        overrides: ``section.key=value`` strings (``--set``).

    Returns:
        The :class:`condensation.matrix.MatrixConfig`.
    """
    return mx.load_matrix_config(path, list(overrides))


COMMAND = Command(
    name="matrix",
    load=load,
    prepare=lambda cfg, opts: prepare_matrix(cfg),
    run=lambda prep, opts, progress, checkpoint: run_matrix(
        prep, progress=progress, checkpoint=checkpoint
    ),
    write=write_matrix_run,
    key=lambda prep, opts: run_key("matrix", prep.config.to_dict()),
    output_bytes=lambda prep, opts: output_bytes(prep.config, prep.problem),
)

# the matrix-completion experiment moved to condensation.experiments.matrix_completion
_MOVED = {"EXPERIMENT_DEFAULTS": "DEFAULTS", "EXPERIMENT_QUICK": "QUICK", "run_experiment": None}


def __getattr__(name: str):
    """The experiment's names at their old home, for one release (a DeprecationWarning)."""
    if name not in _MOVED:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    warnings.warn(
        f"condensation.commands.matrix.{name} moved to "
        "condensation.experiments.matrix_completion; the old path goes in the next release",
        DeprecationWarning,
        stacklevel=2,
    )
    from condensation.experiments import matrix_completion

    return getattr(matrix_completion, _MOVED[name] or name)
