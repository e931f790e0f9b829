"""One command shape (issue 21): the registry of commands.

Every registered command is load -> options -> prepare once -> run -> write,
walked alike by the command line and by :func:`condensation.commands.execute`
(a sweep cell): the same config gives the same ``summary.json`` either way; the
command line finds its commands in the registry; sizing lives in one place.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

import pytest

from condensation import commands
from condensation.commands import registry
from condensation.errors import InputError

NETWORK = textwrap.dedent(
    """
    [data]
    dataset = "teacher"
    n = 16
    d = 3
    seed = 0

    [model]
    depth = 3
    widths = [4, 4]
    activation = "tanh"

    [init]
    scale = 3e-2
    seed = 0

    [train]
    lr = 0.2
    steps = 40
    snapshots = 4
    linear_snapshots = 2
    """
)
MATRIX = textwrap.dedent(
    """
    [problem]
    kind = "completion"
    n = 5
    rank = 1
    observed = 15
    seed = 0

    [model]
    depth = 2

    [init]
    scale = 1e-2
    seed = 0

    [train]
    lr = 0.05
    steps = 40
    snapshots = 4
    linear_snapshots = 2
    """
)
# command -> (config text, CLI flags, the same as registry options)
CASES = {
    "train": (NETWORK, [], {}),
    "effective": (NETWORK, ["--form", "spectral"], {"form": "spectral"}),
    "matrix": (MATRIX, [], {}),
}


@pytest.fixture
def config_file(tmp_path):
    def write(name: str) -> Path:
        path = tmp_path / f"{name}.toml"
        path.write_text(CASES[name][0])
        return path

    return write


def test_the_built_in_commands_are_registered():
    assert commands.names()[:3] == ["train", "effective", "matrix"]
    for name in ("train", "effective", "matrix"):
        cmd = commands.get(name)
        assert isinstance(cmd, commands.Command) and cmd.name == name


def test_an_unknown_command_is_one_input_error():
    with pytest.raises(InputError, match="unknown command.*train, effective, matrix"):
        commands.get("trian")


@pytest.mark.parametrize("name", list(CASES))
def test_registry_run_equals_the_cli_run(cli_main, config_file, tmp_path, name):
    """The CLI's run directory and execute()'s (a sweep cell's) hold the same
    summary.json, byte for byte, and the same config.toml."""
    path = config_file(name)
    _, flags, options = CASES[name]
    code, err = cli_main(name, str(path), *flags, "--out", str(tmp_path / "cli"))
    assert code == 0, err
    cmd = commands.get(name)
    s = commands.execute(name, cmd.load(path, []), tmp_path / "registry", options)
    assert s["kind"] == name
    for file in ("summary.json", "config.toml"):
        assert (tmp_path / "registry" / file).read_text() == (tmp_path / "cli" / file).read_text()
    assert json.loads((tmp_path / "cli" / "summary.json").read_text())["members"]


def test_the_cli_runs_the_registered_command(cli_main, config_file, tmp_path):
    """A command standing in for ``train`` in the registry is what ``condensation
    train`` runs: the CLI walks the registry's steps, not its own copy."""
    real = commands.get("train")
    calls: Counter = Counter()

    def step(name, fn):
        def counted(*args):
            calls[name] += 1
            return fn(*args)

        return counted

    spy = dataclasses.replace(
        real, **{s: step(s, getattr(real, s)) for s in ("load", "prepare", "run", "write")}
    )
    commands.register(spy, replace=True)
    try:
        code, err = cli_main("train", str(config_file("train")), "--out", str(tmp_path / "run"))
    finally:
        registry.unregister("train")
    assert code == 0, err
    assert calls == {"load": 1, "prepare": 1, "run": 1, "write": 1}
    assert commands.get("train") is real  # the built-in one is back


def test_a_new_command_runs_through_execute_and_the_cli_driver(tmp_path):
    """A registered command needs only its steps: execute() and the CLI's driver
    walk them, with the disk check, the key and --resume."""
    from condensation.cli._common import run_command
    from condensation.store.checkpoint import run_key

    def write(run, out):
        (out / "summary.json").write_text(json.dumps(run))
        return run

    echo = commands.Command(
        name="echo-test",
        load=lambda path, overrides: {"sets": list(overrides)},
        prepare=lambda cfg, opts: {**cfg, "prepared": True},
        run=lambda prep, opts, progress, checkpoint: {"kind": "echo", **prep},
        write=write,
        key=lambda prep, opts: run_key("echo-test", prep),
        output_bytes=lambda prep, opts: 1000.0,
    )
    commands.register(echo)
    try:
        assert "echo-test" in commands.names()
        with pytest.raises(ValueError, match="registered already"):
            commands.register(echo)
        s = commands.execute("echo-test", {"sets": ["a=1"]}, tmp_path / "e")
        assert s == {"kind": "echo", "sets": ["a=1"], "prepared": True}
        assert json.loads((tmp_path / "e" / "summary.json").read_text()) == s
        out = tmp_path / "c"
        done = run_command("echo-test", None, ["b=2"], out, overwrite=False, resume=False)
        assert done.summary == {"kind": "echo", "sets": ["b=2"], "prepared": True}
        again = run_command("echo-test", None, ["b=2"], out, overwrite=False, resume=True)
        assert again is None  # --resume of the finished run: nothing to do
        with pytest.raises(InputError, match="no such option"):
            commands.execute("echo-test", {}, tmp_path / "x", {"form": "full"})
    finally:
        registry.unregister("echo-test")
    assert "echo-test" not in commands.names()
    assert not (tmp_path / "x").exists()


def test_effective_options_are_checked_before_anything_runs(tmp_path):
    cmd = commands.get("effective")
    assert cmd.options({}) == {"form": "full", "compare_gd": False, "rtol": 1e-12}
    for bad, field in (({"form": "fancy"}, "--form"), ({"rtol": 0.1}, "--rtol"), ({"x": 1}, "x")):
        with pytest.raises(InputError) as e:
            commands.execute("effective", cmd.load(None, []), tmp_path / "run", bad)
        assert e.value.field == field
    assert not (tmp_path / "run").exists()


def test_execute_prepares_the_data_once(monkeypatch, config_file, tmp_path):
    import condensation.commands.prepare as prep

    counts: Counter = Counter()
    for name in ("load_dataset", "init_ensemble"):
        fn = getattr(prep, name)

        def counted(*a, _fn=fn, _name=name, **k):
            counts[_name] += 1
            return _fn(*a, **k)

        monkeypatch.setattr(prep, name, counted)
    cfg = commands.get("train").load(config_file("train"), [])
    commands.execute("train", cfg, tmp_path / "run")
    assert (tmp_path / "run" / "summary.json").is_file()
    assert counts == {"load_dataset": 1, "init_ensemble": 1}


def test_output_sizes_live_in_one_module_without_the_train_command():
    """``effective`` sizes its output (and ``--compare-gd``'s training) with the
    functions of ``commands.sizing``, which does not import the train command."""
    from condensation.commands import effective, matrix, sizing, train

    assert effective.output_bytes is sizing.effective_output_bytes
    assert train.output_bytes is sizing.train_output_bytes
    assert matrix.output_bytes is sizing.matrix_output_bytes
    code = (
        "import sys, condensation.commands.sizing\n"
        "print(sorted(m for m in sys.modules if m.startswith('condensation.commands')))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "condensation.commands.sizing" in r.stdout
    assert "condensation.commands.train'" not in r.stdout
    assert "condensation.commands.effective" not in r.stdout


def test_moved_names_stay_importable_from_their_old_homes():
    from condensation.commands import matrix, train
    from condensation.experiments import matrix_completion

    moved = (
        "prepare prepare_run Prepared has_drive resolve_steps member_summaries summary "
        "optimizer_summary snapshot_plan plot_train_run never_moved member_status load_checked_data"
    )
    for name in moved.split():
        assert callable(getattr(train, name)), name
    for name in ("member_summaries", "summary", "t_star_notes", "plot_matrix_run"):
        assert callable(getattr(matrix, name)), name
    with pytest.warns(DeprecationWarning, match="experiments.matrix_completion"):
        assert matrix.run_experiment is matrix_completion.run_experiment
    with pytest.warns(DeprecationWarning):
        assert matrix.EXPERIMENT_QUICK == matrix_completion.QUICK


def test_no_command_module_is_over_400_lines():
    root = Path(commands.__file__).parent
    sizes = {p.name: len(p.read_text().splitlines()) for p in root.glob("*.py")}
    assert {name: n for name, n in sizes.items() if n > 400} == {}
