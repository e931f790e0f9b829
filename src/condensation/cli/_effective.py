"""``condensation effective``."""

from __future__ import annotations

import warnings
from typing import Annotated

import typer

from condensation.checkpoint import run_key
from condensation.cli._common import (
    ConfigArg,
    OutOpt,
    OverwriteOpt,
    ResumeOpt,
    SetOpt,
    already_done,
    console,
    console_err,
    guarded_run,
    print_literal,
)
from condensation.config import load_config
from condensation.errors import InputError
from condensation.runs.train import check_drive, load_checked_data, output_bytes
from condensation.store import FIGURE_BYTES, run_directory


def _fmt(v, spec: str) -> str:
    """A summary number for the terminal; "-" where it is not defined (None)."""
    return "-" if v is None else format(v, spec)


def effective_cmd(
    config: ConfigArg = None,
    set_: SetOpt = None,
    out: OutOpt = ...,
    form: Annotated[
        str,
        typer.Option(
            help="full (any depth), reduced (a, W, c) or spectral (c only; fastest), depth 3."
        ),
    ] = "full",
    compare_gd: Annotated[
        bool,
        typer.Option(
            "--compare-gd",
            help="Also train from the same init (train.optimizer, default GD) and compare.",
        ),
    ] = False,
    rtol: Annotated[float, typer.Option(help="Relative tolerance of the solver.")] = 1e-12,
    overwrite: OverwriteOpt = False,
    resume: ResumeOpt = False,
) -> None:
    """Integrate the effective dynamics of each ensemble member through its blow-up.

    Example: condensation effective configs/default.toml --compare-gd --out runs/effective

    With --resume the --compare-gd training continues from its checkpoint; the
    effective solves (seconds) are recomputed, to the same numbers.
    """
    # imported here, not at the top: they bring in diffrax (~0.4 s), which every
    # other command (and a sweep's worker, which imports this CLI) does without
    from condensation.blowup import Tolerances
    from condensation.effective import FORMS, RegimeWarning
    from condensation.runs.effective import run_effective, write_effective_run

    cfg = load_config(config, set_ or [])
    if form not in FORMS:
        raise InputError("--form", form, "unknown form", f"use one of {', '.join(FORMS)}")
    if not 0 < rtol < 1e-3:
        raise InputError("--rtol", rtol, "must be in (0, 1e-3)", "use e.g. --rtol 1e-12")
    if compare_gd:  # z = 0: nothing to train against, refused before anything is written
        check_drive(cfg, load_checked_data(cfg))
    key = run_key("effective", cfg.to_dict(), form, compare_gd, rtol)
    if already_done(out, key, resume):
        return
    need = FIGURE_BYTES * (1 + len(cfg.member_seeds_scales)) + (
        output_bytes(cfg) if compare_gd else 0
    )
    with guarded_run(out, key, overwrite=overwrite, resume=resume, need_bytes=need) as ck:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", RegimeWarning)
            with console_err.status("integrating the effective dynamics"):
                run = run_effective(
                    cfg,
                    form=form,
                    compare_gd=compare_gd,
                    tol=Tolerances(rtol=rtol, atol=rtol * 1e-2),
                    checkpoint=ck,
                )
        for w in caught:
            if issubclass(w.category, RegimeWarning):
                print_literal("warning:", w.message, "yellow")
        with run_directory(out, overwrite, key=key) as tmp:
            s = write_effective_run(run, tmp)
    for m in s["members"]:
        line = f"seed {m['seed']} eps {m['scale']:.3g}: {m['status']}"
        if m["status"] == "no-drive":
            line += " (z = mean(y x) = 0: the labels are uncorrelated with the inputs)"
        if m.get("T_star") is not None:
            line += (
                f", T* = {_fmt(m['T_star'], '.10g')} (rel. error "
                f"{_fmt(m.get('T_star_rel_error'), '.1e')}, bounds "
                f"[{_fmt(m.get('T_star_lower'), '.6g')}, {_fmt(m.get('T_star_upper'), '.6g')}])"
            )
        if m.get("growth_rate") is not None:
            line += (
                f", growth rate {_fmt(m['growth_rate'], '.6g')}, "
                f"time to 1e6x norm {_fmt(m.get('time_to_norm'), '.6g')}"
            )
        if "gd_escape_time" in m:
            line += f", GD escape {m['gd_escape_time']}"
        if "trained_escape_time" in m:
            c = s["comparison"]
            reach = c["effective_prediction"].split(":")[0]
            line += f", {c['name']} escape {m['trained_escape_time']} ({reach} for {c['name']})"
        if m.get("final_stage_entry_time") is not None:
            line += f", final stage from t = {m['final_stage_entry_time']:.6g}"
        console.print(line, highlight=False)
    console.print(f"wrote {out}")


def register(app: typer.Typer) -> None:
    app.command("effective")(effective_cmd)
