"""``condensation matrix``."""

from __future__ import annotations

import typer

from condensation.cli._common import (
    ConfigArg,
    OutOpt,
    OverwriteOpt,
    ResumeOpt,
    SetOpt,
    already_done,
    console,
    guarded_run,
    progress_bar,
)
from condensation.commands.matrix import (
    check_fast_forward_scales,
    load_checked_problem,
    output_bytes,
    run_matrix,
    write_matrix_run,
)
from condensation.matrix import init_ensemble, load_matrix_config
from condensation.models import member_label
from condensation.store.checkpoint import run_key
from condensation.store.rundir import run_directory


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
    cfg = load_matrix_config(config, set_ or [])
    key = run_key("matrix", cfg.to_dict())
    if already_done(out, key, resume):
        return
    problem = load_checked_problem(cfg)  # bad files and sizes fail here, before anything runs
    if cfg.train.fast_forward:  # a time unit beyond float64: refused before anything runs
        check_fast_forward_scales(init_ensemble(cfg, problem.shape), cfg.model.depth)
    need = output_bytes(cfg, problem)
    with guarded_run(out, key, overwrite=overwrite, resume=resume, need_bytes=need) as ck:
        with progress_bar(cfg.train.steps, "GD steps") as update:
            run = run_matrix(cfg, progress=update, problem=problem, checkpoint=ck)
        with run_directory(out, overwrite, key=key) as tmp:
            s = write_matrix_run(run, tmp)
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
