"""``condensation matrix``."""

from __future__ import annotations

import typer

from condensation.cli._common import (
    ConfigArg,
    OutOpt,
    OverwriteOpt,
    ResumeOpt,
    SetOpt,
    console,
    progress_bar,
    run_command,
)
from condensation.models import member_label


def _fmt(v, spec: str = ".3g") -> str:
    return "-" if v is None else format(v, spec)


def matrix_cmd(
    config: ConfigArg = None,
    set_: SetOpt = None,
    out: OutOpt = ...,
    overwrite: OverwriteOpt = False,
    resume: ResumeOpt = False,
) -> None:
    """Deep matrix factorisation / completion by GD from small initialisation.

    Example: condensation matrix configs/matrix_completion.toml --set model.depth=2 --out runs/mc-d2
    """
    # the registry's matrix command: load -> prepare once (problem loaded and
    # checked: bad files and sizes, no drive, a fast-forward time unit beyond
    # float64 fail here, before anything runs; ensemble built) -> run -> write
    done = run_command(
        "matrix",
        config,
        set_ or [],
        out,
        overwrite=overwrite,
        resume=resume,
        progress=lambda prep: progress_bar(prep.config.train.steps, "GD steps"),
    )
    if done is None:  # --resume of a finished run
        return
    s = done.summary
    for i, m in enumerate(s["members"]):  # matrix members are generated: named by seed
        console.print(
            f"depth {m['depth']} {member_label(m['seed'], m['scale'], i, None)}: {m['status']}, "
            f"test RMSE {_fmt(m['test_rmse'])}, effective rank {_fmt(m['effective_rank'], '.4g')}, "
            f"escape t = {_fmt(m['escape_time'], '.5g')}, "
            f"T* = {_fmt(m['T_star_effective'], '.5g')}",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
        if m.get("half_times_closed_form"):  # THEORY §10's setting: each mode's half-time
            pairs = zip(m["half_times"], m["half_times_closed_form"])
            console.print(
                "  half-times (measured / closed form): "
                + ", ".join(f"{_fmt(a, '.5g')} / {_fmt(b, '.5g')}" for a, b in pairs)
            )
    for line in s.get("notes", []):
        console.print(line, markup=False, highlight=False)
    if "nuclear_norm_baseline" in s:
        b = s["nuclear_norm_baseline"]
        console.print(
            f"min nuclear norm: test RMSE {_fmt(b['test_rmse'])}, "
            f"effective rank {_fmt(b['effective_rank'], '.4g')}"
        )
    console.print(f"wrote {out}")


def register(app: typer.Typer) -> None:
    app.command("matrix")(matrix_cmd)
