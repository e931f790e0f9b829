"""One command call prepares its data and initial ensemble once (issue 21): the
size estimate, the run key, ``train.steps = "auto"`` and the run itself all use
the same prepared objects; ``effective`` sizes its output without the train
command's CLI module."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter

import pytest

import condensation.commands.prepare
import condensation.data
import condensation.models

SMALL = [
    "model.widths=[10, 10]",
    "init.scale=1e-2",
    "train.lr=0.05",
    "train.snapshots=2",
    "train.linear_snapshots=1",
]


@pytest.fixture
def calls(monkeypatch):
    """Counts of the data loader's and ``init_ensemble``'s calls, wherever they are
    called from (the modules' own names and the names imported from them)."""
    counts: Counter = Counter()

    def counting(name, fn):
        def wrapper(*args, **kwargs):
            counts[name] += 1
            return fn(*args, **kwargs)

        return wrapper

    load = counting("load_dataset", condensation.data.load_dataset)
    init = counting("init_ensemble", condensation.models.init_ensemble)
    for module in (condensation.data, condensation.commands.prepare):
        monkeypatch.setattr(module, "load_dataset", load)
    for module in (condensation.models, condensation.commands.prepare):
        monkeypatch.setattr(module, "init_ensemble", init)
    return counts


@pytest.mark.parametrize(
    "command, extra",
    [
        ("train", ["train.steps=30"]),
        ("train", ["train.steps=auto"]),
        ("effective", ["train.steps=auto"]),
        # the same preparation; slow for their compiles (fast-forward, a second solve)
        pytest.param(
            "train", ["train.steps=30", "train.fast_forward=true"], marks=pytest.mark.slow
        ),
        pytest.param("effective", ["train.steps=30"], marks=pytest.mark.slow),
    ],
)
def test_one_call_prepares_once(cli_main, calls, tmp_path, command, extra):
    flags = ["--compare-gd"] if command == "effective" else []
    sets = [a for kv in [*SMALL, *extra] for a in ("--set", kv)]
    code, err = cli_main(command, *flags, *sets, "--out", str(tmp_path / "run"))
    assert code == 0, err
    assert (tmp_path / "run" / "summary.json").is_file()
    assert calls == {"load_dataset": 1, "init_ensemble": 1}


def test_effective_without_compare_prepares_once(cli_main, calls, tmp_path):
    sets = [a for kv in SMALL for a in ("--set", kv)]
    code, err = cli_main("effective", *sets, "--out", str(tmp_path / "run"))
    assert code == 0, err
    assert calls == {"load_dataset": 1, "init_ensemble": 1}


def test_resume_of_a_done_run_is_keyed_by_the_prepared_config(cli_main, calls, tmp_path):
    """The run key is the prepared config's ("auto" resolved): a second call with
    --resume finds the run done (and prepares once to know its key)."""
    sets = [a for kv in [*SMALL, "train.steps=auto"] for a in ("--set", kv)]
    out = str(tmp_path / "run")
    assert cli_main("train", *sets, "--out", out)[0] == 0
    calls.clear()
    code, err = cli_main("train", *sets, "--out", out, "--resume")
    assert code == 0, err
    assert calls == {"load_dataset": 1, "init_ensemble": 1}


def test_effective_cli_does_not_import_the_train_cli():
    """``condensation.cli._effective`` (and what it imports) sizes its output without
    ``condensation.cli._train``: the package ``condensation.cli``, which registers
    every command, is stood in for by a bare package so that only the module's own
    imports count."""
    code = (
        "import sys, types, condensation, pathlib\n"
        "pkg = types.ModuleType('condensation.cli')\n"
        "pkg.__path__ = [str(pathlib.Path(condensation.__file__).parent / 'cli')]\n"
        "sys.modules['condensation.cli'] = pkg\n"
        "import condensation.cli._effective as e\n"
        "e.effective_cmd  # the command itself\n"
        "from condensation.commands.effective import output_bytes, prepare_effective\n"
        "print(sorted(m for m in sys.modules if m.startswith('condensation.cli')))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    loaded = r.stdout.strip()
    assert "condensation.cli._effective" in loaded
    assert "condensation.cli._train" not in loaded
