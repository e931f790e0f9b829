"""Never losing data, honest exits, resumable runs, paths, loading runs back."""

import fcntl
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from helpers import ctrl_c_in_train

from condensation.errors import InputError
from condensation.store import rundir as store

TINY = ["model.widths=[4, 4]", "train.steps=60", "train.snapshots=4", "train.linear_snapshots=3"]


def _sets(items):
    return [a for s in items for a in ("--set", s)]


def _write_run(out, files=("summary.json", "arrays/a.npz"), **kw):
    with store.run_directory(out, **kw) as tmp:
        for f in files:
            (tmp / f).parent.mkdir(parents=True, exist_ok=True)
            (tmp / f).write_text("{}")


def partial_by_child(out):
    """A partial directory made by ``store.new_partial`` in a child process that is
    still running: ``(path, the child)``."""
    code = (
        "import sys, time; from condensation.store import rundir as store; "
        "print(store.new_partial(sys.argv[1]), flush=True); time.sleep(120)"
    )
    child = subprocess.Popen([sys.executable, "-c", code, str(out)], stdout=subprocess.PIPE)
    with child.stdout:
        return Path(child.stdout.readline().decode().strip()), child


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


# ---- item 2: never delete what the tool did not create ---------------------------------

def assert_same_run(out, ref) -> None:
    """Two run directories hold equal summaries and bit-identical arrays."""
    from condensation import load_run

    a, b = load_run(out), load_run(ref)
    assert a.summary == b.summary
    assert set(a.arrays) == set(b.arrays)
    for name in a.arrays:
        for k in a.arrays[name].files:
            np.testing.assert_array_equal(a.arrays[name][k], b.arrays[name][k])


def test_out_refuses_what_the_tool_did_not_write(tmp_path):
    c2 = tmp_path / "c2"  # the example: a summary.json is no longer a passport
    c2.mkdir()
    (c2 / "summary.json").write_text("{}")
    (c2 / "thesis.tex").write_text("precious")
    with pytest.raises(InputError, match="not written by condensation"):
        _write_run(c2, overwrite=True)
    assert (c2 / "thesis.tex").read_text() == "precious"

    run = tmp_path / "run"
    _write_run(run)
    marker = store.read_marker(run)
    assert marker["files"] == ["arrays/a.npz", "summary.json"] and marker["tool"] == "condensation"
    with pytest.raises(InputError, match="--overwrite"):  # an earlier run needs the flag
        _write_run(run, files=("summary.json",))
    (run / "notes.txt").write_text("mine")  # a user's file inside a run: never replaced
    with pytest.raises(InputError, match="notes.txt"):
        _write_run(run, files=("summary.json",), overwrite=True)
    assert (run / "notes.txt").read_text() == "mine"
    (run / "notes.txt").unlink()
    _write_run(run, files=("summary.json",), overwrite=True)
    assert not (run / "arrays").exists() and store.read_marker(run)["files"] == ["summary.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c2", "run"]  # no lock, no partial


def test_two_runs_on_one_out_cannot_both_succeed(tmp_path):
    out = tmp_path / "run"
    lock = store.lock_path(out)
    # another live run holds the lock (an flock on the file, its owner record inside)
    dead = _dead_pid()
    fd = os.open(lock, os.O_CREAT | os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    os.write(fd, json.dumps({**store.owner_record(), "pid": dead}).encode())
    try:
        with pytest.raises(InputError, match=f"another run.*{dead}"):
            _write_run(out)
    finally:
        os.close(fd)  # that run is killed: its lock file stays, unlocked
    assert lock.exists() and not out.exists()
    _write_run(out)  # a stale lock of ours (holder gone) is taken over, then removed
    assert out.is_dir() and not lock.exists()


def test_stale_partial_directories_are_cleaned_and_interrupted_replace_restored(tmp_path):
    out = tmp_path / "run"
    dead = _dead_pid()

    def partial_of(pid):  # a partial directory as a run of process ``pid`` left it
        q = store.new_partial(out)
        m = store.read_marker(q)
        m["owner"]["pid"] = pid
        (q / store.MARKER).write_text(json.dumps(m))
        (q / "summary.json").write_text("{}")
        return q

    stale = partial_of(dead)
    live, child = partial_by_child(out)  # a live process's: left alone
    try:
        _write_run(out)
        assert not stale.exists() and live.exists()
    finally:
        child.kill()
        child.wait()
    # killed between the two renames of a replacement: the old run is put back
    src = partial_of(dead)
    store.write_marker(src)
    real_replace = os.replace

    def killed_after_first_rename(a, b):
        real_replace(a, b)
        if Path(a) == out:
            raise SystemExit("killed")

    with pytest.MonkeyPatch.context() as m:
        m.setattr(os, "replace", killed_after_first_rename)
        with pytest.raises(SystemExit):
            store.put_in_place(src, out)
    assert not out.exists() and src.exists()
    m = store.read_marker(src)  # (the process that was killed is gone)
    m["replaces"]["owner"]["pid"] = dead
    (src / store.MARKER).write_text(json.dumps(m))
    store.clean_stale(out)
    assert store.is_run_dir(out) and not src.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # (live's child was killed)


def test_out_checks_before_compute(tmp_path, monkeypatch):
    _write_run(tmp_path / "run")
    monkeypatch.chdir(tmp_path / "run")  # --out . inside an earlier run: refused, no ..partial
    with pytest.raises(InputError, match="working directory"):
        _write_run(".", overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]
    with pytest.raises(InputError, match="MB free"):
        store.check_free_space(tmp_path / "run", 1e18)
    (tmp_path / "file.txt").write_text("x")  # a parent that cannot hold a directory
    with pytest.raises(InputError, match="cannot be written"):
        _write_run(tmp_path / "file.txt" / "run")
    assert (tmp_path / "file.txt").read_text() == "x"


def test_permissions_follow_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        _write_run(tmp_path / "run")
        store.atomic_write_bytes(tmp_path / "run" / "report.html", b"<html/>")
    finally:
        os.umask(old)
    run = tmp_path / "run"
    assert run.stat().st_mode & 0o777 == 0o755
    assert (run / "arrays").stat().st_mode & 0o777 == 0o755
    for f in ("summary.json", "report.html", ".condensation-run"):
        assert (run / f).stat().st_mode & 0o777 == 0o644, f


# ---- item 7: paths -------------------------------------------------------------------
def test_config_paths_resolve_against_the_config_file(tmp_path, monkeypatch, rng):
    from condensation import load_config, load_dataset

    sub = tmp_path / "project"
    sub.mkdir()
    x = rng.standard_normal((12, 3))
    np.savetxt(sub / "d.csv", np.column_stack([x, x[:, 0]]), delimiter=",")
    (sub / "c.toml").write_text('[data]\npath = "d.csv"\n')
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    cfg = load_config(sub / "c.toml")
    assert cfg.data.path == str(sub / "d.csv")  # absolute: config.toml re-runs anywhere
    assert load_dataset(cfg.data).x.shape == (12, 3)
    # a --set path is the user's command line: against the working directory
    cfg = load_config(sub / "c.toml", ["data.path='d.csv'"])
    assert cfg.data.path == str(elsewhere / "d.csv")


# ---- items 3, 4, 9 through the CLI ---------------------------------------------------
def test_cli_ctrl_c_exits_130_keeps_checkpoint_then_resume(tmp_path, cli_main, monkeypatch):
    from condensation import load_run

    monkeypatch.setenv("CONDENSATION_CHECKPOINT_EVERY", "0")
    out = tmp_path / "run"

    with ctrl_c_in_train(at_step=20):
        code, err = cli_main("train", *_sets(TINY), "--out", str(out))
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 130 and len(lines) == 1 and "--resume" in lines[0], err
    assert not out.exists() and not store.lock_path(out).exists()
    assert [p.name for p in tmp_path.iterdir()] == [".run.checkpoint"]  # no partial dir

    code, err = cli_main("train", *_sets(TINY), "--out", str(out), "--resume")
    assert code == 0, err
    assert [p.name for p in tmp_path.iterdir()] == ["run"]
    ref = tmp_path / "ref"
    assert cli_main("train", *_sets(TINY), "--out", str(ref))[0] == 0
    a, b = load_run(out), load_run(ref)
    assert a.kind == "train" and a.summary == b.summary
    for name in a.arrays:
        for k in a.arrays[name].files:
            np.testing.assert_array_equal(a.arrays[name][k], b.arrays[name][k])
    # load_run: shapes as the README documents them
    e, k = len(a.summary["members"]), a.arrays["snapshots"]["steps"].shape[0]
    assert a.arrays["snapshots"]["W1"].shape == (e, k, 4, a.summary["d_in"])
    assert a.arrays["snapshots"]["loss"].shape == (e, k)
    assert a.config["model"]["widths"] == [4, 4]
    # the finished run: --resume says so; a plain rerun needs --overwrite
    code, _ = cli_main("train", *_sets(TINY), "--out", str(out), "--resume")
    assert code == 0
    code, err = cli_main("train", *_sets(TINY), "--out", str(out))
    assert code == 2 and "--overwrite" in err


def _wait_for(path: Path, timeout: float = 120.0, index: int = 0) -> None:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        try:
            if json.loads(path.read_text())["index"] > index:
                return
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.05)
    raise AssertionError(f"{path} did not appear")


@pytest.mark.slow
def test_sigterm_then_sigkill_then_resume_equals_uninterrupted(tmp_path, cli_main):
    """A subprocess run SIGTERMed (exit 143, one line, no partial directory), resumed
    and SIGKILLed after a checkpoint, resumed again: the result is bit-identical."""

    sets = _sets(["model.widths=[8, 8]", "train.steps=2000"])
    out = tmp_path / "run"
    meta = tmp_path / ".run.checkpoint" / "meta.json"
    env = {**os.environ, "CONDENSATION_CHECKPOINT_EVERY": "0"}
    cmd = [sys.executable, "-m", "condensation", "train", *sets, "--out", str(out)]

    p = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for(meta)
    t0 = time.monotonic()
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 143 and time.monotonic() - t0 < 10, err
    # the progress lines a batch log gets ("gd steps 400/2000 done, eta 3 s"), then one line
    lines = [x for x in err.strip().splitlines() if not re.search(r" \d+/\d+ done", x)]
    assert len(lines) == 1 and "SIGTERM" in lines[0], err
    assert sorted(q.name for q in tmp_path.iterdir()) == [".run.checkpoint"]
    index = json.loads(meta.read_text())["index"]

    p = subprocess.Popen([*cmd, "--resume"], env=env, stderr=subprocess.DEVNULL)
    _wait_for(meta, index=index + 1)
    p.kill()
    p.wait(timeout=60)
    done = subprocess.run([*cmd, "--resume"], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert sorted(q.name for q in tmp_path.iterdir()) == ["run"]

    ref = tmp_path / "ref"
    assert cli_main("train", *sets, "--out", str(ref))[0] == 0
    assert_same_run(out, ref)


def test_sigkill_then_resume_equals_uninterrupted(tmp_path, cli_main, monkeypatch):
    """A subprocess run SIGKILLed after its first checkpoints; the same command with
    --resume (in-process) finishes it bit-identical to an uninterrupted run."""

    sets = _sets(TINY[:1] + ["train.steps=3000"])
    out = tmp_path / "run"
    env = {**os.environ, "CONDENSATION_CHECKPOINT_EVERY": "0"}
    cmd = [sys.executable, "-m", "condensation", "train", *sets, "--out", str(out)]
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for(tmp_path / ".run.checkpoint" / "meta.json", index=2)
    finally:
        p.kill()
        p.wait(timeout=60)
    assert not out.exists()
    monkeypatch.setenv("CONDENSATION_CHECKPOINT_EVERY", "0")
    code, err = cli_main("train", *sets, "--out", str(out), "--resume")
    assert code == 0, err
    assert sorted(q.name for q in tmp_path.iterdir()) == ["run"]  # checkpoint, lock gone
    ref = tmp_path / "ref"
    assert cli_main("train", *sets, "--out", str(ref))[0] == 0
    assert_same_run(out, ref)


def test_matrix_trainer_resumes_bit_identical(tmp_path):
    """The matrix trainer's carry and series survive an interrupt and a resume."""
    from condensation import matrix as mx
    from condensation.store.checkpoint import Checkpoint
    from condensation.training.network import snapshot_steps

    cfg = mx.matrix_config_from_dict(
        {"problem": {"n": 6, "rank": 2, "observed": 24}, "model": {"depth": 3}}
    )
    problem = mx.load_problem(cfg.problem)
    ens = mx.init_ensemble(cfg, problem.shape)
    kw = dict(lr=0.05, steps=200, snapshots=snapshot_steps(200, 5, 4))
    ref = mx.train_factorisation(problem, ens.params, **kw)

    def interrupt(step):
        if step >= 50:
            raise KeyboardInterrupt

    ck = Checkpoint(tmp_path / "ck", key="k")
    with pytest.raises(KeyboardInterrupt):
        mx.train_factorisation(problem, ens.params, **kw, progress=interrupt, checkpoint=ck)
    ck.flush()  # what the CLI does on an interrupt (the periodic saves were throttled)
    assert json.loads((ck.dir / "meta.json").read_text())["index"] >= 1
    with pytest.raises(InputError, match="another command"):
        mx.train_factorisation(problem, ens.params, **kw, checkpoint=Checkpoint(ck.dir, "x", True))
    got = mx.train_factorisation(
        problem, ens.params, **kw, checkpoint=Checkpoint(ck.dir, key="k", resume=True)
    )
    for k, v in ref.series.items():
        np.testing.assert_array_equal(got.series[k], v, err_msg=k)
    for a, b in zip(got.final_params, ref.final_params):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(got.escape_step, ref.escape_step)


def test_checkpoint_chunks_cover_the_interval():
    from condensation.store.checkpoint import Pacer

    assert list(Pacer(4).pieces(3, 10)) == [(3, 7), (7, 10)]
    assert list(Pacer(0).pieces(0, 2)) == [(0, 1), (1, 2)]


def test_load_run_reproduce_children_and_lazy_arrays(tmp_path):
    from condensation import load_run

    with pytest.raises(InputError, match="not a run directory"):
        load_run(tmp_path)
    out = tmp_path / "rep"
    with store.run_directory(out) as tmp:
        store.write_json(tmp / "summary.json", {"kind": "reproduce", "experiments": ["a"]})
        (tmp / "a" / "arrays").mkdir(parents=True)
        store.write_json(tmp / "a" / "summary.json", {"kind": "experiment", "params": {"k": 1}})
        store.save_arrays(tmp / "a" / "arrays" / "line.npz", v=np.arange(5.0))
        np.save(tmp / "a" / "arrays" / "big.npy", np.ones((3, 2)))
    run = load_run(out)
    assert run.kind == "reproduce" and run.marker["files"] and list(run.children) == ["a"]
    a = run.children["a"]
    assert a.kind == "experiment" and a.summary["params"] == {"k": 1} and a.config == {}
    assert sorted(a.arrays) == ["big", "line"]
    np.testing.assert_array_equal(a.arrays["line"]["v"], np.arange(5.0))
    assert isinstance(a.arrays["big"], np.memmap) and a.arrays["big"].shape == (3, 2)
    a.arrays.close()


@pytest.mark.slow
def test_effective_cli_spectral_form_and_depth_4_regressions(tmp_path, cli_main):
    """The issue's two crashes: the spectral form has no law_drift to plot; at depth 4
    the T* bounds are None and were formatted as numbers."""
    code, err = cli_main(
        "effective", "--set", "model.widths=[6, 6]", "--form", "spectral",
        "--out", str(tmp_path / "spectral"),
    )  # fmt: skip
    assert code == 0, err
    s = json.loads((tmp_path / "spectral" / "summary.json").read_text())
    assert s["form"] == "spectral" and s["members"][0]["T_star"] > 0
    code, err = cli_main(
        "effective", *_sets(["model.depth=4", "model.widths=[6, 6, 6]", "init.scale=3e-2"]),
        "--out", str(tmp_path / "d4"),
    )  # fmt: skip
    assert code == 0, err
    m = json.loads((tmp_path / "d4" / "summary.json").read_text())["members"][0]
    assert m["T_star"] > 0 and m["T_star_lower"] is None
