"""Every command the README and the documentation site show runs, in a quick
variant, and every CLI path (each ``--form``, each depth, ``--compare-gd``) runs
through the CLI.

The commands are parsed from the code blocks of README.md and of every page under
docs/ (bash lines calling ``condensation``; each command once, wherever it
appears), so a command added to any page is covered without touching this file.
The parsing and the quick variants (``QUICK``: what is added per command to make it
fast; ``--out`` directories moved under a scratch directory) live in
``docs/_scripts/runnable.py``, shared with the site's build, which runs the same
variants.  The site's executed Python examples run when it is built
(``tests/test_docs.py``).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import console_problems

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "docs" / "_scripts"))
import runnable  # noqa: E402

README = runnable.README
QUICK = runnable.QUICK
_STEPS = runnable.STEPS
REPRODUCE_DEFAULT_ONLY = runnable.REPRODUCE_DEFAULT_ONLY
quick_variant = runnable.quick_variant
# Commands that take more than a few seconds even reduced (a diffrax compile, a
# whole experiment, a 100x100 problem), and the site's commands beyond the README's
# former ones (the site's build runs them all): they run in the slow suite.
SLOW = (
    "effective", "run ", "matrix_100", "matrix_completion.toml --out", "--fast-forward",
    "--out runs/csv ", "--out runs/long ", "matrix_staircase",
)  # fmt: skip
# Commands known to fail, with why (none at present).
KNOWN_BROKEN: dict[str, str] = {}  # "substring of a command": "why it is expected to fail"


def readme_blocks(text: str) -> list[tuple[str, str]]:
    """``(language, body)`` of every fenced code block."""
    return [(lang, body) for lang, _, body in runnable.code_blocks(text)]


def readme_commands(text: str | None = None) -> list[list[str]]:
    """Every ``condensation`` command line of the bash blocks of ``text``, or of the
    README and every page of the site, as argv (after the program name)."""
    return runnable.all_commands() if text is None else runnable.commands_in(text)


def readme_python() -> list[str]:
    """The plain (not executed when the site builds) Python blocks of the README and
    the site: the tests run them here."""
    return [
        body
        for page in runnable.pages()
        for lang, attrs, body in runnable.code_blocks(page.read_text())
        if lang == "python" and "exec=" not in attrs
    ]


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


def _check_console(args: list[str], text: str) -> None:
    """What a researcher pastes from: no number with more than 6 significant digits,
    and no line cut by the program (the commands run at COLUMNS=40, so a wrapped
    result would leave a line ending in ``=`` and lines no longer than 40)."""
    assert console_problems(text) == [], f"{' '.join(args)}: {console_problems(text)}"
    lines = text.splitlines()
    assert not [ln for ln in lines if re.search(r"=\s*$", ln)], f"{' '.join(args)}:\n{text}"
    if any(" = " in ln for ln in lines):  # a result line: longer than the terminal
        assert max(map(len, lines)) > 40, f"{' '.join(args)} wrapped:\n{text}"


def _run_readme_command(cli_main, cli_streams, argv, scratch, *, full_reproduce=False):
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
    code, out, err = cli_streams(*args)
    assert code == 0, f"{' '.join(args)} -> exit {code}: {err}"
    _check_console(args, out + err)
    if "--out" in args:
        out = Path(args[args.index("--out") + 1])
        assert (out / "summary.json").is_file()
        json.loads((out / "summary.json").read_text())
    if argv[0] == "report":
        assert (Path(args[1]) / "report.html").is_file()


@pytest.fixture
def narrow(monkeypatch):
    monkeypatch.setenv("COLUMNS", "40")


@pytest.mark.parametrize("argv", [pytest.param(a, id=_id(a), marks=_marks(a)) for a in COMMANDS])
def test_readme_command(cli_main, cli_streams, narrow, scratch, argv):
    _run_readme_command(cli_main, cli_streams, argv, scratch)


@pytest.mark.slow
@pytest.mark.parametrize(
    "argv", [pytest.param(a, id=_id(a)) for a in COMMANDS if a[0] == "reproduce"]
)
def test_readme_reproduce_in_full(cli_main, cli_streams, narrow, scratch, argv):
    _run_readme_command(cli_main, cli_streams, argv, scratch / "full", full_reproduce=True)


@pytest.mark.slow
def test_readme_python_example(tmp_path):
    """The plain Python blocks of the README and the site (those the site's build
    does not execute), run as written in a fresh interpreter: the effective dynamics
    from the repository root; a ``load_run("runs/gd")`` from a folder where a quick
    ``condensation train ... --out runs/gd`` has just been written.  The SLURM recipe
    needs the ``slurm`` extra and a cluster: only its imports of this package are
    checked."""
    env = {**os.environ, "CONDENSATION_CPU_DEVICES": "1"}
    blocks = readme_python()
    assert any("build_system" in c for c in blocks) and any("dask_jobqueue" in c for c in blocks)
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
