"""Issue 20, item 6: no run, resume or report ever deletes or changes a file it did not
create, whatever the names beside ``--out`` (a property over names), and the edges of
the fuzz corpus (tests/fuzz_corpus.py; ``python benchmarks/fuzz.py`` runs all of it)."""

import functools
import string
import subprocess
import sys
import tempfile
from pathlib import Path

import fuzz_corpus
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

SAFE = string.ascii_letters + string.digits + "-_."


@functools.cache
def _dead_pid() -> int:
    """The pid of a subprocess that has finished (not reused within a test run)."""
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


_names = st.text(SAFE, min_size=1, max_size=24).filter(lambda s: s not in (".", ".."))
_bits = st.text(SAFE, max_size=12)
_pids = st.sampled_from(["dead", "4194305", "0", "007"])

# leftover patterns of the tool (the names it gives its hidden siblings of --out),
# with random prefixes and suffixes: NAME, PID and R are filled in
PATTERNS = (
    ".{NAME}.partial-{PID}-{R}",
    ".{NAME}.partial-{PID}{R}",
    "{R}.{NAME}.partial-{PID}-x",
    ".{NAME}.old-{PID}",
    ".{NAME}.old-{PID}{R}",
    ".{NAME}{R}.old-{PID}",
    ".{NAME}.checkpoint/{R}x",
    ".{NAME}.checkpoint/records-{R}",
    ".{NAME}.checkpoint/carry-{PID}{R}.npz",
    ".{NAME}.checkpoint/meta.json",
    ".{NAME}.lock",
    ".{NAME}.lock{R}",
)
MARKER = '{"tool": "condensation", "files": []}'  # a forged run marker: not a proof


@st.composite
def _scenes(draw):
    """``(name, {relpath: content or None for a folder})``: a --out name and the
    user's files and folders beside it, named like the tool's leftovers."""
    name = draw(_names)
    items: dict[str, str | None] = {}
    for _ in range(draw(st.integers(1, 4))):
        pid = draw(_pids)
        pid = str(_dead_pid()) if pid == "dead" else pid
        path = draw(st.sampled_from(PATTERNS)).format(NAME=name, PID=pid, R=draw(_bits))
        kind = draw(st.sampled_from(["file", "folder", "folder with a marker"]))
        if kind == "file":
            items[path] = "mine {secret}"
        else:
            items[path + "/notes.txt"] = "mine {secret}"
            if kind == "folder with a marker":
                items[path + "/.condensation-run"] = MARKER
    return name, items


def _plant(tmp: Path, items: dict[str, str], token: str) -> None:
    for rel, content in items.items():
        p = tmp / rel
        if p.parent.exists() and not p.parent.is_dir():  # a file and a folder of one name
            continue
        if p.is_dir():
            continue
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(content.replace("{secret}", token))


def _check_scene(name: str, items: dict[str, str]) -> None:
    """An interrupted ``train``, its ``--resume``, a ``report`` of it: each ends in a
    valid exit or one line, and no file or folder beside --out changed."""
    with tempfile.TemporaryDirectory() as d:
        tmp, token = Path(d), "SECRET-" + "".join(reversed(name)) + "-7f3a9c"
        _plant(tmp, items, token)
        before = fuzz_corpus.snapshot(tmp)
        out = tmp / name
        resume = ["train", *fuzz_corpus.CK_SETS, "--out", str(out), "--resume"]
        calls = [
            ("interrupted train", lambda: fuzz_corpus.ctrl_c_train(out), (130, 2)),
            ("train --resume", lambda: fuzz_corpus.call_cli(resume), (0, 2)),
            ("report", lambda: fuzz_corpus.call_cli(["report", str(out)]), (0, 2)),
        ]
        for what, call, allowed in calls:
            with fuzz_corpus._environ(fuzz_corpus.CK_ENV):
                code, err, exc = call()
            lines = [ln for ln in err.splitlines() if ln.strip() and ln.startswith("error:")]
            assert exc is None, f"{what}: {exc!r}"
            assert code in allowed, f"{what}: exit {code}: {err[-300:]}"
            if code == 2:
                assert len(lines) == 1, f"{what}: {err[-300:]}"
            changed = fuzz_corpus.foreign_changes(before, fuzz_corpus.snapshot(tmp), tmp, token)
            assert not changed, f"{what} beside {sorted(items)}: {changed}"


# no shrinking: each example runs the CLI three times; the first failure is reported as drawn
_settings = dict(
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
    phases=(Phase.explicit, Phase.generate),
)


@settings(max_examples=8, **_settings)
@given(_scenes())
def test_runs_never_touch_files_named_like_their_leftovers(scene):
    """A quick sample (one compile, ~8 scenes); the slow variant below draws 150."""
    _check_scene(*scene)


@pytest.mark.slow
@settings(max_examples=150, **_settings)
@given(_scenes())
def test_runs_never_touch_files_named_like_their_leftovers_many(scene):
    _check_scene(*scene)


def test_the_issue_names_are_left_alone():
    """The issue's own examples beside ``--out results``, every one at once."""
    pid = str(_dead_pid())
    _check_scene(
        "results",
        {
            ".results.old-2023/notes.txt": "mine {secret}",
            ".results.partial-1999-final/thesis.tex": "mine {secret}",
            ".results.checkpoint/records-draft.txt": "mine {secret}",
            ".results.lock": "mine {secret}",
            f".results.partial-{pid}-abc/summary.json": "mine {secret}",
            f".results.old-{pid}/.condensation-run": MARKER,
        },
    )


# ---- the edges of the fuzz corpus, one of each class, in the default run ------------
EDGE_SAMPLE = (
    "train --out a 240-character name",
    "train --out missing parents, no free space",
    "train disk full after the check",
    "sweep --out under a read-only folder",
    "train beside every leftover name",
    "sweep --out a user's folder with cells/",
    "train --resume, checkpoint carry ../outside/victim.npz",
    "train --resume, checkpoint carry bit-flipped",
    "report summary.json figure ../secret.png",
    "report summary.json no title",
    "report summary.json reproduce ../exp",
    "report report.html a folder",
    "sweep spec not UTF-8",
    "sweep spec init.gamma with init.scale",
    "train CSV BOM headerless",
    "train CSV first row 1,2,oops",
    "train key 'data.\\x1b[2Jn'",
    "train data.n=1e18",
    "train --set value with a newline",
    "train depth 16 widths 1 scale 1e-25",
)


def test_fuzz_edges_sample(tmp_path):
    """One case of each class of issue 20 through the fuzz runner: no traceback, hang,
    partial output, foreign file changed or read, or silently wrong result."""
    by_name = {c.name: c for c in fuzz_corpus.edge_cases()}
    cases = [by_name[n] for n in EDGE_SAMPLE]
    outcomes = fuzz_corpus.run_all(cases, tmp_path)
    bad = [
        f"{o.case}: {o.kind} {o.foreign[:2]} {o.detail[:160]}"
        for o in outcomes
        if fuzz_corpus.bad(o)
    ]
    assert not bad, "\n".join(bad)


@pytest.mark.slow
def test_early_signals_exit_with_one_line_and_write_nothing(tmp_path):
    """SIGINT and SIGTERM in the first 1.5 s of ``train`` (JAX still importing): exit
    130/143, one line, nothing written (``benchmarks/fuzz.py --signals 50`` for 50 each)."""
    outcomes = fuzz_corpus.signal_runs(3, tmp_path, seed=1)
    bad = [f"{o.case}: {o.kind} {o.detail[:200]}" for o in outcomes if fuzz_corpus.bad(o)]
    assert not bad, "\n".join(bad)
