"""The console a researcher can paste from: numbers to at most 6 significant digits,
lines never wrapped by the program (piped or at any terminal width), ``--version``,
``run --help`` listing the experiments, an eta that does not count start-up work, and
other libraries' warnings kept in the run's log.txt instead of the terminal."""

from __future__ import annotations

import io
import re
import warnings

import pytest
from helpers import console_problems

from condensation.progress import Progress, log_line, session_log

_STEPS = ["--set", "train.steps=12", "--set", "train.snapshots=2"]
_STEPS += ["--set", "train.linear_snapshots=1"]


def test_lines_are_never_wrapped_and_numbers_are_short(cli_streams, monkeypatch, tmp_path):
    """At a 20-column terminal (COLUMNS, as a pipe into a narrow window gets), every
    line the program prints stays one line and every number has <= 6 digits."""
    monkeypatch.setenv("COLUMNS", "20")
    out = tmp_path / "run"
    code, stdout, stderr = cli_streams("train", *_STEPS, "--out", str(out))
    assert code == 0, stderr
    text = stdout + stderr
    assert console_problems(text) == [], text
    assert re.search(r"^seed 0 eps 0\.001: \w+, escape t = .* at t = \S+$", stdout, re.M), stdout
    assert re.search(r"^wrote \S+$", stdout, re.M)
    assert re.search(r"^warning: member 0 .* or use \"auto\"$", stdout, re.M), stdout
    assert "gd steps 12/12 done" in (out / "log.txt").read_text()


def test_version(cli_streams):
    from condensation import __version__

    code, out, _ = cli_streams("--version")
    assert code == 0 and out.strip() == f"condensation {__version__}"


def test_run_help_lists_every_experiment(cli_streams, monkeypatch):
    from condensation import experiments

    monkeypatch.setenv("COLUMNS", "400")
    code, out, _ = cli_streams("run", "--help")
    assert code == 0
    listed = out.split("Experiments:")[1].replace("│", " ").split(",")
    assert [n.strip() for n in listed] == experiments.names()


def test_help_text_is_literal(cli_streams, monkeypatch):
    monkeypatch.setenv("COLUMNS", "400")
    code, out, _ = cli_streams("sweep", "--help")
    assert code == 0 and "[sweep] table" in out


def test_eta_counts_from_the_first_unit_not_from_start_up():
    now = [0.0]
    p = Progress(10, "step", stream=io.StringIO(), clock=lambda: now[0])
    now[0] = 100.0  # the first unit took 100 s: compilation
    p.update(1)
    assert "eta" not in p.line()  # no rate yet beyond start-up
    now[0] = 102.0  # then 1 s per unit
    p.update(3)
    assert p.line().startswith("step 3/10 done, eta 7 s"), p.line()


def test_warnings_of_other_libraries_go_to_the_log_not_the_terminal(capsys):
    from condensation.cli._common import show_warning
    from condensation.config.checks import UnderflowWarning

    with session_log() as lines:
        log_line("gd steps 1/2 done")
        dask = UserWarning("Port 8787 is already in use")
        show_warning(dask, UserWarning, "/x/distributed/node.py", 1)
        show_warning(UnderflowWarning("eps**3 underflows"), UnderflowWarning, "/x/y.py", 2)
    err = capsys.readouterr().err
    assert "8787" not in err and "eps**3 underflows" in err
    assert [ln.split(" ", 2)[2][:18] for ln in lines] == [
        "gd steps 1/2 done",
        "warning: Port 8787",
        "warning: eps**3 un",
    ]


@pytest.mark.filterwarnings("always::UserWarning")
def test_a_warning_during_a_command_lands_in_log_txt(cli_streams, tmp_path, monkeypatch):
    """A third-party warning raised while the command runs: absent from the terminal,
    present in the run directory's log.txt with the progress lines."""
    from condensation.commands import train as train_command

    real = train_command.run_training

    def noisy(*args, **kwargs):
        warnings.warn("a third-party notice", UserWarning, stacklevel=1)
        return real(*args, **kwargs)

    monkeypatch.setattr(train_command, "run_training", noisy)
    out = tmp_path / "run"
    code, stdout, stderr = cli_streams("train", *_STEPS, "--out", str(out))
    assert code == 0
    log = (out / "log.txt").read_text()
    assert "gd steps 12/12 done" in log
    assert ("a third-party notice" in log) and ("a third-party notice" not in stderr + stdout)
