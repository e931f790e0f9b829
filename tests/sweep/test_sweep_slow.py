"""Sweeps on real clusters: local and external Dask, a killed worker, a killed driver.

Each starts Dask processes and trains several cells, so all are slow tests.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_sweep import SPEC, write_spec

from condensation.sweep import run_sweep
from condensation.sweep.table import read_table

pytestmark = pytest.mark.slow

LONG = """\
[sweep]
command = "train"
base = "base.toml"
[sweep.set]
"train.steps" = 6000
[sweep.axes]
"model.widths" = [[6, 6], [7, 7], [8, 8], [9, 9]]
"init.seed" = [0, 1]
"""


def _env():
    src = str(Path(__file__).resolve().parents[2] / "src")
    return {**os.environ, "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", "")}


def _sweep_cli(spec: Path, out: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "condensation", "sweep", str(spec), "--out", str(out), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=_env(),
    )


def _complete_cells(out: Path) -> list[str]:
    d = out / "cells"
    if not d.is_dir():
        return []
    return sorted(
        p.name for p in d.iterdir() if not p.name.startswith(".") and (p / "summary.json").is_file()
    )


def _rows(out: Path) -> list[dict]:
    return read_table(out).to_pylist()


def _workers_of(pid: int) -> list:
    import psutil

    kids = psutil.Process(pid).children(recursive=True)
    return [k for k in kids if "spawn_main" in " ".join(k.cmdline())]


def _in_task(proc) -> bool:
    """A worker process runs a cell once it has loaded JAX (only a task imports it)."""
    import psutil

    try:
        return any("jaxlib" in m.path for m in proc.memory_maps())
    except psutil.Error:
        return False


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The LONG sweep, uninterrupted, in this process."""
    d = tmp_path_factory.mktemp("ref")
    spec = write_spec(d, LONG)
    run_sweep(spec, d / "out", workers=0, stream=io.StringIO())
    return _rows(d / "out")


def test_local_cluster_sweep_equals_in_process_sweep(tmp_path):
    spec = write_spec(tmp_path, SPEC)
    s = run_sweep(spec, tmp_path / "dask", workers=2, stream=io.StringIO())
    assert s["cells_done"] == 2 and s["members"] == 18
    run_sweep(spec, tmp_path / "inline", workers=0, stream=io.StringIO())
    assert _rows(tmp_path / "dask") == _rows(tmp_path / "inline")


def test_sigkill_driver_then_rerun_computes_only_the_rest(tmp_path, reference):
    spec = write_spec(tmp_path, LONG)
    out = tmp_path / "out"
    p = _sweep_cli(spec, out, "--workers", "1")
    t0 = time.monotonic()
    while not _complete_cells(out) and time.monotonic() - t0 < 300:
        time.sleep(0.2)
    workers = _workers_of(p.pid)
    done_before = _complete_cells(out)
    os.kill(p.pid, signal.SIGKILL)
    p.communicate()
    assert 1 <= len(done_before) < 4, done_before
    import psutil

    gone, alive = psutil.wait_procs(workers, timeout=30)
    assert not alive, "worker processes outlived the driver"
    p = _sweep_cli(spec, out, "--workers", "2")
    log, _ = p.communicate(timeout=600)
    assert p.returncode == 0, log
    s = json.loads((out / "summary.json").read_text())
    assert s["cells_reused"] >= len(done_before)
    assert s["cells_done"] == 4 - s["cells_reused"] and s["cells_failed"] == 0
    assert _rows(out) == reference


def test_killed_worker_cell_is_retried_every_cell_once(tmp_path, reference):
    spec = write_spec(tmp_path, LONG)
    out = tmp_path / "out"
    p = _sweep_cli(spec, out, "--workers", "2", "--retries", "2")
    t0 = time.monotonic()
    busy: list = []
    while len(busy) < 2 and time.monotonic() - t0 < 300:
        time.sleep(0.2)
        busy = [w for w in _workers_of(p.pid) if _in_task(w)]
    time.sleep(1)  # both workers are inside a cell now (each takes several seconds)
    assert len(busy) == 2 and not _complete_cells(out)
    busy[0].kill()
    log, _ = p.communicate(timeout=600)
    assert p.returncode == 0, log
    rows = _rows(out)
    s = json.loads((out / "summary.json").read_text())
    assert s["cells_done"] == 4 and s["cells_failed"] == 0, s
    assert sorted({r["cell"] for r in rows}) == _complete_cells(out)
    assert len(rows) == 8 and rows == reference  # every cell exactly once


def test_external_scheduler_and_two_workers(tmp_path, reference):
    """As the README shows: `dask scheduler`, two `dask worker`, `sweep --scheduler`."""
    dask = str(Path(sys.executable).with_name("dask"))
    sf = tmp_path / "scheduler.json"
    procs = [
        subprocess.Popen(
            [dask, "scheduler", "--port", "0", "--no-dashboard", "--scheduler-file", str(sf)],
            env=_env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    ]
    try:
        t0 = time.monotonic()
        while not sf.is_file() and time.monotonic() - t0 < 60:
            time.sleep(0.2)
        address = json.loads(sf.read_text())["address"]
        for _ in range(2):
            procs.append(
                subprocess.Popen(
                    [dask, "worker", address, "--nthreads", "1", "--no-dashboard"],
                    env={**_env(), "CONDENSATION_CPU_DEVICES": "1"},
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        spec = write_spec(tmp_path, LONG)
        p = _sweep_cli(spec, tmp_path / "out", "--scheduler", address)
        log, _ = p.communicate(timeout=600)
        assert p.returncode == 0, log
        assert _rows(tmp_path / "out") == reference
    finally:
        for q in procs:
            q.terminate()
        for q in procs:
            q.wait(timeout=30)


def test_sigterm_closes_the_cluster_and_keeps_complete_cells(tmp_path):
    spec = write_spec(tmp_path, LONG)
    out = tmp_path / "out"
    p = _sweep_cli(spec, out, "--workers", "2")
    t0 = time.monotonic()
    busy: list = []
    while len(busy) < 2 and time.monotonic() - t0 < 300:
        time.sleep(0.2)
        busy = [w for w in _workers_of(p.pid) if _in_task(w)]
    workers = _workers_of(p.pid)
    p.send_signal(signal.SIGTERM)
    log, _ = p.communicate(timeout=120)
    assert p.returncode in (130, 143), log  # 143 where the CLI maps SIGTERM itself
    assert "interrupted" in log
    import psutil

    _, alive = psutil.wait_procs(workers, timeout=30)
    assert not alive, "worker processes outlived the driver"
    s = json.loads((out / "summary.json").read_text())
    assert s["cells_not_run"] == 4 - s["cells_done"] and s["cells_failed"] == 0
    rows = _rows(out)
    assert len(rows) == 8 and {
        r["status"] for r in rows if r["cell"] not in _complete_cells(out)
    } <= {"not_run"}
