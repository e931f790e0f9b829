"""Every command the README shows runs, in a quick variant, and every CLI path
(each ``--form``, each depth, ``--compare-gd``) runs through the CLI.

The commands are parsed from README.md's code blocks (bash lines calling
``condensation``, and the Python block), so a command added to the README is
covered without touching this file.  ``QUICK`` says, per command, what is added
to make it fast; ``--out`` directories are moved under a scratch directory.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"

# Appended per command (the first word after `condensation`) to make it quick.
_STEPS = [
    "--set",
    "train.steps=12",
    "--set",
    "train.snapshots=2",
    "--set",
    "train.linear_snapshots=1",
]
QUICK: dict[str, list[str]] = {
    "train": _STEPS,
    "effective": _STEPS,
    "matrix": _STEPS,
    "run": ["--quick"],
    "reproduce": [],  # already --quick in the README; the default suite runs one experiment
    "report": [],
    # in this process; a `--scheduler` example's cluster is replaced by it too (the
    # slow tests/sweep/test_sweep_slow.py::test_external_scheduler_and_two_workers
    # starts `dask scheduler` and `dask worker` as the README's recipe does)
    "sweep": ["--workers", "0"],
}
# Quick experiments of `reproduce --quick` in the default run (the slow run does them all).
REPRODUCE_DEFAULT_ONLY = ["condensation-three-layer"]
# README commands that take more than a few seconds even reduced (a diffrax compile,
# a whole experiment, a 100x100 problem): they run in the slow suite (make test-slow).
SLOW = ("effective", "run ", "matrix_100", "matrix_completion.toml --out", "--fast-forward")
# README commands known to fail, with why (none at present).
KNOWN_BROKEN: dict[str, str] = {}  # "substring of a command": "why it is expected to fail"


def readme_blocks(text: str) -> list[tuple[str, str]]:
    """``(language, body)`` of every fenced code block."""  # a repeated command runs once
    return [(m[1], m[2]) for m in re.finditer(r"```(\w*)\n(.*?)```", text, re.S)]


def readme_commands(text: str | None = None) -> list[list[str]]:
    """Every ``condensation`` command line of the README's bash blocks, as argv
    (after the program name), comments dropped."""
    text = README.read_text() if text is None else text
    out = []
    for lang, body in readme_blocks(text):
        if lang not in ("bash", "sh", "console"):
            continue
        for line in body.splitlines():
            if "condensation" not in line:
                continue
            words = shlex.split(line, comments=True)
            if words and Path(words[0]).name == "condensation" and words[1:] not in out:
                out.append(words[1:])
    return out


def readme_python() -> list[str]:
    return [body for lang, body in readme_blocks(README.read_text()) if lang == "python"]


def quick_variant(argv: list[str], scratch: Path) -> list[str]:
    """``argv`` with its quick additions and every ``runs/...`` path under ``scratch``."""
    moved = [str(scratch / a) if a.startswith("runs/") else a for a in argv]
    moved = [str(ROOT / a) if a.startswith("configs/") else a for a in moved]
    if "--scheduler" in moved:
        i = moved.index("--scheduler")
        del moved[i : i + 2]
    return moved + QUICK.get(argv[0], [])


def _id(argv: list[str]) -> str:
    return " ".join(argv)[:70]


def _marks(argv: list[str]) -> list:
    line = " ".join(argv)
    marks = [
        pytest.mark.xfail(strict=False, reason=why)
        for key, why in KNOWN_BROKEN.items()
        if key in line
    ]
    if any(key in line + " " for key in SLOW):
        marks.append(pytest.mark.slow)
    return marks


COMMANDS = readme_commands()


def test_the_readme_has_commands():
    names = {argv[0] for argv in COMMANDS}
    assert {"train", "effective", "run", "reproduce", "report", "matrix"} <= names
    assert all(argv[0] in QUICK for argv in COMMANDS), "add a QUICK entry for a new command"
    assert readme_python(), "the README's Python example"


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    return tmp_path_factory.mktemp("readme")


def _run_readme_command(cli_main, argv, scratch, *, full_reproduce=False):
    args = quick_variant(argv, scratch)
    if argv[0] == "reproduce" and not full_reproduce:
        args += [a for name in REPRODUCE_DEFAULT_ONLY for a in ("--only", name)]
    if argv[0] == "report":  # it re-renders what reproduce wrote: make sure that exists
        target = Path(args[1])
        if not (target / "summary.json").is_file():
            code, err = cli_main(
                "reproduce", "--quick", "--out", str(target), "--only", REPRODUCE_DEFAULT_ONLY[0]
            )
            assert code == 0, err
    code, err = cli_main(*args)
    assert code == 0, f"{' '.join(args)} -> exit {code}: {err}"
    if "--out" in args:
        out = Path(args[args.index("--out") + 1])
        assert (out / "summary.json").is_file()
        json.loads((out / "summary.json").read_text())
    if argv[0] == "report":
        assert (Path(args[1]) / "report.html").is_file()


@pytest.mark.parametrize("argv", [pytest.param(a, id=_id(a), marks=_marks(a)) for a in COMMANDS])
def test_readme_command(cli_main, scratch, argv):
    _run_readme_command(cli_main, argv, scratch)


@pytest.mark.slow
@pytest.mark.parametrize(
    "argv", [pytest.param(a, id=_id(a)) for a in COMMANDS if a[0] == "reproduce"]
)
def test_readme_reproduce_in_full(cli_main, scratch, argv):
    _run_readme_command(cli_main, argv, scratch / "full", full_reproduce=True)


@pytest.mark.slow
def test_readme_python_example(tmp_path):
    """The README's Python blocks, run as written in a fresh interpreter: the effective
    dynamics from the repository root; ``load_run("runs/gd")`` from a folder where a
    quick ``condensation train ... --out runs/gd`` has just been written.  The SLURM
    recipe needs the ``slurm`` extra and a cluster: only its imports of this package
    are checked."""
    env = {**os.environ, "CONDENSATION_CPU_DEVICES": "1"}
    blocks = readme_python()
    assert any("build_system" in c for c in blocks) and any("load_run(" in c for c in blocks)
    for code in blocks:
        if "dask_jobqueue" in code:
            code = "from condensation.sweep import run_sweep\nprint(run_sweep.__doc__ and 'ok')"
            where, check = ROOT, "ok"
        elif "load_run(" in code:
            gd = tmp_path / "runs" / "gd"
            argv = ["train", str(ROOT / "configs/default.toml"), "--set", "train.steps=50"]
            made = subprocess.run(
                [sys.executable, "-m", "condensation", *argv, "--out", str(gd)],
                capture_output=True, text=True, env=env, timeout=300,
            )  # fmt: skip
            assert made.returncode == 0, made.stderr[-2000:]
            code, where, check = code + "\nprint('shape', W1.shape)", tmp_path, "shape"
        else:
            code, where, check = code + "\nprint('T*', sol.T_star)", ROOT, "T*"
        r = subprocess.run(
            [sys.executable, "-c", code],
            cwd=where,
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
        )
        assert r.returncode == 0, r.stderr[-2000:]
        assert check in r.stdout
        if check == "T*":
            assert float(r.stdout.split("T*")[-1]) > 0


# ---- every CLI path ------------------------------------------------------------------
_DEPTH = {
    2: ["--set", "model.depth=2", "--set", "model.widths=[8]"],
    3: ["--set", "model.depth=3", "--set", "model.widths=[8, 8]"],
    4: ["--set", "model.depth=4", "--set", "model.widths=[6, 6, 6]", "--set", "init.scale=3e-2"],
}
_SMALL = [*_STEPS, "--set", "data.n=20"]
_SLOW = pytest.mark.slow  # each effective path pays a diffrax compile (~10 s)
PATHS = [
    pytest.param(["train", *_DEPTH[2]], id="train-depth2", marks=_SLOW),
    pytest.param(["train", *_DEPTH[3]], id="train-depth3", marks=_SLOW),
    # depth 4 through the CLI in the default run: test_faults' underflow test
    pytest.param(["train", *_DEPTH[4]], id="train-depth4", marks=_SLOW),
    pytest.param(
        ["effective", "--form", "full", *_DEPTH[2]], id="effective-full-depth2", marks=_SLOW
    ),
    pytest.param(
        ["effective", "--form", "full", *_DEPTH[3]], id="effective-full-depth3", marks=_SLOW
    ),
    pytest.param(
        ["effective", "--form", "full", *_DEPTH[4]],
        id="effective-full-depth4",
        marks=_SLOW,
    ),
    pytest.param(
        ["effective", "--form", "reduced", *_DEPTH[3]], id="effective-reduced", marks=_SLOW
    ),
    pytest.param(
        ["effective", "--form", "spectral", *_DEPTH[3]],
        id="effective-spectral",
        marks=_SLOW,
    ),
    pytest.param(["effective", "--compare-gd", *_DEPTH[3]], id="effective-compare-gd", marks=_SLOW),
]


@pytest.mark.parametrize("argv", PATHS)
def test_cli_path(cli_main, tmp_path, argv):
    out = tmp_path / "out"
    code, err = cli_main(*argv, *_SMALL, "--out", str(out))
    assert code == 0, err
    s = json.loads((out / "summary.json").read_text())
    depth = int(next(a for a in argv if a.startswith("model.depth=")).split("=")[1])
    assert s["depth"] == depth if "depth" in s else True
    assert len(s["members"]) == 1


@pytest.mark.parametrize(
    "depth",
    [1, pytest.param(2, marks=_SLOW), pytest.param(3, marks=_SLOW), pytest.param(4, marks=_SLOW)],
)  # depth 2 runs by default as the README's mc-d2 command; depth >= 3 integrates the
# effective T* of each member (a diffrax compile)
def test_matrix_cli_depths(cli_main, tmp_path, depth):
    out = tmp_path / "out"
    code, err = cli_main(
        "matrix", *_STEPS, "--set", f"model.depth={depth}", "--set", "problem.n=5",
        "--set", "problem.rank=1", "--set", "problem.observed=15", "--out", str(out),
    )  # fmt: skip
    assert code == 0, err
    s = json.loads((out / "summary.json").read_text())
    assert s["depth"] == depth and s["members"][0]["status"] == "ok"
