"""Issue 20, the sweep: it owns and locks its directory, its tables never lie, and
every edge is one line (exit 2), never a traceback.

Most tests run cells with a stand-in task (a real run directory holding a summary
with one member per (seed, scale)), so the sweep's own logic is tested without
compiling a network; the init.path rows, two simultaneous sweeps and the real
signals run real cells.
"""

from __future__ import annotations

import errno
import io
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from condensation.errors import InputError
from condensation.sweep import parse_spec, run_sweep
from condensation.sweep.table import read_table

BASE = """\
[data]
dataset = "teacher"
n = 20
d = 3
[model]
depth = 3
widths = [6, 6]
[train]
lr = 0.2
steps = 20
snapshots = 2
linear_snapshots = 2
"""

THREE = """\
[sweep]
command = "train"
base = "base.toml"
[sweep.axes]
"train.lr" = [0.1, 0.2, 0.3]
"init.seed" = [0, 1]
"""


def write_spec(d: Path, spec: str = THREE, base: str = BASE) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    (d / "base.toml").write_text(base)
    (d / "spec.toml").write_text(textwrap.dedent(spec))
    return d / "spec.toml"


@pytest.fixture
def cli(cli_streams):
    """The CLI in this process: ``(*args) -> (exit status, stdout, stderr)``."""
    return cli_streams


def _fake_cell(command, config, out_dir):
    """Stand-in for sweep.cells.run_cell: a run directory whose summary has one
    member per (seed, scale) of the config, loss_final = lr * (seed + 1)."""
    from condensation.store.rundir import run_directory, write_json
    from condensation.sweep.spec import load_command_config

    cfg = load_command_config(command, config)
    members = [
        {"seed": s, "scale": e, "status": "ok", "loss_final": cfg.train.lr * (s + 1)}
        for s, e in cfg.member_seeds_scales
    ]
    summary = {"members": members}
    with run_directory(out_dir) as tmp:
        write_json(tmp / "summary.json", summary)
    return summary


@pytest.fixture
def fake_cells(monkeypatch):
    """Cells run by :func:`_fake_cell`; returns the list of cell dirs run, in order."""
    import condensation.sweep.run as sweep_run

    ran: list[str] = []

    def cell(command, config, out_dir):
        ran.append(out_dir)
        return _fake_cell(command, config, out_dir)

    monkeypatch.setattr(sweep_run, "run_cell", cell)
    return ran


def _one_error_line(err: str, field: str) -> str:
    """The one line of an error (progress lines of cells that ran before it aside)."""
    lines = [
        ln for ln in err.strip().splitlines() if ln.strip() and not re.match(r"cell \d+/\d+ ", ln)
    ]
    assert len(lines) == 1, err
    assert lines[0].startswith(f"error: {field} = "), lines[0]
    assert "fix:" in lines[0] and "Traceback" not in err
    return lines[0]


def _snapshot(d: Path) -> dict:
    """Every path under ``d`` (``d`` included) with its bytes and mtime."""
    out = {}
    for p in sorted([d, *d.rglob("*")]):
        out[str(p.relative_to(d.parent))] = (
            p.read_bytes() if p.is_file() else None,
            p.stat().st_mtime_ns,
        )
    return out


# ---- 1. ownership ----------------------------------------------------------------------
def test_foreign_dir_with_cells_is_refused_and_left_unchanged(tmp_path, cli, fake_cells):
    spec = write_spec(tmp_path)
    mine = tmp_path / "mine"
    (mine / "cells").mkdir(parents=True)
    (mine / "results.csv").write_text("my,own\n1,2\n")
    (mine / "summary.json").write_text('{"kind": "sweep", "mine": true}\n')
    (mine / "spec.toml").write_text("# my notes\n")
    (mine / "progress.log").write_text("my log\n")
    before = _snapshot(mine)
    code, _, err = cli("sweep", str(spec), "--out", str(mine), "--workers", "0")
    assert code == 2
    line = _one_error_line(err, "--out")
    assert ".condensation-sweep" in line and "nothing was changed" in line
    assert _snapshot(mine) == before and not fake_cells
    assert sorted(p.name for p in tmp_path.iterdir()) == ["base.toml", "mine", "spec.toml"]


def test_sweep_writes_its_marker_and_continues_only_its_own(tmp_path, cli, fake_cells):
    spec = write_spec(tmp_path)
    out = tmp_path / "out"
    out.mkdir()  # an empty directory may be claimed
    code, stdout, err = cli("sweep", str(spec), "--out", str(out), "--workers", "0")
    assert code == 0, err
    marker = json.loads((out / ".condensation-sweep").read_text())
    assert marker["tool"] == "condensation" and marker["kind"] == "sweep"
    assert marker["pid"] == os.getpid() and len(marker["token"]) == 32 and marker["created"]
    assert len(fake_cells) == 3
    code, stdout, err = cli("sweep", str(spec), "--out", str(out), "--workers", "0")
    assert code == 0, err
    assert "0 computed, 3 reused" in stdout and len(fake_cells) == 3
    # the marker proves it: a copy of the sweep without the marker is someone else's
    (out / ".condensation-sweep").unlink()
    code, _, err = cli("sweep", str(spec), "--out", str(out), "--workers", "0")
    assert code == 2 and ".condensation-sweep" in _one_error_line(err, "--out")
    # a marker of another kind is not a sweep's
    (out / ".condensation-sweep").write_text(json.dumps({**marker, "kind": "run"}))
    code, _, err = cli("sweep", str(spec), "--out", str(out), "--workers", "0")
    assert code == 2 and len(fake_cells) == 3


def test_missing_parents_are_made_and_removed_again_on_a_refusal(tmp_path, cli, fake_cells):
    """``--out runs/sweep`` with no ``runs/`` works, as for ``train``; a sweep refused
    after the parents and DIR were made (here: disk full at the marker) leaves none."""
    spec = write_spec(tmp_path / "spec")
    out = tmp_path / "runs" / "deep" / "sweep"
    code, _, err = cli("sweep", str(spec), "--out", str(out), "--workers", "0")
    assert code == 0, err
    assert (out / ".condensation-sweep").is_file() and len(fake_cells) == 3
    import condensation.sweep.run as sweep_run

    def full(*a, **k):
        raise OSError(28, "No space left on device", str(tmp_path / "new"))

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(sweep_run, "atomic_write_bytes", full)  # the marker, the first file
        new = tmp_path / "new" / "a" / "sw"
        code, _, err = cli("sweep", str(spec), "--out", str(new), "--workers", "0")
    assert code == 2 and "No space left" in _one_error_line(err, "--out")
    assert not (tmp_path / "new").exists()


def test_a_linked_cells_folder_is_refused(tmp_path, cli, fake_cells):
    """A sweep reads and writes only under its own DIR: cells/ made a link to a folder
    elsewhere is refused, and that folder is left as it was."""
    spec = write_spec(tmp_path)
    out = tmp_path / "out"
    code, _, err = cli("sweep", str(spec), "--out", str(out), "--workers", "0")
    assert code == 0, err
    elsewhere = tmp_path / "elsewhere"
    (out / "cells").rename(elsewhere)
    (out / "cells").symlink_to(elsewhere)
    for cell in list(elsewhere.iterdir())[:1]:
        import shutil

        shutil.rmtree(cell)  # so a sweep that followed the link would write there
    before = _snapshot(elsewhere)
    code, _, err = cli("sweep", str(spec), "--out", str(out), "--workers", "0")
    assert code == 2 and "link" in _one_error_line(err, "--out")
    assert _snapshot(elsewhere) == before and len(fake_cells) == 3


# ---- 2. one lock per output; a duplicate cell id -----------------------------------------
def _hold_lock(out: Path) -> subprocess.Popen:
    """Another process holding ``out``'s lock as store.out_lock does (flock, its pid)."""
    from condensation.store.rundir import lock_path

    code = textwrap.dedent(
        f"""
        import fcntl, os, sys, time
        fd = os.open({str(lock_path(out))!r}, os.O_CREAT | os.O_RDWR)
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.write(fd, str(os.getpid()).encode())
        print("locked", flush=True)
        time.sleep(120)
        """
    )
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "locked"
    return p


def test_second_sweep_on_a_locked_out_is_refused_naming_the_pid(tmp_path, cli, fake_cells):
    spec = write_spec(tmp_path)
    out = tmp_path / "out"
    holder = _hold_lock(out)
    try:
        code, _, err = cli("sweep", str(spec), "--out", str(out), "--workers", "0")
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()
    assert code == 2
    assert f"pid {holder.pid}" in _one_error_line(err, "--out")
    assert not out.exists() and not fake_cells


@pytest.mark.parametrize(
    "axis,values",
    [
        ("train.steps", "[3, 3.0]"),
        ("init.seed", "[1, 1.0]"),
        ("model.widths", "[[6, 6], [6.0, 6]]"),
    ],
)
def test_two_values_giving_one_cell_are_refused_before_compute(
    tmp_path, cli, fake_cells, axis, values
):
    spec = write_spec(
        tmp_path,
        f'[sweep]\ncommand = "train"\nbase = "base.toml"\n[sweep.axes]\n"{axis}" = {values}\n',
    )
    code, _, err = cli("sweep", str(spec), "--out", str(tmp_path / "out"), "--workers", "0")
    assert code == 2
    line = _one_error_line(err, f'sweep.axes."{axis}"')
    assert "same config" in line
    assert not (tmp_path / "out").exists() and not fake_cells


# ---- 3. tables never lie -----------------------------------------------------------------
def _agree(out: Path, stdout: str | None = None) -> dict:
    """summary.json, the table and the console line give the same counts."""
    s = json.loads((out / "summary.json").read_text())
    rows = read_table(out).to_pylist()
    by_status: dict[str, set] = {}
    for r in rows:
        by_status.setdefault(r["status"], set()).add(r["cell"])
    assert len(by_status.get("not_run", ())) == s["cells_not_run"]
    assert len(by_status.get("failed", ())) == s["cells_failed"]
    assert set(s["not_run"]) == by_status.get("not_run", set())
    assert set(s["failed"]) == by_status.get("failed", set())
    ran = {c for k, v in by_status.items() if k not in ("failed", "not_run") for c in v}
    assert len(ran) == s["cells_done"] + s["cells_reused"]
    assert s["cells_done"] + s["cells_failed"] + s["cells_not_run"] == s["cells_computed"]
    if stdout is not None:
        assert (
            f"{s['cells_done']} computed, {s['cells_reused']} reused, "
            f"{s['cells_failed']} failed, {s['cells_not_run']} not run"
        ) in stdout
    return s


def test_interrupted_sweep_says_what_it_wrote_and_marks_not_run(tmp_path, cli, monkeypatch):
    import condensation.sweep.run as sweep_run

    calls = []

    def cell(command, config, out_dir):
        calls.append(out_dir)
        if len(calls) == 2:
            raise KeyboardInterrupt  # Ctrl-C while the second cell runs
        return _fake_cell(command, config, out_dir)

    monkeypatch.setattr(sweep_run, "run_cell", cell)
    spec = write_spec(tmp_path)
    out = tmp_path / "out"
    code, _, err = cli("sweep", str(spec), "--out", str(out), "--workers", "0")
    assert code == 130
    assert "nothing was written" not in err
    s = _agree(out)
    assert (s["cells_done"], s["cells_failed"], s["cells_not_run"]) == (1, 0, 2)
    assert s["interrupted"] is True
    rows = read_table(out).to_pylist()
    assert [r["status"] for r in rows] == ["ok", "ok", "not_run", "not_run", "not_run", "not_run"]
    assert all(r["error"] is None for r in rows)
    assert "interrupted by SIGINT" in err and "1 computed, 0 reused, 0 failed, 2 not run" in err
    assert "results.csv" in err and str(out) in err


def _bad_init(tmp_path: Path) -> Path:
    bad = tmp_path / "bad_init.npz"
    np.savez(bad, W1=np.ones((2, 2)), W2=np.ones((2, 2)), W3=np.ones((1, 2)))
    return bad


def test_failed_cell_exits_4_naming_it_and_counts_agree(tmp_path, cli, monkeypatch):
    import condensation.sweep.run as sweep_run

    def cell(command, config, out_dir):
        if config.train.lr == 0.2:  # the worker gets the validated config object
            raise ValueError("this cell is broken")
        return _fake_cell(command, config, out_dir)

    monkeypatch.setattr(sweep_run, "run_cell", cell)
    spec = write_spec(tmp_path)
    out = tmp_path / "out"
    code, stdout, err = cli("sweep", str(spec), "--out", str(out), "--workers", "0")
    assert code == 4, err
    s = _agree(out, stdout)
    assert (s["cells_done"], s["cells_failed"], s["cells_not_run"]) == (2, 1, 0)
    (bad,) = s["failed"]
    assert f"cell {bad}: ValueError: this cell is broken" in err
    assert "1 of 3 cells failed" in err
    rows = read_table(out).to_pylist()
    assert [r["status"] for r in rows if r["cell"] == bad] == ["failed", "failed"]
    # a rerun retries it (and only it)
    monkeypatch.setattr(sweep_run, "run_cell", _fake_cell)
    code, stdout, err = cli("sweep", str(spec), "--out", str(out), "--workers", "0")
    assert code == 0, err
    s = _agree(out, stdout)
    assert (s["cells_done"], s["cells_reused"], s["cells_failed"]) == (1, 2, 0)


def test_cell_whose_worker_died_after_retries_exits_4(tmp_path, cli, monkeypatch):
    """`worker died` after --retries is a failed cell: exit 4, not 0 (the engine is
    replaced by one whose worker dies for one cell every time)."""
    import condensation.sweep.run as sweep_run
    from condensation.engine import Outcome

    class DyingEngine:
        def __init__(self, **kw):
            self.retries = kw["retries"]

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return None

        def run(self, tasks):
            for i, t in enumerate(tasks):
                if i == 1:
                    why = "worker died (KilledWorker: attempted 3 times)"
                    yield Outcome(t.key, False, None, why, self.retries + 1)
                else:
                    yield Outcome(t.key, True, _fake_cell(*t.args))

    monkeypatch.setattr(sweep_run, "Engine", DyingEngine)
    spec = write_spec(tmp_path)
    out = tmp_path / "out"
    code, stdout, err = cli("sweep", str(spec), "--out", str(out), "--workers", "1")
    assert code == 4, err
    s = _agree(out, stdout)
    (bad,) = s["failed"]
    assert f"cell {bad}: worker died" in err


def test_unreachable_scheduler_is_one_line_and_writes_nothing(
    tmp_path, cli, monkeypatch, fake_cells
):
    import distributed

    def refuse(*args, **kwargs):
        raise OSError("Timed out trying to connect to tcp://127.0.0.1:1 after 20 s")

    monkeypatch.setattr(distributed, "Client", refuse)
    spec = write_spec(tmp_path)
    out = tmp_path / "out"
    code, _, err = cli("sweep", str(spec), "--out", str(out), "--scheduler", "tcp://127.0.0.1:1")
    assert code == 2
    assert "cannot connect" in _one_error_line(err, "--scheduler")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["base.toml", "spec.toml"]
    # and into an earlier sweep of this spec: nothing of it changes
    code, _, err = cli("sweep", str(spec), "--out", str(out), "--workers", "0")
    assert code == 0, err
    (out / "cells" / sorted(os.listdir(out / "cells"))[0]).rename(out / "gone")
    import shutil

    shutil.rmtree(out / "gone")
    before = _snapshot(out)
    code, _, err = cli("sweep", str(spec), "--out", str(out), "--scheduler", "tcp://127.0.0.1:1")
    assert code == 2 and _snapshot(out) == before


def _tensor_files(tmp_path: Path) -> tuple[list[Path], Path]:
    rng = np.random.default_rng(0)
    data = []
    for name in ("a", "b"):
        p = tmp_path / f"{name}.npz"
        np.savez(p, x=rng.uniform(-1, 1, (20, 2)), y=rng.standard_normal(20))
        data.append(p)
    init = tmp_path / "init.npz"
    shapes = [(6, 2), (6, 6), (1, 6)]  # widths [6, 6], 2 inputs
    np.savez(init, **{f"W{k + 1}": 1e-3 * rng.standard_normal(s) for k, s in enumerate(shapes)})
    return data, init


@pytest.fixture(scope="module")
def init_path_sweep(tmp_path_factory):
    """A real sweep over data.path x init.path x train.lr (2 x 1 x 1 cells): members
    loaded from init.path carry no seed and a scale measured from the file."""
    d = tmp_path_factory.mktemp("initpath")
    (data_a, data_b), init = _tensor_files(d)
    spec = write_spec(
        d,
        '[sweep]\ncommand = "train"\nbase = "base.toml"\n[sweep.axes]\n'
        f'"data.path" = ["{data_a.name}", "{data_b.name}"]\n'
        f'"init.path" = ["{init.name}"]\n"train.lr" = [0.1]\n',
    )
    s = run_sweep(spec, d / "out", workers=0, stream=io.StringIO())
    return d, s


def test_rows_of_init_path_cells_come_from_what_they_ran(init_path_sweep):
    d, s = init_path_sweep
    out = d / "out"
    assert (s["cells_done"], s["cells_failed"], s["cells_not_run"]) == (2, 0, 0), s["failed"]
    s = _agree(out)
    rows = read_table(out).to_pylist()
    assert len(rows) == 2 and all(r["status"] == "ok" and r["error"] is None for r in rows)
    for r in rows:
        member = json.loads((out / "cells" / r["cell"] / "summary.json").read_text())["members"][0]
        assert member["seed"] is None  # nothing to match by (seed, scale): by order
        for k in ("loss_final", "loss_initial", "scale"):
            assert r[k] == member[k]
    # a rerun reuses both cells, same table
    again = run_sweep(d / "spec.toml", out, workers=0, stream=io.StringIO())
    assert (again["cells_reused"], again["cells_done"]) == (2, 0)
    assert read_table(out).to_pylist() == rows


# ---- 4. conflicting scale / seed keys ----------------------------------------------------
@pytest.mark.parametrize(
    "body,field",
    [
        (
            '[sweep.axes]\n"init.gamma" = [0.5, 1.0]\n"init.scale" = [1e-3]\n',
            'sweep.axes."init.scale"',
        ),
        (
            '[sweep.axes]\n"init.gamma" = [0.5, 1.0]\n"init.scales" = [[1e-3]]\n',
            'sweep.axes."init.scales"',
        ),
        (
            '[sweep.axes]\n"init.scales" = [[1e-3]]\n"init.gamma" = [0.5]\n',
            'sweep.axes."init.gamma"',
        ),
        (
            '[sweep.axes]\n"init.gamma" = [0.5]\n"init.layer_scales" = [[1e-2, 1e-2, 1e-2]]\n',
            'sweep.axes."init.layer_scales"',
        ),
        (
            '[sweep.axes]\n"init.layer_gammas" = [[1, 1, 1]]\n"init.scale" = [1e-3]\n',
            'sweep.axes."init.scale"',
        ),
        (
            '[sweep.set]\n"init.gamma" = 0.5\n[sweep.axes]\n"init.scale" = [1e-3, 1e-2]\n',
            'sweep.axes."init.scale"',
        ),
        (
            '[sweep.set]\n"init.scale" = 1e-3\n[sweep.axes]\n"init.gamma" = [0.5, 1.0]\n',
            'sweep.axes."init.gamma"',
        ),
        (
            '[sweep.set]\n"init.seeds" = [0, 1]\n[sweep.axes]\n"init.seed" = [2, 3]\n',
            'sweep.axes."init.seed"',
        ),
        (
            '[sweep.set]\n"init.seed" = 4\n[sweep.axes]\n"init.seeds" = [[2, 3]]\n',
            'sweep.axes."init.seeds"',
        ),
        (
            '[sweep.axes]\n"init.path" = ["init.npz"]\n"init.scale" = [1e-3, 1e-2]\n',
            'sweep.axes."init.scale"',
        ),
        (
            '[sweep.set]\n"init.path" = "init.npz"\n[sweep.axes]\n"init.seed" = [0, 1]\n',
            'sweep.axes."init.seed"',
        ),
    ],
)
def test_conflicting_scale_and_seed_keys_are_refused(tmp_path, body, field):
    _tensor_files(tmp_path)
    spec = write_spec(tmp_path, f'[sweep]\ncommand = "train"\nbase = "base.toml"\n{body}')
    with pytest.raises(InputError) as e:
        parse_spec(spec)
    assert str(e.value).startswith(f"{field} = "), str(e.value)
    assert "\n" not in str(e.value)


def test_init_path_in_the_base_with_a_scale_axis_is_refused(tmp_path):
    _tensor_files(tmp_path)
    spec = write_spec(
        tmp_path,
        '[sweep]\ncommand = "train"\nbase = "base.toml"\n'
        '[sweep.axes]\n"init.scale" = [1e-3, 1e-2]\n',
        BASE + '[init]\npath = "init.npz"\n',
    )
    with pytest.raises(InputError) as e:
        parse_spec(spec)
    assert str(e.value).startswith('sweep.axes."init.scale" = ') and "init.path" in str(e.value)


def test_matrix_scale_with_scales_is_refused(tmp_path):
    spec = write_spec(
        tmp_path,
        '[sweep]\ncommand = "matrix"\n[sweep.set]\n"init.scale" = 1e-3\n'
        '[sweep.axes]\n"init.scales" = [[1e-2], [1e-3]]\n',
    )
    with pytest.raises(InputError) as e:
        parse_spec(spec)
    assert str(e.value).startswith('sweep.axes."init.scales" = ')


def test_conflicting_axes_on_the_command_line_one_line_nothing_written(tmp_path, cli, fake_cells):
    spec = write_spec(
        tmp_path,
        '[sweep]\ncommand = "train"\nbase = "base.toml"\n'
        '[sweep.axes]\n"init.gamma" = [0.5, 1.0]\n"init.scale" = [1e-3]\n',
    )
    code, _, err = cli("sweep", str(spec), "--out", str(tmp_path / "out"), "--workers", "0")
    assert code == 2
    line = _one_error_line(err, 'sweep.axes."init.scale"')
    assert "init.gamma" in line and "silently replace" in line
    assert not (tmp_path / "out").exists() and not fake_cells


def test_gamma_with_widths_and_scale_with_seeds_still_sweep(tmp_path):
    """Keys of different quantities are not conflicts."""
    spec = write_spec(
        tmp_path,
        '[sweep]\ncommand = "train"\nbase = "base.toml"\n[sweep.axes]\n'
        '"init.gamma" = [0.5, 1.0]\n"model.widths" = [[6, 6], [8, 8]]\n"init.seed" = [0, 1]\n',
    )
    assert len(parse_spec(spec).cells) == 4


# ---- 5. edges: one line each, exit 2 -----------------------------------------------------
def test_out_under_a_read_only_folder_is_one_line(tmp_path, cli, monkeypatch, fake_cells):
    """As root a chmod does not stop writes: every mkdir / open for writing under
    ``ro`` raises PermissionError, as a read-only folder would for a user."""
    import pathlib

    spec = write_spec(tmp_path)
    ro = tmp_path / "ro"
    ro.mkdir()

    def denied(path) -> bool:
        return str(os.path.abspath(os.fspath(path))).startswith(str(ro))

    real_mkdir, real_open = pathlib.Path.mkdir, os.open

    def mkdir(self, *args, **kwargs):
        if denied(self):
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return real_mkdir(self, *args, **kwargs)

    def os_open(path, flags, *args, **kwargs):
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT) and denied(path):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(pathlib.Path, "mkdir", mkdir)
    monkeypatch.setattr(os, "open", os_open)
    code, _, err = cli("sweep", str(spec), "--out", str(ro / "out"), "--workers", "0")
    assert code == 2, err
    assert "Permission denied" in _one_error_line(err, "--out")
    assert list(ro.iterdir()) == [] and not fake_cells


def test_disk_full_while_writing_the_table_is_one_line(tmp_path, cli, monkeypatch, fake_cells):
    import condensation.sweep.table as table

    def full(path, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(table, "atomic_write_bytes", full)
    spec = write_spec(tmp_path)
    code, _, err = cli("sweep", str(spec), "--out", str(tmp_path / "out"), "--workers", "0")
    assert code == 2, err
    assert "No space left on device" in _one_error_line(err, "--out")


def test_spec_that_is_not_utf8_is_one_line(tmp_path, cli):
    spec = tmp_path / "spec.toml"
    spec.write_bytes(b'[sweep]\ncommand = "train"\n# caf\xe9\n')
    code, _, err = cli("sweep", str(spec), "--out", str(tmp_path / "out"))
    assert code == 2
    assert "not UTF-8" in _one_error_line(err, "SPEC")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["spec.toml"]


class _Deadline:
    """Fail (instead of hanging) when the block takes more than ``seconds``."""

    def __init__(self, seconds: int) -> None:
        self.seconds = seconds

    def __enter__(self):
        def expire(signum, frame):
            raise TimeoutError(f"still running after {self.seconds} s")

        self.old = signal.signal(signal.SIGALRM, expire)
        signal.alarm(self.seconds)

    def __exit__(self, *exc):
        signal.alarm(0)
        signal.signal(signal.SIGALRM, self.old)


@pytest.mark.parametrize(
    "axes,words",
    [
        # 10^6 cells: three unfolded axes of 100 values
        (
            '"train.lr" = {a}\n"train.steps" = {b}\n"data.n" = {c}\n',
            ["1000000 cells", "limit of 10000"],
        ),
        # 1.2 x 10^5 members in one cell (a folded axis)
        ('"init.seed" = {big}\n', ["120000 members", "limit of 100000"]),
    ],
)
def test_huge_spec_is_refused_up_front(tmp_path, cli, axes, words):
    a = [round(0.01 + i * 1e-4, 6) for i in range(100)]
    b = list(range(10, 110))
    c = list(range(20, 120))
    big = list(range(120_000))
    body = axes.format(a=a, b=b, c=c, big=big)
    spec = write_spec(
        tmp_path, f'[sweep]\ncommand = "train"\nbase = "base.toml"\n[sweep.axes]\n{body}'
    )
    t0 = time.monotonic()
    with _Deadline(20):
        code, _, err = cli("sweep", str(spec), "--out", str(tmp_path / "out"))
    assert time.monotonic() - t0 < 10  # (about 1 s; 10^5 cells took 27 s to validate)
    assert code == 2
    line = _one_error_line(err, "sweep.axes")
    for w in words:
        assert w in line, line
    assert not (tmp_path / "out").exists()


def test_validation_over_a_second_reports_progress(tmp_path, monkeypatch):
    import types

    import condensation.sweep.expand as spec_mod  # where the cells are built

    clock = [0.0]

    def tick():
        clock[0] += 0.4  # every cell "takes" 0.4 s
        return clock[0]

    monkeypatch.setattr(spec_mod, "time", types.SimpleNamespace(monotonic=tick))
    spec = write_spec(
        tmp_path,
        '[sweep]\ncommand = "train"\nbase = "base.toml"\n[sweep.axes]\n'
        '"train.lr" = [0.1, 0.2, 0.3]\n"train.steps" = [10, 11]\n',
    )
    buf = io.StringIO()
    p = parse_spec(spec, stream=buf)
    assert len(p.cells) == 6
    lines = buf.getvalue().splitlines()
    assert lines and all("validating the spec" in ln for ln in lines), lines
    assert lines[-1].startswith("cell 6/6 done")
    quiet = io.StringIO()
    monkeypatch.undo()
    parse_spec(spec, stream=quiet)  # fast: nothing printed
    assert quiet.getvalue() == ""


# ---- multi-process (slow): two simultaneous sweeps, real signals, a killed worker ---------
def _env():
    """The subprocesses import the same condensation as this process."""
    import condensation

    src = str(Path(condensation.__file__).resolve().parents[1])
    return {**os.environ, "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", "")}


def _sweep_cli(spec: Path, out: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "condensation", "sweep", str(spec), "--out", str(out), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
    )


TWO = """\
[sweep]
command = "train"
base = "base.toml"
[sweep.set]
"train.steps" = 400
[sweep.axes]
"model.widths" = [[6, 6], [7, 7]]
"init.seed" = [0, 1]
"""


@pytest.mark.slow
def test_two_simultaneous_sweeps_one_refused_other_equals_uninterrupted(tmp_path):
    spec = write_spec(tmp_path, TWO)
    out = tmp_path / "out"
    procs = [_sweep_cli(spec, out, "--workers", "0") for _ in range(2)]
    results = [(p, *p.communicate(timeout=600)) for p in procs]
    codes = sorted(p.returncode for p, _, _ in results)
    assert codes == [0, 2], [(p.returncode, e) for p, _, e in results]
    (winner, _, _), (loser, _, loser_err) = sorted(results, key=lambda r: r[0].returncode)
    line = _one_error_line(loser_err, "--out")
    assert f"pid {winner.pid}" in line
    run_sweep(spec, tmp_path / "reference", workers=0, stream=io.StringIO())
    assert read_table(out).to_pylist() == read_table(tmp_path / "reference").to_pylist()
    s = json.loads((out / "summary.json").read_text())
    assert (s["cells_done"], s["cells_failed"], s["cells_not_run"]) == (2, 0, 0)


def _complete_cells(out: Path) -> list[str]:
    d = out / "cells"
    if not d.is_dir():
        return []
    return [
        p.name for p in d.iterdir() if not p.name.startswith(".") and (p / "summary.json").is_file()
    ]


@pytest.mark.slow
def test_sigint_after_a_complete_cell_says_what_was_written(tmp_path):
    spec = write_spec(
        tmp_path,
        TWO.replace('"train.steps" = 400', '"train.steps" = 30000').replace(
            "[[6, 6], [7, 7]]", "[[6, 6], [7, 7], [8, 8]]"
        ),
    )
    out = tmp_path / "out"
    p = _sweep_cli(spec, out, "--workers", "0")
    t0 = time.monotonic()
    while not _complete_cells(out) and time.monotonic() - t0 < 300:
        time.sleep(0.1)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 130, err
    line = err.strip().splitlines()[-1]
    assert line.startswith("interrupted by SIGINT: wrote the table"), err
    s = _agree(out)
    assert s["interrupted"] and s["cells_done"] >= 1 and s["cells_not_run"] >= 1
    assert f"{s['cells_done']} computed, 0 reused, 0 failed, {s['cells_not_run']} not run" in line


@pytest.mark.slow
def test_killed_worker_without_retries_exits_4_naming_the_cell(tmp_path):
    import psutil

    spec = write_spec(tmp_path, TWO.replace('"train.steps" = 400', '"train.steps" = 20000'))
    out = tmp_path / "out"
    p = _sweep_cli(spec, out, "--workers", "1", "--retries", "0")

    def in_task(proc) -> bool:
        try:
            return any("jaxlib" in m.path for m in proc.memory_maps())
        except psutil.Error:
            return False

    t0 = time.monotonic()
    busy: list = []
    while not busy and time.monotonic() - t0 < 300:
        time.sleep(0.2)
        kids = psutil.Process(p.pid).children(recursive=True)
        busy = [k for k in kids if "spawn_main" in " ".join(k.cmdline()) and in_task(k)]
    assert busy and not _complete_cells(out)
    time.sleep(1)
    busy[0].kill()
    stdout, err = p.communicate(timeout=600)
    assert p.returncode == 4, err
    s = _agree(out, stdout)
    # only the cell that ran on the killed worker fails (not one queued behind it)
    assert (s["cells_failed"], s["cells_done"]) == (1, 1), s["failed"]
    for cell, why in s["failed"].items():
        assert f"cell {cell}: worker died" in err and why.startswith("worker died")
