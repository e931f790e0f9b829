"""``condensation effective``: the effective dynamics of every ensemble member.

From the same config as ``train`` (hence the same initial parameters), build
the effective system of each member, integrate it through its blow-up, check
it against the theory, and optionally run GD beside it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from condensation.commands.effective_figures import plot_effective_run
from condensation.commands.prepare import Prepared, has_drive, optimizer_of, prepare_run
from condensation.commands.registry import Command
from condensation.commands.sizing import effective_output_bytes as output_bytes
from condensation.commands.train import TrainRun, run_training
from condensation.commands.train_summary import optimizer_summary
from condensation.config import checks as inputs
from condensation.config.network import Config
from condensation.data import Dataset
from condensation.effective.blowup import Blowup, Tolerances
from condensation.effective.system import (
    FORMS,
    EffectiveSystem,
    build_system,
    regime_ratio,
    solve_batch,
    warn_regime,
)
from condensation.effective.theory import (
    blowup_criterion,
    bounds_from_steps,
    check_three_layer_run,
)
from condensation.errors import InputError
from condensation.models import Ensemble, NetworkSpec
from condensation.store.checkpoint import Checkpoint, run_key
from condensation.store.rundir import save_arrays, write_json, write_toml

CONDENSED_COS = 0.999  # min_j |cos(b_j, z)| at the end above this: condensed


@dataclass(frozen=True)
class EffectiveRun:
    """A finished effective run.

    Attributes:
        config: the config (``train.steps`` resolved with ``compare_gd``).
        data: the data set.
        spec: the network spec.
        ensemble: the initial ensemble.
        systems: each member's effective system.
        solutions: each member's solve through its blow-up.
        regime_ratios: each member's regime ratio (small: the effective regime).
        gd: the training from the same init (``compare_gd``), else None.
    """

    config: Config
    data: Dataset
    spec: NetworkSpec
    ensemble: Ensemble
    systems: list[EffectiveSystem]
    solutions: list[Blowup]
    regime_ratios: list[float]
    gd: TrainRun | None = None


def prepare_effective(cfg: Config, *, compare_gd: bool = False) -> Prepared:
    """Load, check and build what an effective run of ``cfg`` needs, once.

    Args:
        cfg: a validated network config.
        compare_gd: the run also trains (:func:`condensation.commands.prepare.prepare_run`
            prepared to train: ``z = 0`` refused, ``train.steps = "auto"`` resolved).

    Returns:
        The :class:`condensation.commands.prepare.Prepared` run.
    """
    return prepare_run(cfg, train=compare_gd)


def run_effective(
    cfg: Config | Prepared,
    *,
    form: str = "full",
    compare_gd: bool = False,
    tol: Tolerances = Tolerances(),
    checkpoint: Checkpoint | None = None,
) -> EffectiveRun:
    """The effective solve of every member (and with ``compare_gd`` the GD run,
    checkpointed by ``checkpoint``; the solves are recomputed on a resume).

    ``train.steps`` is the horizon of the ``compare_gd`` training alone (the solves
    run through the blow-up on their own clock): with ``compare_gd``, ``"auto"`` is
    resolved as ``train`` resolves it (:func:`condensation.commands.train.prepare_run`)
    and the returned run's config holds the number of steps; without, it is unused.
    The solves and the training start from the same prepared data and ensemble.

    Args:
        cfg: a validated network config, or a run prepared by
            :func:`prepare_effective` with the same ``compare_gd``.
        form: ``"full"``, ``"reduced"`` or ``"spectral"``.
        compare_gd: also train from the same initialisation.
        tol: the solver's tolerances.
        checkpoint: the training's checkpoint (``compare_gd``).

    Returns:
        The :class:`EffectiveRun`.
    """
    prep = cfg if isinstance(cfg, Prepared) else prepare_effective(cfg, compare_gd=compare_gd)
    cfg, data, spec, ens = prep.config, prep.data, prep.spec, prep.ensemble
    kappa = cfg.model.output_scale
    inputs.check_effective_scales(ens.scales, spec.depth, kappa * float(np.linalg.norm(data.z)))
    z = data.z
    if not has_drive(data):
        # labels uncorrelated with inputs (z = 0 up to rounding): no effective drive;
        # every member is reported as "no-drive" instead of being integrated forever
        form, z = "full", np.zeros_like(z)
    members = [[w[i] for w in ens.params] for i in range(ens.size)]
    systems = [
        build_system(p, z, activation=spec.activation, form=form, output_scale=kappa)
        for p in members
    ]
    ratios = [regime_ratio(p, data.x, data.y, spec.activation.fn, kappa) for p in members]
    warn_regime(max(ratios))  # the worst member
    sols = solve_batch(systems, tol)
    # every snapshot of every layer: the comparison uses rho = sum of squared norms over them all
    gd = run_training(prep, checkpoint=checkpoint, save="full") if compare_gd else None
    return EffectiveRun(cfg, data, spec, ens, systems, sols, ratios, gd)


def final_stage_summary(steps: dict) -> dict:
    """Entry time, violations after entry, condensation at the end (depth 3)."""
    if "fs_inner_violations" not in steps:
        return {
            "final_stage_entry_time": None,
            "final_stage_violations_after_entry": None,
            "condensed": None,
            "min_abs_cos_final": None,
        }
    bad = steps["fs_inner_violations"] + steps.get("fs_angle_violations", 0.0)
    inside = np.nonzero(bad == 0)[0]
    entry = int(inside[0]) if inside.size else None
    return {
        "final_stage_entry_time": float(steps["t"][entry]) if entry is not None else None,
        "final_stage_entry_resolution": (
            float(steps["t"][entry] - steps["t"][entry - 1]) if entry else None
        ),
        "final_stage_violations_after_entry": (
            int(np.count_nonzero(bad[entry:])) if entry is not None else None
        ),
        "final_stage_angle_checked": "fs_angle_violations" in steps,
        "min_abs_cos_final": float(steps["min_abs_cos"][-1]),
        "condensed": bool(steps["min_abs_cos"][-1] > CONDENSED_COS),
    }


def member_summary(system: EffectiveSystem, sol: Blowup) -> dict:
    out: dict = {"status": sol.status, "blew_up": sol.blew_up, "n_steps": sol.n_steps}
    if sol.degree == 1:
        out.update(
            growth_rate=sol.growth_rate,
            time_to_norm=sol.time_to_norm,
            growth_rate_predicted=system.z_norm,
        )
    out.update(
        T_star=sol.T_star if sol.blew_up else None,
        T_star_rel_error=sol.T_star_rel_error if sol.blew_up else None,
    )
    if sol.status == "no-drive":
        return out
    steps = sol.steps
    drifts = [float(np.max(steps[k])) for k in ("law_drift", "matrix_law_drift") if k in steps]
    out["max_invariant_drift"] = max(drifts) if drifts else None  # spectral: laws built in
    out["convergence"] = sol.convergence
    if system.depth == 3:
        t0, lo, hi = bounds_from_steps(steps, system.z_norm)
        out.update(T_star_lower=lo, T_star_upper=hi, bounds_taken_at=t0)
        out["criterion"] = blowup_criterion(*_initial_awc(system), system.z_norm)
        if sol.blew_up:
            out.update(check_three_layer_run(steps, sol.T_star, (lo, hi), system.z_norm))
        out.update(final_stage_summary(steps))
    else:
        out.update(
            T_star_lower=None,
            T_star_upper=None,
            criterion="no blow-up (linear)" if system.depth == 2 else "cannot tell",
        )
    return out


def _initial_awc(system: EffectiveSystem):
    b, w, a = system.initial_params
    return a[0], w, b @ system.z


def trained_label(cfg: Config, data: Dataset) -> str:
    """Prefix of the trained run's keys: ``gd`` for GD, ``trained`` for any other
    optimizer (whose comparison is labelled by ``comparison.effective_prediction``)."""
    return "gd" if optimizer_of(cfg, data).name == "gd" else "trained"


def summary(run: EffectiveRun) -> dict:
    """The ``summary.json`` of an effective run.

    Args:
        run: the effective run.

    Returns:
        The summary dict (``kind = "effective"``), members included.
    """
    members = []
    pre = trained_label(run.config, run.data)
    for i, (sysm, sol) in enumerate(zip(run.systems, run.solutions)):
        m = {
            "seed": run.ensemble.seeds[i],
            "scale": run.ensemble.scales[i],
            "regime_ratio": run.regime_ratios[i],
            **member_summary(sysm, sol),
        }
        if run.gd is not None:
            esc = run.gd.result.escape_time[i]
            m[f"{pre}_escape_time"] = float(esc) if np.isfinite(esc) else None
            if np.isfinite(esc) and sol.blew_up:
                m[f"{pre}_vs_T_star_rel_diff"] = float((esc - sol.T_star) / sol.T_star)
        members.append(m)
    extra = {}
    if run.gd is not None:  # what the comparison is: a theorem only for gd
        extra["comparison"] = optimizer_summary(optimizer_of(run.config, run.data))
    return {
        "kind": "effective",
        "form": run.systems[0].form,
        "depth": run.spec.depth,
        "widths": list(run.spec.widths),
        "activation": run.spec.activation.name,
        "z": run.data.z,
        "z_norm": float(np.linalg.norm(run.data.z)),
        "z_effective_norm": run.systems[0].z_norm,
        "members": members,
        **extra,
    }


def write_effective_run(run: EffectiveRun, out: Path) -> dict:
    """Write config, each member's solve, summary.json and figures into ``out``.

    Args:
        run: the effective run.
        out: the directory to write into (exists, empty).

    Returns:
        The summary, as written to ``summary.json``.
    """
    write_toml(out / "config.toml", run.config.to_dict())
    (out / "arrays").mkdir()
    for i, sol in enumerate(run.solutions):
        if sol.steps:
            save_arrays(out / "arrays" / f"member{i}_steps.npz", **sol.steps)
    s = summary(run)
    write_json(out / "summary.json", s)
    (out / "figures").mkdir()
    plot_effective_run(run, s, out / "figures")
    return s


# ---- the command: load -> prepare once -> run -> write -------------------------------
def check_options(given: Mapping[str, Any]) -> dict[str, Any]:
    """The options of ``condensation effective``, checked, with their defaults.

    Args:
        given: any of ``form`` (``"full"``), ``compare_gd`` (False), ``rtol`` (1e-12).

    Returns:
        All three.

    Raises:
        InputError: an unknown option, form, or an rtol outside (0, 1e-3).
    """
    opts = {"form": "full", "compare_gd": False, "rtol": 1e-12}
    for name in given:
        if name not in opts:
            raise InputError(name, given[name], "unknown option", f"use {', '.join(opts)}")
    opts.update(given)
    if opts["form"] not in FORMS:
        raise InputError("--form", opts["form"], "unknown form", f"use one of {', '.join(FORMS)}")
    if not 0 < opts["rtol"] < 1e-3:
        raise InputError("--rtol", opts["rtol"], "must be in (0, 1e-3)", "use e.g. --rtol 1e-12")
    opts["compare_gd"] = bool(opts["compare_gd"])
    return opts


def load(path: Path | None, overrides: Sequence[str] = ()) -> Config:
    """The validated network config of ``condensation effective`` (the same as ``train``'s).

    Args:
        path: a TOML config (None: the built-in defaults).
        overrides: ``section.key=value`` strings (``--set``).

    Returns:
        The :class:`condensation.config.network.Config`.
    """
    from condensation.config.network import load_config

    return load_config(path, list(overrides))


def _run(prep: Prepared, opts: Mapping, progress, checkpoint) -> EffectiveRun:
    rtol = opts["rtol"]
    return run_effective(
        prep,
        form=opts["form"],
        compare_gd=opts["compare_gd"],
        tol=Tolerances(rtol=rtol, atol=rtol * 1e-2),
        checkpoint=checkpoint,
    )


COMMAND = Command(
    name="effective",
    load=load,
    options=check_options,
    prepare=lambda cfg, opts: prepare_effective(cfg, compare_gd=opts["compare_gd"]),
    run=_run,
    write=write_effective_run,
    key=lambda prep, opts: run_key(
        "effective", prep.config.to_dict(), opts["form"], opts["compare_gd"], opts["rtol"]
    ),
    output_bytes=lambda prep, opts: output_bytes(prep, compare_gd=opts["compare_gd"]),
)
