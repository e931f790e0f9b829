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
