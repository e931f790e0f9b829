"""``condensation train``."""

from __future__ import annotations

from typing import Annotated

import typer

from condensation.cli._common import (
    ConfigArg,
    OutOpt,
    OverwriteOpt,
    ResumeOpt,
    SetOpt,
    console,
    num,
    progress_bar,
    run_command,
)
from condensation.models import member_label


def train_cmd(
    config: ConfigArg = None,
    set_: SetOpt = None,
    out: OutOpt = ...,
    overwrite: OverwriteOpt = False,
    resume: ResumeOpt = False,
    fast_forward: Annotated[
        bool,
        typer.Option(
            "--fast-forward",
            help="Integrate the effective dynamics up to the hand-off, then GD "
            "(same as --set train.fast_forward=true).",
        ),
    ] = False,
) -> None:
    """Train an ensemble (full-batch GD, or train.optimizer) and measure condensation.

    Example: condensation train configs/default.toml --set init.scale=1e-4 --out runs/eps1e-4
    """
    extra = ["train.fast_forward=true"] if fast_forward else []
    # the registry's train command: load -> prepare once (data, checks, ensemble,
    # "auto" resolved) -> run -> write; the size estimate, the run key and the run
    # all use the same prepared objects
    done = run_command(
        "train",
        config,
        [*(set_ or []), *extra],
        out,
        overwrite=overwrite,
        resume=resume,
        progress=lambda prep: progress_bar(
            prep.config.train.steps,
            # fast-forward: the effective trajectory's steps first, then GD's
            "steps (fast-forward, then gd)"
            if prep.config.train.fast_forward
            else f"{prep.config.train.optimizer} steps",
        ),
    )
    if done is None:  # --resume of a finished run
        return
    cfg, s = done.prepared.config, done.summary
    for line in s["notes"]:
        console.print(line, markup=False, highlight=False, soft_wrap=True)
    for i, m in enumerate(s["members"]):
        console.print(
            f"{member_label(m['seed'], m['scale'], i, cfg.init.path)}: {m['status']}, "
            f"escape t = {num(m['escape_time'])}, "
            f"|cos|>0.95: {num(m['frac_abs_cos_above_0_95'])}, "
            f"sigma2/sigma1(W): {num(m['w_sigma_ratio'])}; "
            f"plateau exit t = {num(m['plateau_exit_time'])}, median |cos| there "
            f"{_fmt(m['median_abs_cos_at_plateau_exit'])}, peak {_fmt(m['peak_median_abs_cos'])} "
            f"at t = {num(m['peak_median_abs_cos_time'])}",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
    console.print(f"wrote {out}", markup=False, highlight=False, soft_wrap=True)


def _fmt(v) -> str:
    return "None" if v is None else f"{v:.4f}"


def register(app: typer.Typer) -> None:
    app.command("train")(train_cmd)
    # typer maps the parameter name set_ to --set via the Option declaration
