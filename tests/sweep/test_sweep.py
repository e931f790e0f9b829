"""`condensation sweep`: cells equal single runs, resume, bad specs, the engine, progress."""

from __future__ import annotations

import io
import json
import os
import textwrap
from pathlib import Path

import numpy as np
import pytest

from condensation.engine import Engine, Task
from condensation.errors import InputError
from condensation.progress import Progress, fmt_duration
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
steps = 300
snapshots = 3
linear_snapshots = 2
"""

SPEC = """\
[sweep]
command = "train"
base = "base.toml"
[sweep.axes]
"init.scale" = [1e-1, 3e-2, 3e-3]
"model.widths" = [[6, 6], [9, 9]]
"init.seed" = [0, 1, 2]
"""


def write_spec(d: Path, spec: str = SPEC, base: str = BASE) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    (d / "base.toml").write_text(base)
    (d / "spec.toml").write_text(textwrap.dedent(spec))
    return d / "spec.toml"


@pytest.fixture(scope="module")
def cluster():
    """One local Dask cluster (single-threaded worker processes) for the module."""
    from distributed import LocalCluster

    with LocalCluster(  # the dashboard on a free port: 8787 may be taken
        n_workers=1, threads_per_worker=1, processes=True, dashboard_address=":0"
    ) as c:
        yield c.scheduler_address


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    """The 3 scales x 2 widths x 3 seeds sweep of train, run once for the module
    (engine in this process: the cluster runs of the same sweep are slow tests)."""
    d = tmp_path_factory.mktemp("sweep")
    spec = write_spec(d)
    s = run_sweep(spec, d / "out", workers=0, stream=io.StringIO())
    return d, s


def test_sweep_rows_equal_single_train_runs(swept, cli_main, tmp_path):
    d, s = swept
    out = d / "out"
    assert s["kind"] == "sweep" and s["cells"] == 2 and s["members"] == 18
    assert s["cells_done"] == 2 and s["cells_reused"] == 0 and s["cells_failed"] == 0
    rows = read_table(out).to_pylist()
    assert len(rows) == 18
    assert list(rows[0])[:6] == [
        "init.scale",
        "model.widths",
        "init.seed",
        "cell",
        "status",
        "error",
    ]
    # folded: one cell (one compiled ensemble) per width, with all 9 seed x scale members
    by_cell: dict[str, list] = {}
    for r in rows:
        by_cell.setdefault(r["cell"], []).append(r)
    assert sorted(len(v) for v in by_cell.values()) == [9, 9]
    for cid, members in by_cell.items():
        cfg = (out / "cells" / cid / "config.toml").read_text()
        assert "seeds = [" in cfg and "scales = [" in cfg
        assert len({m["model.widths"] for m in members}) == 1
    from condensation.commands.train import member_summaries, run_training
    from condensation.config.network import load_config

    escaped = 0
    for i, r in enumerate(rows):
        widths = json.loads(r["model.widths"])
        sets = [
            f"init.scale={r['init.scale']}",
            f"init.seed={r['init.seed']}",
            f"model.widths={widths}",
        ]
        if i in (0, 17):  # the CLI itself, as a user would run the single cell
            run_dir = tmp_path / f"single{i}"
            args = sum((["--set", x] for x in sets), [])
            code, err = cli_main("train", str(d / "base.toml"), *args, "--out", str(run_dir))
            assert code == 0, err
            m = json.loads((run_dir / "summary.json").read_text())["members"][0]
        else:  # the function the CLI calls
            m = member_summaries(run_training(load_config(d / "base.toml", sets)))[0]
        assert (m["seed"], m["scale"]) == (r["init.seed"], r["init.scale"])
        for k, v in m.items():
            if not isinstance(v, (list, dict)):
                assert r[k] == v, (k, r[k], v)  # escape_step identical, floats bit for bit
        escaped += m["escape_step"] is not None
    assert 0 < escaped < 18  # the grid spans escaped and not-yet-escaped members


def test_csv_equals_parquet(swept):
    import pyarrow.csv as pacsv

    out = swept[0] / "out"
    pq_rows = read_table(out).to_pylist()
    csv_rows = pacsv.read_csv(out / "results.csv").to_pylist()
    assert len(csv_rows) == len(pq_rows)
    for a, b in zip(pq_rows, csv_rows):
        for k in ("cell", "escape_step", "loss_final", "init.scale"):
            assert a[k] == b[k] or (a[k] is None and b[k] is None)


def test_rerun_reuses_and_new_axis_value_computes_only_new_cells(swept):
    d, first = swept
    out = d / "out"
    before = read_table(out).to_pylist()
    s = run_sweep(d / "spec.toml", out, workers=0, stream=io.StringIO())
    assert s["cells_reused"] == 2 and s["cells_done"] == 0
    assert read_table(out).to_pylist() == before
    more = SPEC.replace("[[6, 6], [9, 9]]", "[[6, 6], [9, 9], [4, 4]]")
    (d / "spec2.toml").write_text(more)
    stamps = {p.name: p.stat().st_mtime_ns for p in (out / "cells").iterdir()}
    s = run_sweep(d / "spec2.toml", out, workers=0, stream=io.StringIO())
    assert s["cells_reused"] == 2 and s["cells_done"] == 1 and s["members"] == 27
    for name, t in stamps.items():  # the earlier cells were not rewritten
        assert (out / "cells" / name).stat().st_mtime_ns == t
    rows = read_table(out).to_pylist()
    assert rows[:9] == before[:9] and len(rows) == 27
    # a new value of a folded axis: only the new members run (one new cell per width)
    (d / "spec3.toml").write_text(SPEC.replace("[0, 1, 2]", "[0, 1, 2, 3]"))
    s = run_sweep(d / "spec3.toml", out, workers=0, stream=io.StringIO())
    assert s["cells_done"] == 2 and s["cells_reused"] == 2 and s["members"] == 24
    rows = read_table(out).to_pylist()
    assert rows[:9] == before[:9] and rows[12:21] == before[9:]
    new = rows[9:12] + rows[21:]
    assert [r["init.seed"] for r in new] == [3] * 6 and len({r["cell"] for r in new}) == 2
    from condensation.commands.train import member_summaries, run_training
    from condensation.config.network import load_config

    r = new[1]
    sets = [f"init.scale={r['init.scale']}", "init.seed=3", "model.widths=[6, 6]"]
    m = member_summaries(run_training(load_config(d / "base.toml", sets)))[0]
    assert (r["escape_step"], r["loss_final"]) == (m["escape_step"], m["loss_final"])
    s = run_sweep(d / "spec3.toml", out, workers=0, stream=io.StringIO())
    assert s["cells_done"] == 0 and s["cells_reused"] == 4


def test_failing_cell_is_recorded_and_the_rest_go_on(tmp_path):
    bad = tmp_path / "bad.npz"
    np.savez(bad, x=np.ones((5, 2)), y=np.ones(5))
    spec = write_spec(
        tmp_path,
        '[sweep]\ncommand = "train"\nbase = "base.toml"\n'
        '[sweep.axes]\n"model.widths" = [[6, 6], [9, 9]]\n"init.seed" = [0]\n',
    )
    # a cell that raises inside the task (init.path with the wrong shapes)
    p = parse_spec(spec)
    import dataclasses

    from condensation.sweep.spec import load_command_config

    config = {**p.cells[1].config, "init": {"path": str(bad), "seed": 0}}
    broken = dataclasses.replace(
        p.cells[1], config=config, cfg=load_command_config("train", config)
    )
    p = dataclasses.replace(p, cells=(p.cells[0], broken))
    s = run_sweep(p, tmp_path / "out", workers=0, stream=io.StringIO())
    assert s["cells_done"] == 1 and s["cells_failed"] == 1
    err = s["failed"][broken.id]
    assert "\n" not in err and err
    rows = read_table(tmp_path / "out").to_pylist()
    assert [r["status"] for r in rows] == ["ok", "failed"] and rows[1]["error"] == err
    assert not (tmp_path / "out" / "cells" / broken.id).exists()


# ---- bad specs: one line naming the axis, the value and the fix; exit 2; nothing written
@pytest.mark.parametrize(
    "spec,field,words",
    [
        ('[sweep]\ncommand = "fit"\n', "sweep.command", ["fit", "train, effective, matrix"]),
        (
            '[sweep]\ncommand = "train"\n[sweep.axes]\n"init.colour" = [1, 2]\n',
            'sweep.axes."init.colour"',
            ["unknown key", "scale"],
        ),
        (
            '[sweep]\ncommand = "train"\n[sweep.axes]\n"colour.x" = [1]\n',
            'sweep.axes."colour.x"',
            ["unknown config section"],
        ),
        (
            '[sweep]\ncommand = "train"\n[sweep.axes]\n"init.scale" = [1e-3, -1.0]\n',
            'sweep.axes."init.scale"',
            ["-1.0", "positive"],
        ),
        (
            '[sweep]\ncommand = "train"\n[sweep.axes]\n"model.widths" = [[5, 5], [5]]\n',
            'sweep.axes."model.widths"',
            ["[5]", "2 widths"],
        ),
        (
            '[sweep]\ncommand = "train"\n[sweep.axes]\n"train.lr" = []\n',
            'sweep.axes."train.lr"',
            ["empty axis"],
        ),
        (
            '[sweep]\ncommand = "train"\n[sweep.axes]\n"data.path" = ["nope.npz"]\n',
            'sweep.axes."data.path"',
            ["nope.npz", "no such file"],
        ),
        ('[sweep]\ncommand = "train"\nbase = "missing.toml"\n', "sweep.base", ["missing.toml"]),
        ('[sweep]\ncommand = "train"\naxis = 1\n', "sweep.axis", ["unknown key", "axes"]),
        (
            '[sweep]\ncommand = "matrix"\n[sweep.axes]\n"model.depth" = [2, 0]\n',
            'sweep.axes."model.depth"',
            ["0", "depth >= 1"],
        ),
        (
            '[sweep]\ncommand = "train"\n[sweep.set]\n"train.steps" = 0\n',
            'sweep.set."train.steps"',
            ["0", "positive"],
        ),
    ],
)
def test_bad_spec_one_line_exit_2_nothing_written(tmp_path, cli_main, spec, field, words):
    (tmp_path / "spec.toml").write_text(spec)
    out = tmp_path / "out"
    code, err = cli_main("sweep", str(tmp_path / "spec.toml"), "--out", str(out))
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert code == 2 and len(lines) == 1, err
    assert lines[0].startswith(f"error: {field} = "), lines[0]
    assert "fix:" in lines[0]
    for w in words:
        assert w in lines[0], (w, lines[0])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["spec.toml"]


def test_bad_options_and_foreign_out_dir(tmp_path, cli_main):
    spec = write_spec(tmp_path)
    other = tmp_path / "other"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    for args, field in [
        (["--out", str(other)], "--out"),
        (["--out", str(tmp_path / "o"), "--workers", "-1"], "--workers"),
        (["--out", str(tmp_path / "o"), "--scheduler", "localhost"], "--scheduler"),
        (["--out", str(tmp_path / "o"), "--plot", "init.scale"], "--plot"),
        (["--out", str(tmp_path / "o"), "--plot", "data.n", "--y", "loss_final"], "--plot"),
    ]:
        code, err = cli_main("sweep", str(spec), *args)
        assert code == 2 and err.strip().startswith(f"error: {field} = "), err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["base.toml", "other", "spec.toml"]
    assert [p.name for p in other.iterdir()] == ["keep.txt"]


def test_paths_in_axes_are_relative_to_the_spec(tmp_path):
    data = tmp_path / "sets"
    data.mkdir()
    rng = np.random.default_rng(0)
    np.savez(data / "a.npz", x=rng.uniform(-1, 1, (20, 2)), y=rng.standard_normal(20))
    spec = write_spec(
        tmp_path / "s",
        '[sweep]\ncommand = "train"\nbase = "base.toml"\n'
        '[sweep.axes]\n"data.path" = ["../sets/a.npz"]\n"init.seed" = [0, 1]\n',
    )
    p = parse_spec(spec)
    assert len(p.cells) == 1 and p.cells[0].config["data"]["path"] == str(data / "a.npz")
    assert p.cells[0].config["init"]["seeds"] == [0, 1]
    # the id is a stable hash of the resolved config
    assert p.cells[0].id == parse_spec(spec).cells[0].id
    other = parse_spec(write_spec(tmp_path / "t", SPEC))
    assert len({c.id for c in other.cells}) == 2


# ---- the engine ---------------------------------------------------------------------
def _square_or_fail(x):
    if x == 2:
        raise ValueError("two is\nbad")
    return x * x, os.getpid()


def test_engine_streams_results_and_reports_one_line_errors(cluster):
    with Engine(scheduler=cluster) as eng:
        outs = {o.key: o for o in eng.run([Task(str(i), _square_or_fail, (i,)) for i in range(5)])}
    assert sorted(outs) == ["0", "1", "2", "3", "4"]
    assert outs["2"].ok is False and outs["2"].error == "ValueError: two is bad"
    assert [outs[k].value[0] for k in "0134"] == [0, 1, 9, 16]
    assert len({outs[k].value[1] for k in "0134"}) >= 1 and os.getpid() not in {
        outs[k].value[1] for k in "0134"
    }
    with Engine(workers=0) as eng:  # in this process: same outcomes
        inline = {
            o.key: o for o in eng.run([Task(str(i), _square_or_fail, (i,)) for i in range(5)])
        }
    assert inline["2"].error == outs["2"].error and inline["3"].value[0] == 9


def test_engine_rejects_bad_options():
    for kw, field in [
        ({"workers": -1}, "--workers"),
        ({"retries": -1}, "--retries"),
        ({"scheduler": "nohost"}, "--scheduler"),
    ]:
        with pytest.raises(InputError) as e:
            Engine(**kw)
        assert str(e.value).startswith(field)


# ---- progress -----------------------------------------------------------------------
class _Clock:
    t = 0.0

    def __call__(self):
        return self.t


def test_progress_plain_lines_at_a_bounded_rate(tmp_path):
    clock, buf = _Clock(), io.StringIO()
    with Progress(
        60, "cell", stream=buf, log_file=tmp_path / "p.log", every_s=10, clock=clock
    ) as p:
        for i in range(60):
            clock.t += 1.0
            p.advance(failed=1 if i in (3, 7) else 0)
    lines = buf.getvalue().splitlines()
    assert lines[0] == "cell 0/60 done"
    assert 6 <= len(lines) <= 9  # 60 s at one line per 10 s, plus the first and last
    assert lines[2] == "cell 20/60 done, 2 failed, eta 40 s", lines
    assert fmt_duration(4 * 60) == "4 min" and fmt_duration(3 * 3600) == "3.0 h"
    assert lines[-1] == "cell 60/60 done, 2 failed, 60 s"
    log = (tmp_path / "p.log").read_text().splitlines()
    assert [ln.split(" ", 2)[2] for ln in log] == lines


# ---- the README's commands (quick variants) -------------------------------------------
def _readme_line(start: str) -> list[str]:
    import shlex

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    line = next(ln for ln in readme.splitlines() if ln.startswith(start))
    return shlex.split(line.split("  #")[0])[1:]


@pytest.mark.slow  # tests/test_readme.py runs the same command in the default suite
def test_readme_sweep_command_with_plot(tmp_path, cli_main, monkeypatch):
    monkeypatch.chdir(Path(__file__).resolve().parents[2])
    args = _readme_line(
        ".venv/bin/condensation sweep configs/sweep_example.toml --out runs/sweep --plot"
    )
    out = tmp_path / "sweep"
    args[args.index("--out") + 1] = str(out)
    code, err = cli_main(*args, "--workers", "0")  # quick variant: in this process
    assert code == 0, err
    rows = read_table(out).to_pylist()
    assert len(rows) == 12 and len({r["cell"] for r in rows}) == 2
    assert {r["init.scale"] for r in rows} == {1e-2, 3e-3, 1e-3}
    assert all(r["escape_time"] is not None for r in rows)  # every member escapes
    assert (out / "figures" / "escape_time_vs_init.scale.png").stat().st_size > 5000
    s = json.loads((out / "summary.json").read_text())
    assert s["cells"] == 2 and s["folded"] == ["init.scale", "init.seed"]
    assert "cell 2/2 done" in (out / "progress.log").read_text()


def test_readme_run_on_own_data(tmp_path, cli_main, monkeypatch):
    monkeypatch.chdir(Path(__file__).resolve().parents[2])
    args = _readme_line(".venv/bin/condensation run condensation-three-layer --set data.path")
    out = tmp_path / "mine"
    args[args.index("--out") + 1] = str(out)
    code, err = cli_main(*args, "--quick", "--set", "steps=1500", "--set", "widths=[10, 10]")
    assert code == 0, err
    s = json.loads((out / "summary.json").read_text())
    assert s["params"]["data"] == {"path": "configs/example_data.csv"}
    cfg = (out / "arrays").iterdir()
    assert list(cfg)
    # a missing data file is bad input before any work
    code, err = cli_main(
        "run", "condensation-three-layer", "--set", "data.path=no.csv", "--out", str(tmp_path / "x")
    )
    assert code == 2 and err.strip().startswith("error: data.path = 'no.csv'"), err


@pytest.mark.slow
@pytest.mark.parametrize(
    "command,base,axis,value",
    [
        (
            "effective",
            BASE,
            '"init.seed" = [0, 1]',
            None,
        ),
        (
            "matrix",
            "[problem]\nn = 6\nrank = 1\nobserved = 24\n[train]\nsteps = 300\nsnapshots = 3\n"
            "linear_snapshots = 2\n",
            '"model.depth" = [2, 3]',
            None,
        ),
    ],
)
def test_effective_and_matrix_cells_equal_single_runs(
    tmp_path, cli_main, command, base, axis, value
):
    spec = write_spec(
        tmp_path,
        f'[sweep]\ncommand = "{command}"\nbase = "base.toml"\n[sweep.axes]\n{axis}\n',
        base,
    )
    s = run_sweep(spec, tmp_path / "out", workers=0, stream=io.StringIO())
    assert s["cells_failed"] == 0, s["failed"]
    rows = read_table(tmp_path / "out").to_pylist()
    cid = rows[-1]["cell"]
    args = ["--set", "model.depth=3"] if command == "matrix" else ["--set", "init.seeds=[0, 1]"]
    code, err = cli_main(
        command, str(tmp_path / "base.toml"), *args, "--out", str(tmp_path / "one")
    )
    assert code == 0, err
    single = json.loads((tmp_path / "one" / "summary.json").read_text())
    cell = json.loads((tmp_path / "out" / "cells" / cid / "summary.json").read_text())
    assert cell == single  # the cell is the single run, bit for bit
    last = [r for r in rows if r["cell"] == cid]
    assert len(last) == len(single["members"])
    key = "T_star" if command == "effective" else "test_rmse"
    assert [r[key] for r in last] == [m[key] for m in single["members"]]
