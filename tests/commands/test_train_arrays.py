"""What a train run writes to ``arrays/`` under ``[train] save``: everything for
small networks, and for wide ones at most ``ARRAYS_BUDGET_BYTES`` of weights, the
last snapshot first, with one summary note per thinned layer (issue 22)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from condensation import load_run
from condensation.commands import train_arrays
from condensation.core import snapshots

SMALL = ["model.widths=[3, 12]", "train.steps=80", "train.snapshots=6", "train.linear_snapshots=8"]
FEW = [*SMALL[:2], "train.snapshots=2", "train.linear_snapshots=2"]


@settings(max_examples=200, deadline=None)
@given(
    stored=st.lists(st.integers(1, 40), min_size=1, max_size=5),
    sizes=st.lists(st.floats(1.0, 1e9), min_size=5, max_size=5),
    budget=st.floats(1.0, 1e10),
)
def test_the_written_weights_fit_the_budget_last_snapshot_first(stored, sizes, budget):
    sizes = sizes[: len(stored)]
    full = snapshots.written_plan("full", stored, sizes, budget=budget)
    assert all(p.tolist() == list(range(k)) and s for (p, s), k in zip(full, stored))
    plan = snapshots.written_plan("bounded", stored, sizes, budget=budget)
    written = sum((len(p) + 2 * s) * b for (p, s), b in zip(plan, sizes))
    assert written <= budget * (1 + 1e-12)
    if sum((k + 2) * b for k, b in zip(stored, sizes)) <= budget:
        assert [(p.tolist(), s) for p, s in plan] == [(p.tolist(), s) for p, s in full]
    for (pos, states), k in zip(plan, stored):
        assert np.all(np.diff(pos) > 0) and (pos.size == 0 or (0 <= pos[0] and pos[-1] < k))
        if pos.size or states:
            assert pos[-1] == k - 1  # the last snapshot before anything else
        if pos.size > 1:
            assert pos[0] == 0  # further snapshots spread from the first


def test_a_wide_layer_is_thinned_in_the_files_and_the_summary_says_so(
    tmp_path, cli_streams, monkeypatch
):
    # 4 snapshots (steps 0, 1, 40, 80); W1, W2, W3 are 120, 288 and 96 bytes a copy:
    # 2100 bytes hold W3 and W1 whole (576 and 720 with both states) and W2 (288 x 6)
    # at its last snapshot and its first (the 804 left hold 2 copies, not the last
    # and both states: 864)
    monkeypatch.setattr(train_arrays, "ARRAYS_BUDGET_BYTES", 2100)
    monkeypatch.setattr(snapshots, "ARRAYS_BUDGET_BYTES", 2100)
    args = [a for s in FEW for a in ("--set", s)]
    code, out, err = cli_streams("train", *args, "--out", str(tmp_path / "run"))
    assert code == 0, err
    run = load_run(tmp_path / "run")
    s, esc = run.arrays["snapshots"], run.arrays["escape_params"]
    k = s["steps"].size
    assert k == 4
    assert s["W1"].shape[1] == k and s["W3"].shape[1] == k
    assert s["W2_steps"].tolist() == [s["steps"][0], s["steps"][-1]]
    assert "W1" in esc and "W3" in esc and "W2" not in esc
    assert "W2" not in run.arrays["plateau_exit_params"]
    notes = [n for n in run.summary["notes"] if n.startswith("arrays: W2")]
    assert len(notes) == 1 and "at 2 of its 4 stored" in notes[0]
    assert 'train.save = "full"' in notes[0]
    assert notes[0] in " ".join(out.split())  # on the console too
    # the metrics still use every stored snapshot, not only the written ones
    assert not np.isnan(run.arrays["metrics"]["w_sigma_ratio"]).any()
    # at the default budget this run writes everything (no note)
    sizes = [w[:, 0].nbytes for w in (s["W1"], s["W2"], s["W3"])]
    default = snapshots.written_plan("bounded", [k, k, k], sizes, budget=90e6)
    assert all(len(pos) == k and states for pos, states in default)
