"""``condensation effective``."""

from __future__ import annotations

import warnings
from contextlib import contextmanager
from typing import Annotated

import typer

from condensation.cli._common import (
    ConfigArg,
    OutOpt,
    OverwriteOpt,
    ResumeOpt,
    SetOpt,
    console,
    console_err,
    num,
    print_literal,
    run_command,
)
from condensation.models import member_label


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
    # the registry's effective command: load -> options (--form, --rtol checked) ->
    # prepared once: with --compare-gd, z = 0 is refused and train.steps = "auto"
    # (the horizon of the training alone) resolved as train resolves it, before
    # anything is sized, keyed or written (without, the solves run through the
    # blow-up on their own clock and do not read it) -> run -> write
    done = run_command(
        "effective",
        config,
        set_ or [],
        out,
        overwrite=overwrite,
        resume=resume,
        options={"form": form, "compare_gd": compare_gd, "rtol": rtol},
        progress=_solving,
    )
    if done is None:  # --resume of a finished run
        return
    cfg, run, s = done.prepared.config, done.run, done.summary
    for line in run.gd.notes if run.gd is not None else ():
        console.print(line, markup=False, highlight=False, soft_wrap=True)
    for i, m in enumerate(s["members"]):
        console.print(
            member_line(m, member_label(m["seed"], m["scale"], i, cfg.init.path), s),
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
    note = angle_note(s)
    if note:
        console.print(note, markup=False, highlight=False, soft_wrap=True)
    console.print(f"wrote {out}", markup=False, highlight=False, soft_wrap=True)


@contextmanager
def _solving(prepared):
    """Around the run: a spinner, and the regime warnings printed once it stops."""
    # imported here, not at the top: it brings in diffrax (~0.4 s), which every
    # other command (and a sweep's worker, which imports this CLI) does without
    from condensation.effective.system import RegimeWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RegimeWarning)
        with console_err.status("integrating the effective dynamics"):
            yield None
    for w in caught:
        if issubclass(w.category, RegimeWarning):
            print_literal("warning:", w.message, "yellow")


def member_line(m: dict, label: str, s: dict) -> str:
    """One member of an effective summary ``s`` on one console line (numbers to at
    most 6 significant digits)."""
    line = f"{label}: {m['status']}"
    if m["status"] == "no-drive":
        line += " (z = mean(y x) = 0: the labels are uncorrelated with the inputs)"
    if m.get("T_star") is not None:
        line += (
            f", T* = {num(m['T_star'], '-')} (rel. error "
            f"{_fmt(m.get('T_star_rel_error'), '.1e')}, bounds "
            f"[{num(m.get('T_star_lower'), '-')}, {num(m.get('T_star_upper'), '-')}])"
        )
    if m.get("growth_rate") is not None:
        line += (
            f", growth rate {num(m['growth_rate'], '-')}, "
            f"time to 1e6x norm {num(m.get('time_to_norm'), '-')}"
        )
    if "gd_escape_time" in m:
        line += f", GD escape {num(m['gd_escape_time'])}"
    if "trained_escape_time" in m:
        c = s["comparison"]
        reach = c["effective_prediction"].split(":")[0]
        line += f", {c['name']} escape {num(m['trained_escape_time'])} ({reach} for {c['name']})"
    if m.get("final_stage_entry_time") is not None:
        line += f", final stage from t = {num(m['final_stage_entry_time'])}"
    return line


def angle_note(s: dict) -> str | None:
    """The line saying that the final-stage entry times of summary ``s`` ignore the
    angle constraint (``final_stage_angle_checked = false``), or None."""
    unchecked = [
        m
        for m in s["members"]
        if m.get("final_stage_angle_checked") is False
        and m.get("final_stage_entry_time") is not None
    ]
    if not unchecked:
        return None
    if s["form"] == "spectral":
        return (
            "note: the spectral form's final-stage entry times ignore the angle constraint "
            "(it tracks c, not W; final_stage_angle_checked = false in summary.json); "
            "use --form full for the checked entry"
        )
    from condensation.effective.system import MATRIX_LAW_MAX_WIDTH

    return (
        "note: the final-stage entry times above ignore the angle constraint (not checked "
        f"at hidden widths above {MATRIX_LAW_MAX_WIDTH}; final_stage_angle_checked = false "
        "in summary.json)"
    )


def register(app: typer.Typer) -> None:
    app.command("effective")(effective_cmd)
