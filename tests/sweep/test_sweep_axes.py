"""Any key a command accepts is a sweep axis and its column in the table.

For every key each sweep command documents (every field of its config family,
:meth:`condensation.config.families.Family.keys`), generated specs of one to
three axes (two values each, tiny sizes) are either refused in one line naming a
``sweep.*`` entry before anything runs, or give cells whose configs are exactly
what ``condensation train --set ...`` loads from the same base and values; the
table has one column per axis holding each cell's value.  Where cells are run
for real, every row equals the single run of its cell's config.toml (the
numbers of ``condensation train CONFIG``), including the issue's
``data.path`` x ``init.path`` x ``train.lr`` case.
"""

from __future__ import annotations

import io
import itertools
import json
import math
import random
from pathlib import Path

import numpy as np
import pytest

from condensation.config.families import family_of
from condensation.config.matrix import load_matrix_config
from condensation.config.network import load_config
from condensation.errors import InputError
from condensation.sweep import parse_spec, run_sweep
from condensation.sweep.table import read_table

NETWORK_BASE = """\
[data]
dataset = "teacher"
n = 8
d = 2
[model]
depth = 3
widths = [4, 4]
[init]
scale = 0.1
[train]
lr = 0.2
steps = 20
snapshots = 2
linear_snapshots = 1
"""

MATRIX_BASE = """\
[problem]
n = 5
rank = 1
observed = 15
[model]
depth = 2
width = 4
[init]
scale = 0.1
[train]
lr = 0.1
steps = 20
snapshots = 2
linear_snapshots = 1
"""

# two values of every key of the network config (train, effective), tiny sizes
NETWORK_VALUES: dict[str, list] = {
    "data.dataset": ["teacher", "sin"],
    "data.path": ["data.npz", "data.csv"],
    "data.bias": [False, True],
    "data.n": [8, 10],
    "data.d": [2, 3],
    "data.seed": [0, 1],
    "data.noise": [0.0, 0.1],
    "model.depth": [3, 2],
    "model.widths": [[4, 4], [3, 5]],
    "model.activation": ["tanh", "relu"],
    "model.output_scale": [1.0, 2.0],
    "init.scale": [0.1, 0.05],
    "init.gamma": [0.5, 1.0],
    "init.seed": [0, 1],
    "init.seeds": [[0], [0, 1]],
    "init.scales": [[0.1], [0.1, 0.05]],
    "init.path": ["init_a.npz", "init_b.npz"],
    "init.layer_scales": [[0.1, 0.1, 0.1], [0.2, 0.1, 0.1]],
    "init.layer_gammas": [[0.5, 0.5, 0.5], [1.0, 0.5, 0.5]],
    "init.antisymmetric": [False, True],
    "init.balance": [0.0, 0.01],
    "train.lr": [0.1, 0.2],
    "train.steps": ["auto", 20],
    "train.dtype": ["float64", "float32"],
    "train.snapshots": [2, 3],
    "train.linear_snapshots": [0, 2],
    "train.optimizer": ["gd", "adam"],
    "train.batch_size": [4, 8],
    "train.batch_seed": [0, 1],
    "train.momentum": [0.5, 0.9],
    "train.nesterov": [False, True],
    "train.b1": [0.8, 0.9],
    "train.b2": [0.99, 0.999],
    "train.adam_eps": [1e-8, 1e-6],
    "train.plateau_drop": [0.1, 0.2],
    "train.fast_forward": [False, True],
    "train.handoff": [0.01, 0.02],
    "train.save": ["bounded", "full"],
}

# two values of every key of the matrix config
MATRIX_VALUES: dict[str, list] = {
    "problem.kind": ["completion", "sensing"],
    "problem.path": ["problem.npz", "problem_b.npz"],
    "problem.n": [5, 6],
    "problem.cols": [5, 4],
    "problem.rank": [1, 2],
    "problem.spectrum": ["gaussian", "flat"],
    "problem.observed": [15, 12],
    "problem.seed": [0, 1],
    "model.depth": [2, 3],
    "model.width": [4, 5],
    "init.scheme": ["gaussian", "balanced"],
    "init.scale": [0.1, 0.05],
    "init.scales": [[0.1], [0.1, 0.05]],
    "init.seed": [0, 1],
    "init.seeds": [[0], [0, 1]],
    "train.lr": [0.1, 0.05],
    "train.steps": [20, 30],
    "train.dtype": ["float64", "float32"],
    "train.snapshots": [2, 3],
    "train.linear_snapshots": [0, 2],
    "train.fast_forward": [False, True],
    "train.handoff": [0.01, 0.02],
}

# what a key needs beside it to be used at all: the optimizer its setting belongs to;
# model.depth a base whose widths follow the depth (no model.widths of its own)
NEEDS: dict[str, dict] = {
    "train.batch_size": {"train.optimizer": "sgd"},
    "train.batch_seed": {"train.optimizer": "sgd"},
    "train.momentum": {"train.optimizer": "momentum"},
    "train.nesterov": {"train.optimizer": "momentum"},
    "train.b1": {"train.optimizer": "adam"},
    "train.b2": {"train.optimizer": "adam"},
    "train.adam_eps": {"train.optimizer": "adam"},
}
DEEP = "model.depth"  # network sweeps over it use the base without model.widths

VALUES = {"train": NETWORK_VALUES, "effective": NETWORK_VALUES, "matrix": MATRIX_VALUES}
BASES = {"train": NETWORK_BASE, "effective": NETWORK_BASE, "matrix": MATRIX_BASE}
FOLDED = {"init.seed": "seeds", "init.scale": "scales"}


def toml_value(v) -> str:
    import tomli_w

    return tomli_w.dumps({"v": v})[len("v = ") :].strip()


def write_files(d: Path) -> None:
    """The data, init and problem files the values above name (in ``d``)."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((8, 2))
    y = np.tanh(x @ np.array([1.0, -0.5]))
    np.savez(d / "data.npz", x=x, y=y)
    np.savetxt(d / "data.csv", np.column_stack([x[:6], y[:6]]), delimiter=",")
    for name, seed in (("init_a.npz", 1), ("init_b.npz", 2)):
        r = np.random.default_rng(seed)
        ws = [0.1 * r.standard_normal(s) for s in ((4, 2), (4, 4), (1, 4))]
        np.savez(d / name, **{f"W{k + 1}": w for k, w in enumerate(ws)})
    for name, seed in (("problem.npz", 3), ("problem_b.npz", 4)):
        r = np.random.default_rng(seed)
        m = np.outer(r.standard_normal(5), r.standard_normal(5))
        mask = (r.random((5, 5)) < 0.7).astype(float)
        np.savez(d / name, M=m, mask=mask)
    for command, base in BASES.items():
        (d / f"{command}.toml").write_text(base)
    deep = NETWORK_BASE.replace("widths = [4, 4]\n", "")
    for command in ("train", "effective"):
        (d / f"{command}_deep.toml").write_text(deep)


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("axes")
    write_files(d)
    return d


def base_of(command: str, axes: dict) -> str:
    """The base config file of a generated spec."""
    return f"{command}_deep.toml" if command != "matrix" and DEEP in axes else f"{command}.toml"


def fixed_of(command: str, axes: dict) -> dict:
    """The ``[sweep.set]`` a generated spec needs for its axes (:data:`NEEDS`)."""
    fixed: dict = {}
    if command != "matrix":
        for k in axes:
            fixed.update(NEEDS.get(k, {}))
    return {k: v for k, v in fixed.items() if k not in axes}


def write_spec(d: Path, command: str, axes: dict, name: str = "spec.toml") -> Path:
    lines = [f'[sweep]\ncommand = "{command}"\nbase = "{base_of(command, axes)}"']
    lines += ["[sweep.set]"] + [
        f'"{k}" = {toml_value(v)}' for k, v in fixed_of(command, axes).items()
    ]
    lines += ["[sweep.axes]"] + [f'"{k}" = {toml_value(v)}' for k, v in axes.items()]
    path = d / name
    path.write_text("\n".join(lines) + "\n")
    return path


def combos(command: str, axes: dict) -> list[dict]:
    """Each cell's ``{key: value}`` as the CLI would be given it (folded axes listed)."""
    free = [k for k in axes if k not in FOLDED]
    out = []
    for values in itertools.product(*(axes[k] for k in free)):
        items = {**fixed_of(command, axes), **dict(zip(free, values))}
        for k, ensemble in FOLDED.items():
            if k in axes:
                items[f"init.{ensemble}"] = list(axes[k])
        out.append(items)
    return out


def cli_config(command: str, base: Path, items: dict):
    """What ``condensation COMMAND BASE --set k=v ...`` loads (from the working dir)."""
    sets = [f"{k}={toml_value(v)}" for k, v in items.items()]
    load = load_matrix_config if command == "matrix" else load_config
    return load(base, sets)


def check_spec(command: str, d: Path, axes: dict, monkeypatch) -> object:
    """A generated spec is refused in one line naming a sweep entry, or each of its
    cells holds exactly the config the CLI loads with the same values."""
    monkeypatch.chdir(d)  # --set paths resolve against the working directory
    spec_path = write_spec(d, command, axes)
    try:
        spec = parse_spec(spec_path)
    except InputError as e:
        line = str(e)
        assert "\n" not in line and line.startswith(("sweep.", "SPEC")), line
        assert e.fix, line
        return None
    expected = combos(command, axes)
    assert len(spec.cells) == len(expected)
    for cell, items in zip(spec.cells, expected):
        cfg = cli_config(command, d / base_of(command, axes), items)
        assert cell.cfg == cfg, (axes, items)
        assert cell.config == cfg.to_dict()
        for key, v in cell.axes.items():  # each axis value is in the cell's config
            section, name = key.split(".", 1)
            assert cell.config[section][name] == v or isinstance(v, str)
    return spec


def fake_cell(command, config, out_dir):
    """A cell that writes the members its config object runs, and nothing else."""
    from condensation.store.rundir import run_directory, write_json

    assert not isinstance(config, dict)  # the worker gets the validated object
    if getattr(config.init, "path", None) is not None:
        members = [{"seed": None, "scale": 0.5, "status": "ok", "loss_final": 1.0}]
    else:
        members = [
            {"seed": s, "scale": e, "status": "ok", "loss_final": config.train.lr * (s + 1)}
            for s, e in config.member_seeds_scales
        ]
    summary = {"members": members}
    with run_directory(out_dir) as tmp:
        write_json(tmp / "summary.json", summary)
    return summary


def check_columns(spec, out: Path) -> None:
    """Every axis is a column, and each row holds its cell's value."""
    rows = read_table(out).to_pylist()
    assert rows and all(r["status"] == "ok" for r in rows)
    by_id = {c.id: c for c in spec.cells}
    for r in rows:
        cell = by_id[r["cell"]]
        for key in spec.axes:
            assert key in r, (key, list(r))
            if key in FOLDED:
                assert r[key] in spec.axes[key]
                continue
            want = cell.axes[key]
            got = r[key]
            if isinstance(want, (list, dict)):
                assert json.loads(got) == want
            elif isinstance(got, str) and not isinstance(want, str):
                assert json.loads(got) == want  # a column of mixed kinds is text
            else:
                assert got == want


def test_every_documented_key_has_values_here():
    """A key added to a config family without values here fails: the axes below
    cover every key each command documents."""
    for command, values in VALUES.items():
        assert set(values) == set(family_of(command).keys()), command


def generated_axes(command: str, count: int, seed: int) -> list[dict]:
    """Every key alone, then ``count`` random pairs and triples (fixed seed)."""
    keys = sorted(VALUES[command])
    out = [{k: VALUES[command][k]} for k in keys]
    rng = random.Random(seed)
    for _ in range(count):
        picked = rng.sample(keys, rng.choice((2, 3)))
        out.append({k: VALUES[command][k] for k in picked})
    return out


@pytest.mark.parametrize("command", ["train", "effective", "matrix"])
def test_any_key_is_an_axis_and_a_column(command, files, tmp_path, monkeypatch):
    """Specs over every key and random combinations of two and three: refused in one
    line before anything runs, or the cells are the CLI's configs and the table has
    a column per axis with each cell's value (cells stand-ins: no compute)."""
    import condensation.sweep.run as sweep_run

    monkeypatch.setattr(sweep_run, "run_cell", fake_cell)
    ran = refused = 0
    for i, axes in enumerate(generated_axes(command, 25, seed=21)):
        spec = check_spec(command, files, axes, monkeypatch)
        if spec is None:
            refused += 1
            continue
        out = tmp_path / f"out{i}"
        run_sweep(spec, out, workers=0, stream=io.StringIO())
        check_columns(spec, out)
        ran += 1
    assert ran > refused  # most keys sweep; the refusals are conflicts and bad pairs


def test_keys_that_cannot_combine_are_refused_before_compute(files, monkeypatch):
    """Refused in one line, naming the axis: an init.path whose shapes do not fit the
    network (found by opening it now, not in a failed cell), and optimizer settings
    of another optimizer."""
    monkeypatch.chdir(files)
    for axes, field in (
        ({"init.path": ["init_a.npz"], "model.widths": [[4, 4], [3, 5]]}, "init.path"),
        ({"init.path": ["init_a.npz"], "data.d": [3]}, "init.path"),
        ({"train.momentum": [0.5]}, "train.momentum"),  # the base's optimizer is gd
        ({"model.widths": [[4]]}, "model.widths"),
    ):
        spec = files / "refused.toml"
        spec.write_text(
            '[sweep]\ncommand = "train"\nbase = "train.toml"\n[sweep.axes]\n'
            + "".join(f'"{k}" = {toml_value(v)}\n' for k, v in axes.items())
        )
        with pytest.raises(InputError) as e:
            parse_spec(spec)
        assert str(e.value).startswith(f'sweep.axes."{field}" = '), str(e.value)
    # a key the spec did not give, made bad by an axis: the axis is named
    spec.write_text(
        '[sweep]\ncommand = "train"\nbase = "train.toml"\n[sweep.axes]\n"model.depth" = [2]\n'
    )
    with pytest.raises(InputError) as e:
        parse_spec(spec)
    assert str(e.value).startswith('sweep.axes."model.depth" = 2: with model.widths = [4, 4]')


# ---- real cells: every row equals the single run of its cell ---------------------------
def single_run_members(cell_dir: Path) -> list[dict]:
    """The members ``condensation train CELL/config.toml`` reports (its summary)."""
    from condensation.commands.train import run_training, summary

    return summary(run_training(load_config(cell_dir / "config.toml")))["members"]


def same(row_value, value) -> bool:
    if isinstance(value, float) and not math.isfinite(value):
        return row_value is None
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return row_value == value
    if isinstance(value, (int, float)):
        return row_value is not None and float(row_value) == float(value)
    return True  # lists are not columns


def check_rows_equal_single_runs(out: Path) -> int:
    rows = read_table(out).to_pylist()
    assert rows and all(r["status"] == "ok" for r in rows), rows
    by_cell: dict[str, list[dict]] = {}
    for r in rows:
        by_cell.setdefault(r["cell"], []).append(r)
    for cid, cell_rows in by_cell.items():
        members = single_run_members(out / "cells" / cid)
        assert len(members) == len(cell_rows)
        for r, m in zip(cell_rows, members):
            numeric = [k for k, v in m.items() if isinstance(v, (int, float))]
            assert len(numeric) > 5  # the metrics are columns
            for k, v in m.items():
                assert same(r.get(k), v), (cid, k, r.get(k), v)
    return len(rows)


def test_data_path_x_init_path_x_lr_rows_are_the_single_runs(files, tmp_path):
    """The issue's case (data.path x init.path x train.lr), kept cheap: one compiled
    shape, 4 cells; each row is the cell's single run, members from init.path
    included (no seed: their rows come from what the cell ran)."""
    spec = write_spec(
        files,
        "train",
        {
            "data.path": ["data.npz", "data.csv"],
            "init.path": ["init_a.npz", "init_b.npz"],
            "train.lr": [0.2],
        },
        name="issue.toml",
    )
    s = run_sweep(parse_spec(spec), tmp_path / "out", workers=0, stream=io.StringIO())
    assert s["cells_done"] == 4 and s["cells_failed"] == 0
    assert check_rows_equal_single_runs(tmp_path / "out") == 4
    rows = read_table(tmp_path / "out").to_pylist()
    assert {(Path(r["data.path"]).name, Path(r["init.path"]).name) for r in rows} == {
        (a, b) for a in ("data.npz", "data.csv") for b in ("init_a.npz", "init_b.npz")
    }


@pytest.mark.slow
def test_data_path_x_init_path_x_lr_full(files, tmp_path):
    """The issue's 8 cells exactly (2 x 2 x 2), every row the single run."""
    spec = write_spec(
        files,
        "train",
        {
            "data.path": ["data.npz", "data.csv"],
            "init.path": ["init_a.npz", "init_b.npz"],
            "train.lr": [0.1, 0.2],
        },
        name="issue8.toml",
    )
    s = run_sweep(parse_spec(spec), tmp_path / "out", workers=0, stream=io.StringIO())
    assert s["cells"] == 8 and s["cells_done"] == 8
    assert check_rows_equal_single_runs(tmp_path / "out") == 8


def check_rows_equal_cli_runs(command: str, out: Path, cli, tmp: Path) -> int:
    """Every row equals the member of ``condensation COMMAND CELL/config.toml --out``."""
    rows = read_table(out).to_pylist()
    assert rows and not {r["status"] for r in rows} & {"failed", "not_run"}, rows
    by_cell: dict[str, list[dict]] = {}
    for r in rows:
        by_cell.setdefault(r["cell"], []).append(r)
    for cid, cell_rows in by_cell.items():
        single = tmp / f"single-{cid}"
        code, _, err = cli(command, str(out / "cells" / cid / "config.toml"), "--out", str(single))
        assert code == 0, err
        members = json.loads((single / "summary.json").read_text())["members"]
        assert len(members) == len(cell_rows)
        for r, m in zip(cell_rows, members):
            for k, v in m.items():
                assert same(r.get(k), v), (cid, k, r.get(k), v)
    return len(rows)


@pytest.mark.slow
@pytest.mark.parametrize("command", ["train", "effective", "matrix"])
@pytest.mark.parametrize("seed", range(2))
def test_random_sweeps_rows_are_the_cli_runs(
    command, seed, files, tmp_path, cli_streams, monkeypatch
):
    """Random combinations of two or three keys run for real: every row equals the
    command's single run of its cell's config.toml, or the spec is refused in one
    line before compute."""
    ran = 0
    for i, axes in enumerate(generated_axes(command, 2, seed=100 + seed)[-2:]):
        spec = check_spec(command, files, axes, monkeypatch)
        if spec is None:
            continue
        out = tmp_path / f"out{i}"
        s = run_sweep(spec, out, workers=0, stream=io.StringIO())
        assert s["cells_failed"] == 0, s["failed"]
        ran += check_rows_equal_cli_runs(command, out, cli_streams, tmp_path / f"s{i}")
    assert ran > 0
