"""benchmarks/reference_runs.py: the record of reference runs issue 21's redesign is held to.

The compare logic on synthetic records (quick), and a tiny record made twice on the
same code, which must compare identical (slow: two subprocess runs)."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "reference_runs.py"


def _load():
    spec = importlib.util.spec_from_file_location("reference_runs", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("reference_runs", mod)
    spec.loader.exec_module(mod)
    return mod


ref = _load()


def _write_set(root: Path, escape_time: float, elapsed: float, loss: float = 0.25) -> Path:
    """A synthetic record: a manifest, a train run's summary and config, a sweep table."""
    (root / "train-default").mkdir(parents=True)
    (root / "sweep").mkdir()
    manifest = {
        "format": 1,
        "runs": [
            {"name": "train-default", "rc": 0, "wall_s": elapsed},
            {"name": "sweep", "rc": 0, "wall_s": elapsed},
        ],
    }
    (root / "manifest.json").write_text(json.dumps(manifest))
    summary = {
        "kind": "train",
        "steps": 12000,
        "elapsed_s": elapsed,
        "members": [
            {"seed": 0, "escape_time": 1.5, "median_abs_cos": math.nan},
            {"seed": 1, "escape_time": escape_time, "loss_final": loss},
        ],
    }
    (root / "train-default" / "summary.json").write_text(json.dumps(summary))
    (root / "train-default" / "config.toml").write_text(
        f'[data]\npath = "/somewhere/{elapsed}/x.csv"\n[train]\nlr = 0.05\n'
    )
    (root / "sweep" / "results.csv").write_text(
        f"cell,status,escape_time\nab12,ok,{escape_time!r}\ncd34,ok,\n"
    )
    return root


def test_equal_sets_compare_identical(tmp_path, capsys):
    a = _write_set(tmp_path / "a", 367.95, 1.0)
    b = _write_set(tmp_path / "b", 367.95, 1.0)
    assert ref.compare_sets(a, b) == []
    assert ref.main(["compare", str(a), str(b)]) == 0
    assert "identical" in capsys.readouterr().out


def test_last_bit_change_is_a_difference_naming_the_key(tmp_path, capsys):
    x = 367.95
    y = math.nextafter(x, math.inf)
    assert x != y
    a = _write_set(tmp_path / "a", x, 1.0)
    b = _write_set(tmp_path / "b", y, 1.0)
    assert ref.main(["compare", str(a), str(b)]) == 1
    out = capsys.readouterr().out
    assert f"train-default/members[1].escape_time: {x!r} != {y!r}" in out
    assert f"sweep/results.csv[0].escape_time: {x!r} != {y!r}" in out
    assert "2 difference(s)" in out


def test_ignored_keys_do_not_count(tmp_path):
    # elapsed_s (summary), wall_s (manifest) and the absolute data path (config.toml)
    # all differ; nothing else does.
    a = _write_set(tmp_path / "a", 367.95, 1.0)
    b = _write_set(tmp_path / "b", 367.95, 2.5)
    assert ref.compare_sets(a, b) == []
    assert {"elapsed_s", "wall_s", "path"} <= set(ref.IGNORED_KEYS)


def test_types_signs_lengths_files_and_runs_are_differences(tmp_path):
    a = _write_set(tmp_path / "a", 367.95, 1.0, loss=0.0)
    b = _write_set(tmp_path / "b", 367.95, 1.0, loss=-0.0)
    assert ref.compare_sets(a, b) == ["train-default/members[1].loss_final: 0.0 != -0.0"]
    s = json.loads((b / "train-default" / "summary.json").read_text())
    s["steps"] = 12000.0  # int -> float
    s["members"].append({"seed": 2})
    del s["kind"]
    (b / "train-default" / "summary.json").write_text(json.dumps(s))
    (b / "sweep" / "extra.json").write_text("{}")
    m = json.loads((b / "manifest.json").read_text())
    m["runs"][1]["rc"] = 4
    (b / "manifest.json").write_text(json.dumps(m))
    diffs = ref.compare_sets(a, b)
    assert "sweep: exit status 0 != 4" in diffs
    assert "sweep/extra.json: file only in B" in diffs
    assert "train-default/kind: only in A ('train')" in diffs
    assert "train-default/steps: 12000 != 12000.0 (int vs float)" in diffs
    assert "train-default/members: length 2 != 3" in diffs


def test_nan_equals_nan_but_not_a_number():
    assert ref.same_scalar(math.nan, float("nan"))
    assert not ref.same_scalar(math.nan, 0.0)
    assert not ref.same_scalar(True, 1)
    out: list[str] = []
    ref.diff_values({"a": [1, {"b": "x"}]}, {"a": [1, {"b": "y"}]}, "run/", out)
    assert out == ["run/a[1].b: 'x' != 'y'"]


def test_record_refuses_a_non_empty_dir_and_unknown_runs(tmp_path, capsys):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "f").write_text("x")
    assert ref.main(["record", str(tmp_path / "full")]) == 2
    assert ref.main(["record", str(tmp_path / "new"), "--only", "nope"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(line.startswith("error: ") for line in err)
    assert not (tmp_path / "new").exists()
    assert (tmp_path / "full" / "f").read_text() == "x"


def test_the_committed_reference_is_complete():
    """The committed record is complete: every run exited 0 and kept its summary."""
    root = SCRIPT.parent / "reference"
    manifest = json.loads((root / "manifest.json").read_text())
    assert [r["name"] for r in manifest["runs"]] == [r.name for r in ref.RUNS]
    assert all(r["rc"] == 0 for r in manifest["runs"])
    for r in manifest["runs"]:
        assert f"{r['name']}/summary.json" in r["files"]
    assert ref.compare_sets(root, root) == []


@pytest.mark.slow
def test_a_tiny_record_twice_is_identical(tmp_path):
    """Two records of the same run on the same code compare identical (deterministic)."""
    for d in ("one", "two"):
        assert ref.main(["record", str(tmp_path / d), "--only", "train-default"]) == 0
    assert (tmp_path / "one" / "train-default" / "summary.json").is_file()
    assert ref.main(["compare", str(tmp_path / "one"), str(tmp_path / "two")]) == 0
