"""One cell = one ordinary run directory of its command, by the CLI's own functions.

:func:`run_cell` is the task the engine runs: it takes the cell's validated
config and runs it through the command registry, as ``condensation train`` /
``effective`` / ``matrix`` do, writing ``out_dir`` atomically (built
beside it, renamed when complete), so a cell equals the single run and a
directory that exists is complete.
"""

from __future__ import annotations

import warnings
from pathlib import Path

from condensation.store.rundir import SUMMARY, is_run_dir
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
    be: the command registry's prepare -> run -> write (:func:`condensation.commands.execute`)."""
    from condensation.commands import execute

    if command == "effective":
        from condensation.effective.system import RegimeWarning

        with warnings.catch_warnings():  # each member's regime_ratio is in the summary
            warnings.simplefilter("ignore", RegimeWarning)
            return execute(command, cfg, out)
    return execute(command, cfg, out)


def read_cell(out_dir: Path) -> dict | None:
    """The summary of a complete cell directory, else None."""
    import json

    if out_dir.is_symlink() or not is_run_dir(out_dir):  # a cell is never a link
        return None
    return json.loads((out_dir / SUMMARY).read_text())
