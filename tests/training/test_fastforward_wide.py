"""Fast-forward at any width (issue 22 item 2): what changed to make it scale is
checked against what it replaced.

- a bounded run (a layer thinned) keeps exactly what a full run keeps there;
- the final-stage check with witnesses gives the verdicts of the full check;
- the narrowing search over the solver's steps finds what a scan finds;
- the memory estimate covers fast-forward, and refuses it up front in one line;
- a signal is seen while the main thread is inside one long C call.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from condensation import interrupts, load_config
from condensation.commands import train as runs_train
from condensation.config import checks as inputs
from condensation.core import snapshots
from condensation.core.final_stage import final_stage_holds
from condensation.core.solve_memory import QUERY_FLOATS, query_chunk, solve_bytes
from condensation.errors import InputError
from condensation.training import fastforward as ff
from condensation.training.ff_plan import first_candidate

SMALL3 = ["model.widths=[6, 12]", "init.scale=1e-2", "train.steps=auto", "train.fast_forward=true"]


@pytest.mark.slow  # ~30 s; tests/training/test_wide.py covers bounded storage without it
def test_a_bounded_fast_forward_keeps_what_a_full_one_keeps(monkeypatch):
    cfg = load_config(None, SMALL3)
    full = runs_train.run_training(runs_train.prepare_run(cfg), save="full").result
    # a budget that thins the middle layer: the hand-off stores only its kept states
    monkeypatch.setattr(snapshots, "BUDGET_BYTES", 4000)
    bounded = runs_train.run_training(runs_train.prepare_run(cfg)).result
    idx = bounded.snapshot_index
    assert idx is not None and idx[1] is not None and len(idx[1]) < len(full.snapshot_steps)
    for k in range(3):
        keep = slice(None) if idx[k] is None else idx[k]
        np.testing.assert_array_equal(bounded.snapshots[k], full.snapshots[k][:, keep])
    np.testing.assert_array_equal(bounded.snapshot_loss, full.snapshot_loss)
    for name, v in full.measures.items():
        np.testing.assert_array_equal(bounded.measures[name], v, err_msg=name)
    np.testing.assert_array_equal(bounded.escape_step, full.escape_step)
    np.testing.assert_array_equal(bounded.final_stage_step, full.final_stage_step)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), m1=st.integers(1, 6), m2=st.integers(1, 6))
def test_the_witness_check_gives_the_full_checks_verdicts(seed, m1, m2):
    rng = np.random.default_rng(seed)
    t = 12
    # a drifting state: both constraints hold more often as the drift grows
    drift = np.linspace(0, 2, t)[:, None, None]
    w = rng.normal(size=(t, m2, m1)) + drift * np.abs(rng.normal(size=(1, m2, m1)))
    a = rng.normal(size=(t, m2)) + drift[:, :, 0]
    b = rng.normal(size=(t, m1, 3))
    z = np.array([1.0, 0.5, -0.2])
    v = np.einsum("ti,tij->tj", a, w)  # W^T a
    b = b * (np.sign(b @ z) * np.sign(v))[..., None]  # the inner constraint holds often
    ws = [b, w, a[:, None, :]]
    check = ff.FinalStageCheck(z)
    got = check(ws)
    want = final_stage_holds(a, w, b @ z, xp=np)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(check(ws), want)  # again, starting from its witnesses


class _Line:
    """A trajectory whose state at step k is k itself; counts the states it returns."""

    def __init__(self, chunk):
        self.chunk, self.queried = chunk, 0

    def at(self, ks):
        ks = np.asarray(ks)
        assert ks.size <= self.chunk
        self.queried += ks.size
        return [ks.astype(float)]


@settings(max_examples=60, deadline=None)
@given(
    steps=st.lists(st.integers(1, 10**6), min_size=0, max_size=400, unique=True),
    cut=st.integers(0, 10**6 + 1),
    chunk=st.sampled_from([4, 8, 32]),
)
def test_the_narrowing_search_finds_what_a_scan_finds(steps, cut, chunk):
    ks = np.sort(np.asarray(steps, dtype=np.int64))
    traj = _Line(chunk)
    lo, hi = first_candidate(traj, lambda ws: ws[0] >= cut, ks)
    holds = ks[ks >= cut]
    if holds.size == 0:
        assert hi is None and lo == (int(ks[-1]) if ks.size else 0)
    else:
        j = int(np.searchsorted(ks, cut))
        assert hi == int(ks[j]) and lo == (int(ks[j - 1]) if j > 0 else 0)
    if ks.size > 4 * chunk:  # far fewer states than the scan's
        assert traj.queried < ks.size


def test_wide_trajectories_query_fewer_states():
    assert query_chunk(10_000) == 32
    p = 4_000_000  # a width-2000 three-layer network
    assert query_chunk(p) * p <= QUERY_FLOATS and query_chunk(p) >= 4
    # grows at most like the parameters (fewer states per query as they grow)
    assert solve_bytes(p) < solve_bytes(2 * p) <= 2 * solve_bytes(p)


def test_the_memory_estimate_covers_fast_forward(monkeypatch):
    over = ["model.widths=[1500, 1500]", "train.steps=100"]
    plain = inputs.train_memory(100, 5, (1500, 1500), 1, 100, "float64", "bounded")
    fast = inputs.train_memory(
        100, 5, (1500, 1500), 1, 100, "float64", "bounded", fast_forward=True, predict=True
    )
    assert fast["fast-forward"] > 0 and sum(fast.values()) > sum(plain.values()) * 1.5
    limit = (sum(plain.values()) + sum(fast.values())) / 2
    monkeypatch.setenv(inputs.MEMORY_ENV, str(limit))
    assert inputs.check_train_memory(load_config(None, over), 100, 5) <= limit
    cfg = load_config(None, [*over, "train.fast_forward=true"])
    with pytest.raises(InputError) as e:
        inputs.check_train_memory(cfg, 100, 5)
    assert e.value.field == "model.widths" and "fast-forward" in e.value.problem


def test_a_fast_forward_too_large_is_refused_before_compute(cli_main, tmp_path, monkeypatch):
    monkeypatch.setenv(inputs.MEMORY_ENV, "2e9")
    out = tmp_path / "run"
    code, err = cli_main(
        "train", "--set", "model.widths=[3000, 3000]", "--set", "train.steps=auto",
        "--set", "train.fast_forward=true", "--out", str(out),
    )  # fmt: skip
    assert code == 2
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and "model.widths" in lines[0] and "fast-forward" in lines[0], err
    assert not out.exists()


_WATCHED = textwrap.dedent(
    """
    import os, signal, sys, threading, time
    import numpy as np
    from condensation import interrupts
    signal.signal(signal.SIGTERM, lambda *a: None)  # the Python handler waits: C call
    t = {}
    def overdue(signum):
        sys.stdout.write("%.3f\\n" % (time.monotonic() - t["sent"])); sys.stdout.flush()
        os._exit(128 + signum)
    assert interrupts.arm(overdue, grace=float(sys.argv[1]))
    def send():
        time.sleep(0.3); t["sent"] = time.monotonic(); os.kill(os.getpid(), signal.SIGTERM)
    threading.Thread(target=send).start()
    a = np.random.default_rng(0).normal(size=(2500, 2500))
    for _ in range(20):  # long C calls: the Python handler cannot run in between them all
        np.linalg.eigh(a @ a.T)
    print("finished")
    """
)


def test_a_signal_during_a_long_c_call_ends_the_process_within_the_grace():
    r = subprocess.run(
        [sys.executable, "-c", _WATCHED, "0.5"], capture_output=True, text=True, timeout=300
    )
    assert r.returncode == 143, r.stdout + r.stderr
    assert float(r.stdout.split()[0]) < 0.5 + 1.0, r.stdout  # grace + a thread switch


def test_pending_is_set_by_a_signal_and_cleared_by_disarm():
    if os.name != "posix":
        pytest.skip("signals")
    import signal

    old = signal.signal(signal.SIGUSR1, lambda *a: None)
    try:
        assert not interrupts.pending()
        assert interrupts.arm(None)
        os.kill(os.getpid(), signal.SIGUSR1)  # not watched
        time.sleep(0.2)
        assert not interrupts.pending()
        old_term = signal.signal(signal.SIGTERM, lambda *a: None)
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            deadline = time.monotonic() + 5
            while not interrupts.pending() and time.monotonic() < deadline:
                time.sleep(0.01)
            assert interrupts.pending()
        finally:
            signal.signal(signal.SIGTERM, old_term)
    finally:
        interrupts.disarm()
        signal.signal(signal.SIGUSR1, old)
    assert not interrupts.pending()
