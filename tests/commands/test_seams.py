"""Seams of issue 21 that no test walked: ``effective`` with ``train.steps = "auto"``,
activations by name, the spectral form's unchecked angle constraint, members loaded
from ``init.path`` named on the console, console numbers to 6 significant digits.

Each test runs the CLI in this process on a tiny three-layer config (widths 6, 6;
n = 32; eps = 3e-2, so T* ~ 45, and lr = 0.2: the "auto" horizon is ~ 760 steps and
the 1000 steps given reach past every escape).
"""

from __future__ import annotations

import json
import re
import textwrap

import numpy as np
import pytest
from helpers import gaussian_params, refused

TINY = textwrap.dedent(
    """
    [data]
    dataset = "teacher"
    n = 32
    d = 3
    seed = 0

    [model]
    depth = 3
    widths = [6, 6]
    activation = "tanh"

    [init]
    scale = 3e-2
    seed = 0

    [train]
    lr = 0.2
    steps = 1000
    snapshots = 10
    """
)


@pytest.fixture
def cli(cli_streams):
    """The CLI in this process: ``(*args) -> (exit status, stdout, stderr)``."""
    return lambda *args: cli_streams(*map(str, args))


@pytest.fixture
def tiny(tmp_path):
    path = tmp_path / "tiny.toml"
    path.write_text(TINY)
    return path


def _summary(out):
    return json.loads((out / "summary.json").read_text())


# ---- 1. effective with train.steps = "auto" -----------------------------------------


@pytest.mark.slow  # ~20-35 s: two solves' compilations and the training
def test_effective_compare_gd_resolves_auto_steps_as_train_does(cli, tiny, tmp_path):
    """With --compare-gd, train.steps is the training's horizon: "auto" is resolved
    by train's own rule (runs.train.resolve_steps), recorded in config.toml and said
    on the console; before, a TypeError traceback from inputs.snapshot_count."""
    from condensation.commands.train import resolve_steps
    from condensation.config.network import load_config

    out = tmp_path / "eff"
    code, stdout, err = cli("effective", tiny, "--set", "train.steps=auto", "--compare-gd",
                            "--out", out)  # fmt: skip
    assert code == 0, err
    want, (note,) = resolve_steps(load_config(tiny, ["train.steps=auto"]))
    assert isinstance(want.train.steps, int) and want.train.steps != 1000
    assert f"steps = {want.train.steps}" in (out / "config.toml").read_text()
    assert note in stdout
    (m,) = _summary(out)["members"]
    assert m["gd_escape_time"] is not None  # the horizon reaches past the escape
    assert m["gd_escape_time"] <= want.train.steps * want.train.lr


def test_effective_without_training_accepts_auto_steps(cli, tiny, tmp_path):
    """Without --compare-gd nothing is trained, so train.steps is not read (the
    solve runs through the blow-up): "auto" is accepted like any number of steps,
    with the same results as an explicit horizon."""
    a, b = tmp_path / "auto", tmp_path / "explicit"
    code, _, err = cli("effective", tiny, "--set", "train.steps=auto", "--out", a)
    assert code == 0, err
    code, _, err = cli("effective", tiny, "--out", b)
    assert code == 0, err
    assert _summary(a) == _summary(b)


def test_effective_compare_gd_auto_without_t_star_is_one_line(cli, tiny, tmp_path):
    """Depth 2 has no blow-up, so no "auto" horizon: refused as train refuses it, one
    line, exit 2, nothing written (the quick variant of the test above: the CLI
    resolves "auto" before it sizes or writes anything)."""
    out = tmp_path / "eff"
    code, _, err = cli("effective", tiny, "--set", "train.steps=auto", "--set", "model.depth=2",
                       "--set", "model.widths=[6]", "--compare-gd", "--out", out)  # fmt: skip
    refused(code, err, "train.steps", "auto", "T*")
    assert not out.exists()


def test_snapshot_count_of_an_unresolved_horizon():
    """The memory check before a horizon is known: the snapshot counts' own bound."""
    from condensation.config.checks import snapshot_count

    assert snapshot_count("auto", 60, 0) == 62
    assert snapshot_count(10, 60, 0) == 11


# ---- 2. activations by name -----------------------------------------------------------


def _three_layers(rng):
    return list(gaussian_params(rng, 3, (6, 5), scale=1e-2)), np.array([0.7, -0.2, 0.4])


def test_build_system_takes_an_activation_by_name(rng):
    """build_system(..., activation="tanh") is the system of the Activation object
    (before: AttributeError 'str' object has no attribute 'why_not_effective')."""
    from condensation.core.activations import ACTIVATIONS
    from condensation.effective.system import build_system

    ps, z = _three_layers(rng)
    for name in ("tanh", "sin", "linear", "xtanh"):
        obj = ACTIVATIONS[name]
        if obj.why_not_effective() is None:
            by_name, by_obj = (build_system(ps, z, activation=a) for a in (name, obj))
            np.testing.assert_array_equal(by_name.z, by_obj.z)
            for u, v in zip(by_name.y0, by_obj.y0):
                np.testing.assert_array_equal(u, v)
        else:  # refused by name as by object, with the same message
            with pytest.raises(ValueError) as by_obj:
                build_system(ps, z, activation=obj)
            with pytest.raises(ValueError) as by_name:
                build_system(ps, z, activation=name)
            assert str(by_name.value) == str(by_obj.value)
    with pytest.raises(ValueError, match="not smooth at 0"):  # names keep their refusals
        build_system(ps, z, activation="relu")


def test_every_public_activation_parameter_takes_a_name(rng):
    from condensation.core.activations import ACTIVATIONS, get_activation
    from condensation.effective.deep import build_deep_system
    from condensation.effective.system import regime_ratio, warn_if_large

    ps, z = _three_layers(rng)
    tanh = ACTIVATIONS["tanh"]
    assert get_activation("tanh") is tanh and get_activation(tanh) is tanh
    deep = build_deep_system(ps, z, activation="tanh")
    assert deep.z_norm == build_deep_system(ps, z, activation=tanh).z_norm
    x, y = rng.standard_normal((10, 3)), rng.standard_normal(10)
    want = regime_ratio(ps, x, y, tanh.fn)
    assert regime_ratio(ps, x, y, "tanh") == want == regime_ratio(ps, x, y, tanh)
    assert warn_if_large(ps, x, y, "tanh") == want


@pytest.mark.parametrize("bad", ["tahn", 3])
def test_unknown_activation_is_one_input_error_naming_the_known(rng, bad):
    from condensation.core.activations import ACTIVATIONS, get_activation
    from condensation.effective.system import build_system
    from condensation.errors import InputError

    ps, z = _three_layers(rng)
    for call in (lambda: get_activation(bad), lambda: build_system(ps, z, activation=bad)):
        with pytest.raises(InputError) as e:
            call()
        msg = str(e.value)
        assert "\n" not in msg and e.value.field == "activation"
        assert all(name in msg for name in ACTIVATIONS), msg


def test_build_system_documents_activation_names():
    from condensation.effective.system import build_system

    doc = build_system.__doc__
    assert "Args:" in doc and "Returns:" in doc and '"tanh"' in doc


# ---- 3. the spectral form's final-stage entry ---------------------------------------


def test_spectral_console_says_the_angle_constraint_is_not_checked(cli, tiny, tmp_path):
    """--form spectral enters the "final stage" earlier than full (it checks the
    inner-product condition alone): the console says so in one line, summary.json
    keeps final_stage_angle_checked = false; a checked entry has no such line."""
    code, stdout, err = cli("effective", tiny, "--form", "spectral", "--out", tmp_path / "s")
    assert code == 0, err
    (m,) = _summary(tmp_path / "s")["members"]
    assert m["final_stage_angle_checked"] is False and m["final_stage_entry_time"] is not None
    (line,) = [ln for ln in stdout.splitlines() if "angle constraint" in ln]
    assert "spectral" in line and "--form full" in line

    from condensation.cli._effective import angle_note

    def summary(form, checked):
        m = {"final_stage_angle_checked": checked, "final_stage_entry_time": 1.0}
        return {"form": form, "members": [m]}

    assert angle_note(summary("full", True)) is None  # checked: nothing to say
    wide = angle_note(summary("full", False))  # full, hidden width > 256: not checked
    assert "ignore the angle constraint" in wide and "--form full" not in wide


# ---- 4. members from init.path named by origin; 5. numbers to 6 digits --------------


@pytest.fixture
def from_file(tiny, tmp_path):
    """The tiny config with its one member loaded from ``w0.npz``."""
    from condensation.commands.train import prepare
    from condensation.config.network import load_config
    from condensation.models import save_params

    _, _, ens = prepare(load_config(tiny))
    save_params(tmp_path / "w0.npz", [w[0] for w in ens.params])
    return ["--set", f"init.path={tmp_path / 'w0.npz'}"]


@pytest.mark.parametrize("command", ["train", "effective"])
def test_members_from_init_path_are_named_by_their_file(cli, tiny, tmp_path, from_file, command):
    code, stdout, err = cli(command, tiny, *from_file, "--out", tmp_path / "run")
    assert code == 0, err
    assert "seed None" not in stdout
    assert "w0.npz member 0" in stdout
    assert _summary(tmp_path / "run")["members"][0]["seed"] is None  # results unchanged


_NUMBER = re.compile(r"(?<![\w.])\d+(?:\.\d+)?(?:e[+-]?\d+)?")


def _most_digits(text: str) -> int:
    """The most significant digits of any number printed in ``text``."""
    digits = [re.sub(r"e.*", "", n).replace(".", "").lstrip("0") for n in _NUMBER.findall(text)]
    return max(len(d) for d in digits)


def test_most_digits_counts_significant_digits():
    assert _most_digits("t = 367.95000000000005, eps 0.001") == 17
    assert _most_digits("T* = 134.406 (rel. error 1.0e-11)") == 6


@pytest.mark.parametrize(
    "command, args",
    [
        ("train", []),  # escapes: escape and plateau times
        ("effective", ["--compare-gd"]),
    ],
)
def test_console_numbers_have_at_most_six_significant_digits(cli, tiny, tmp_path, command, args):
    """E.g. ``escape t = 367.95000000000005`` is printed ``367.95`` (the summary
    keeps every digit); ``T* = 134.4059714`` is printed ``134.406``."""
    code, stdout, err = cli(command, tiny, *args, "--out", tmp_path / "run")
    assert code == 0, err
    members = [ln for ln in stdout.splitlines() if ln.startswith("seed ")]
    assert members, stdout
    assert _most_digits("\n".join(members)) <= 6, stdout
