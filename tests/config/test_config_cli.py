"""Bad input: one line naming field, value and fix; exit 2; nothing on disk."""

import numpy as np
import pytest

from condensation import InputError, load_config, load_dataset
from condensation.models import NetworkSpec, init_ensemble

BAD = [
    (["model.colour=1"], "model.colour"),
    (["nosuch.key=1"], "nosuch"),
    (["train.lr='fast'"], "train.lr"),
    (["model.widths=[50, 0]"], "model.widths"),
    (["model.depth=1", "model.widths=[5]"], "model.depth"),
    (["init.scale=0.0"], "init.scale"),
    (["init.scale=-1e-3"], "init.scale"),
    (["train.lr=0"], "train.lr"),
    (["train.lr=-0.1"], "train.lr"),
    (["model.activation='softsign'"], "model.activation"),
    (["model.depth=4", "model.widths=[5, 5]"], "model.widths"),
    (["train.steps=1.5"], "train.steps"),
    (["train.dtype='float16'"], "train.dtype"),
]


@pytest.mark.parametrize("overrides,field", BAD)
def test_bad_config_names_field(overrides, field):
    with pytest.raises(InputError) as e:
        load_config(None, overrides)
    assert str(e.value).startswith(field)
    assert "fix:" in str(e.value) and "\n" not in str(e.value)


def _write_npz(path, **arrays):
    np.savez(path, **arrays)
    return str(path)


def test_bad_data_files(tmp_path):
    cases = {
        "nan": dict(x=np.array([[0.0], [np.nan]]), y=np.zeros(2)),
        "shape": dict(x=np.zeros((3, 2)), y=np.zeros(4)),
        "missing": dict(x=np.zeros((3, 2))),
    }
    for name, arrays in cases.items():
        p = _write_npz(tmp_path / f"{name}.npz", **arrays)
        with pytest.raises(InputError, match="data.path"):
            load_dataset(load_config(None, [f"data.path='{p}'"]).data)


def test_csv_and_npz_data(tmp_path, rng):
    x, y = rng.standard_normal((10, 3)), rng.standard_normal(10)
    np.savetxt(tmp_path / "d.csv", np.column_stack([x, y]), delimiter=",", header="a,b,c,y")
    d = load_dataset(
        load_config(None, [f"data.path='{tmp_path / 'd.csv'}'", "data.bias=true"]).data
    )
    np.testing.assert_allclose(d.x[:, :3], x)
    np.testing.assert_allclose(d.x[:, 3], 1.0)
    np.testing.assert_allclose(d.z, np.column_stack([x, np.ones(10)]).T @ y / 10)


def test_saved_params_load_back_as_init(tmp_path, rng):
    from condensation.models import save_params

    cfg = load_config(None, ["model.widths=[4, 3]"])
    spec = NetworkSpec.from_config(cfg.model, 5)
    params = [rng.standard_normal(s) for s in spec.shapes]
    save_params(tmp_path / "p.npz", params)
    ens = init_ensemble(
        load_config(None, ["model.widths=[4, 3]", f"init.path='{tmp_path / 'p.npz'}'"]), spec
    )
    for a, b in zip(ens.params, params):
        np.testing.assert_array_equal(a[0], b)


def test_init_from_file_checks_shapes(tmp_path, rng):
    cfg = load_config(None, ["model.widths=[4, 3]"])
    spec = NetworkSpec.from_config(cfg.model, 5)
    good = _write_npz(
        tmp_path / "p.npz",
        W1=rng.standard_normal((4, 5)),
        W2=rng.standard_normal((3, 4)),
        W3=rng.standard_normal((1, 3)),
    )
    ens = init_ensemble(load_config(None, ["model.widths=[4, 3]", f"init.path='{good}'"]), spec)
    assert ens.size == 1 and ens.params[1].shape == (1, 3, 4)
    bad = _write_npz(
        tmp_path / "q.npz", W1=np.zeros((4, 6)), W2=np.zeros((3, 4)), W3=np.zeros((1, 3))
    )
    with pytest.raises(InputError, match="W1"):
        init_ensemble(load_config(None, ["model.widths=[4, 3]", f"init.path='{bad}'"]), spec)


@pytest.mark.parametrize(
    "args",
    [
        ["--set", "model.widths=[0, 5]"],
        ["--set", "model.activation='swish'"],
        ["--set", "data.path='does-not-exist.npz'"],
        ["--set", "init.scale=-1"],
    ],
)
def test_cli_bad_input_exit_2_and_no_output(tmp_path, args, cli_subprocess):
    out = tmp_path / "run"
    p = cli_subprocess("train", *args, "--out", str(out))
    assert p.returncode == 2, p.stderr
    lines = [ln for ln in p.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and "fix:" in lines[0]
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []


def test_cli_bad_cpu_device_count_exit_2_and_no_output(tmp_path, cli_subprocess):
    out = tmp_path / "run"
    p = cli_subprocess("train", "--out", str(out), env={"CONDENSATION_CPU_DEVICES": "two"})
    assert p.returncode == 2, p.stderr
    lines = [ln for ln in p.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and "CONDENSATION_CPU_DEVICES" in lines[0] and "fix:" in lines[0]
    assert list(tmp_path.iterdir()) == []


def test_cli_train_writes_run(tmp_path, cli_subprocess):
    out = tmp_path / "run"
    p = cli_subprocess(
        "train",
        "--set",
        "model.widths=[6, 5]",
        "--set",
        "train.steps=200",
        "--set",
        "init.seeds=[0, 1]",
        "--set",
        "init.scale=0.1",
        "--out",
        str(out),
    )
    assert p.returncode == 0, p.stderr
    import json

    s = json.loads((out / "summary.json").read_text())
    assert len(s["members"]) == 2 and len(s["z"]) == 5
    for key in (
        "seed",
        "scale",
        "status",
        "loss_initial",
        "loss_final",
        "escape_time",
        "escape_step",
        "median_abs_cos",
        "frac_abs_cos_above_0_95",
        "w_sigma_ratio",
    ):
        assert key in s["members"][0]
    for f in ("loss.png", "alignment.png", "cosine_heatmaps.png"):
        assert (out / "figures" / f).stat().st_size > 1000
    assert (out / "config.toml").is_file() and (out / "arrays" / "snapshots.npz").is_file()


@pytest.mark.parametrize("args", [["train", "--bogus"], ["nosuch-command"]])
def test_cli_usage_errors_exit_2(args, cli_subprocess):
    p = cli_subprocess(*args)
    assert p.returncode == 2
    assert "Usage:" in p.stderr + p.stdout and "Traceback" not in p.stderr


# ---- one pipeline: one parser, one coercer, one path resolver ---------------------------
@pytest.mark.parametrize(
    "value,config_msg,param_msg",
    [
        (
            "x",
            "train.lr = 'x': expected a number; fix: write lr = <number>",
            "lr = 'x': expected a number; fix: write lr=<a number>",
        ),
        (
            1e300,
            "train.lr = 1e+300: must be at most 1e+100 in magnitude; fix: give a smaller lr",
            "lr = 1e+300: must be at most 1e+100 in magnitude; fix: give a smaller lr",
        ),
        (
            float("nan"),
            "train.lr = nan: must be finite; fix: give a finite lr",
            "lr = nan: must be finite; fix: give a finite lr",
        ),
    ],
)
def test_config_keys_and_experiment_parameters_share_one_coercer(value, config_msg, param_msg):
    """A float key of the config and a float parameter of an experiment obey the same
    rules (each with its own spelling of the fix)."""
    from condensation.config.network import config_from_raw
    from condensation.experiments import coerce_param

    with pytest.raises(InputError) as e:
        config_from_raw({"train": {"lr": value}})
    assert str(e.value) == config_msg
    with pytest.raises(InputError) as e:
        coerce_param("lr", value, 0.1)
    assert str(e.value) == param_msg
    # and the same integer rule: a whole float is an integer for both
    assert config_from_raw({"train": {"steps": 1e3}}).train.steps == 1000
    assert coerce_param("steps", 1e3, 10) == 1000


def test_set_items_and_raw_values_build_the_same_config():
    """``--set`` text and the values themselves (what a sweep cell places) give one
    config: the text is only parsed, never the other way round."""
    from condensation.config.families import NETWORK
    from condensation.config.network import config_from_dict

    items = {"train.steps": "auto", "model.widths": [4, 4], "init.gamma": 0.5}
    via_text = config_from_dict(
        {"init": {"scale": 0.1}}, ["train.steps=auto", "model.widths=[4, 4]", "init.gamma=0.5"]
    )
    via_values = NETWORK.build({"init": {"scale": 0.1}}, items)
    assert via_text == via_values and via_values.init.scale is None  # gamma replaced it


def test_one_path_resolver(tmp_path, monkeypatch):
    """A path in a config file resolves against the file's folder, one given with
    --set against the working directory; both stored absolute and normalised."""
    from condensation.config.paths import resolve_path

    (tmp_path / "sub").mkdir()
    cfg_file = tmp_path / "sub" / "c.toml"
    cfg_file.write_text('[data]\npath = "../d.npz"\n')
    monkeypatch.chdir(tmp_path / "sub")
    cfg = load_config(cfg_file)
    assert cfg.data.path == str(tmp_path / "d.npz")
    cfg = load_config(None, ["data.path=./x/../d.csv"])
    assert cfg.data.path == str(tmp_path / "sub" / "d.csv")
    assert resolve_path("~/a", "/elsewhere") == str(__import__("pathlib").Path.home() / "a")


def test_one_toml_reader_in_the_package():
    """User TOML text is parsed in one place (config.parse); load_run reads a stored
    config.toml the package wrote itself."""
    from pathlib import Path

    import condensation

    root = Path(condensation.__file__).parent
    readers = sorted(
        str(p.relative_to(root))
        for p in root.rglob("*.py")
        if "tomllib.loads(" in p.read_text() or "tomllib.load(" in p.read_text()
    )
    assert readers == ["config/parse.py", "store/load_run.py"], readers
