"""One cell = one ordinary run directory of its command, by the CLI's own functions.

:func:`run_cell` is the task the engine runs: it rebuilds the validated config
from its plain dict, calls the same library functions as ``condensation
train`` / ``effective`` / ``matrix`` and writes ``out_dir`` atomically (built
beside it, renamed when complete), so a cell equals the single run and a
directory that exists is complete.
"""

from __future__ import annotations

import warnings
from pathlib import Path

from condensation.store.rundir import SUMMARY, is_run_dir, run_directory
from condensation.sweep.spec import load_command_config


def run_cell(command: str, config, out_dir: str) -> dict:
    """Run one cell into ``out_dir``.

    Args:
        command: ``train``, ``effective`` or ``matrix``.
        config: the cell's validated config object (a plain dict, e.g. a
            config.toml's, is built and validated first).
        out_dir: the cell's run directory (written atomically).

    Returns:
        Its summary (as written to summary.json).
    """
    return run_command(command, load_command_config(command, config), Path(out_dir))


def run_command(command: str, cfg, out: Path) -> dict:
    """``command`` on a validated config, written to ``out`` as its single run would
    be (the command registry takes this over at merge: load -> prepare -> run -> write)."""
    if command == "train":
        from condensation.commands.train import run_training, write_train_run

        run = run_training(cfg)
        with run_directory(out) as tmp:
            return write_train_run(run, tmp)
    if command == "effective":
        from condensation.commands.effective import run_effective, write_effective_run
        from condensation.effective.system import RegimeWarning

        with warnings.catch_warnings():  # each member's regime_ratio is in the summary
            warnings.simplefilter("ignore", RegimeWarning)
            run = run_effective(cfg)
        with run_directory(out) as tmp:
            return write_effective_run(run, tmp)
    if command == "matrix":
        from condensation.commands.matrix import run_matrix, write_matrix_run
        from condensation.matrix import load_problem

        run = run_matrix(cfg, problem=load_problem(cfg.problem))
        with run_directory(out) as tmp:
            return write_matrix_run(run, tmp)
    raise ValueError(f"unknown command {command!r}")  # parse_spec checked it


def read_cell(out_dir: Path) -> dict | None:
    """The summary of a complete cell directory, else None."""
    import json

    if out_dir.is_symlink() or not is_run_dir(out_dir):  # a cell is never a link
        return None
    return json.loads((out_dir / SUMMARY).read_text())
