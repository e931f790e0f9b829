"""Issue 20, numerical edges of the commands, through the CLI in-process.

- T*, horizon and escape-time predictions never overflow: depth 16, widths 1,
  eps 1e-25 (T* ~ 10^353) ends in exit 0 with T* written in log space, not an
  ``OverflowError`` after all GD steps (``train``, ``train --fast-forward``, ``matrix``);
- ``train.steps = "auto"`` whose horizon is beyond ``inputs.MAX_STEPS`` is refused
  before compute with the predicted T*, never silently clamped to a horizon that
  ends before it;
- data with ``z = mean(y x) = 0`` (or a matrix problem with ``M_O = 0``) is refused
  before compute by every command whose result needs the drive; ``effective``
  alone reports it, per member, as ``no-drive``.

Each refusal: exit 2, one ``error:`` line, nothing written, no GD step taken.
"""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest

DEEP = ["model.depth=16", "model.widths=[1,1,1,1,1,1,1,1,1,1,1,1,1,1,1]", "data.n=10"]
SMALL = ["train.snapshots=4", "train.linear_snapshots=0"]


class ComputeStarted(Exception):
    """Raised by the GD spy: a step was about to be taken."""


@pytest.fixture
def no_gd(monkeypatch):
    """Every GD loop of ``train`` / ``effective --compare-gd`` / ``matrix`` raises
    :class:`ComputeStarted` (a refusal must come before compute; today's code would
    otherwise run 10^9 steps)."""

    def spy(*args, **kwargs):
        raise ComputeStarted

    monkeypatch.setattr("condensation.commands.train.train", spy)
    monkeypatch.setattr("condensation.matrix.train_factorisation", spy)


def _sets(*keys: str) -> list[str]:
    out = []
    for k in keys:
        out += ["--set", k]
    return out


def _one_error_line(err: str) -> str:
    """The one ``error:`` line of a refusal (besides, at most, ``warning:`` lines such
    as the underflow warning of eps 1e-25)."""
    lines = [ln for ln in err.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("error: ")]
    assert len(errors) == 1, err
    assert all(ln.startswith(("error: ", "warning: ")) for ln in lines), err
    return errors[0]


# ---- overflow in T* / horizon arithmetic -----------------------------------------------
def test_train_t_star_beyond_float64_is_a_warning_in_log_space(cli_main, tmp_path):
    out = tmp_path / "run"
    code, err = cli_main(
        "train", *_sets(*DEEP, "init.scale=1e-25", "train.steps=5", *SMALL), "--out", str(out)
    )
    assert code == 0, err
    assert "Traceback" not in err
    s = json.loads((out / "summary.json").read_text())
    (note,) = [n for n in s["notes"] if "ends before its predicted" in n]
    # T* ~ |theta_0|^-14 with |theta_0| ~ 4e-25: about 10^350, printed as such (here
    # the lower bound, which needs no solve, already lies beyond the horizon)
    power = float(re.search(r"T\* >?= 10\^([0-9.]+) \(beyond float64\)", note).group(1))
    assert 300 < power < 400, note
    assert "no train.steps within the limit" in note
    assert s["members"][0]["status"] == "underflow"  # eps^15 flushes the gradients


def test_train_fast_forward_t_star_beyond_float64_runs_plain_gd(cli_main, tmp_path):
    out = tmp_path / "run"
    code, err = cli_main(
        "train",
        *_sets(*DEEP, "init.scale=1e-25", "train.steps=5", *SMALL),
        "--fast-forward",
        "--out",
        str(out),
    )
    assert code == 0, err
    assert "Traceback" not in err
    s = json.loads((out / "summary.json").read_text())
    ff = s["members"][0]["fast_forward"]
    assert ff["mode"] == "plain" and "beyond any GD step count" in ff["reason"]
    assert "10^" in ff["reason"] and ff["effective_t_star"] is None  # inf: null in JSON


def test_matrix_t_star_beyond_float64_is_null_with_a_note(cli_main, tmp_path):
    out = tmp_path / "run"
    keys = ["model.depth=16", "model.width=1", "problem.n=4", "problem.rank=1"]
    keys += ["problem.observed=10", "init.scale=1e-25", "train.steps=5", *SMALL]
    code, err = cli_main("matrix", *_sets(*keys), "--out", str(out))
    assert code == 0, err
    assert "Traceback" not in err
    s = json.loads((out / "summary.json").read_text())
    assert s["members"][0]["T_star_effective"] is None
    (note,) = [n for n in s["notes"] if "effective T* = 10^" in n]
    assert 300 < float(note.split("T* = 10^")[1].split()[0]) < 400, note


def test_matrix_fast_forward_with_a_time_unit_beyond_float64_is_refused(cli_main, tmp_path, no_gd):
    out = tmp_path / "run"
    keys = ["model.depth=16", "model.width=1", "problem.n=4", "problem.rank=1"]
    keys += ["problem.observed=10", "init.scale=1e-25", "train.steps=5", "train.fast_forward=true"]
    code, err = cli_main("matrix", *_sets(*keys), "--out", str(out))
    assert code == 2
    line = _one_error_line(err)
    assert line.startswith("error: train.fast_forward = True:") and "10^" in line
    assert not out.exists()


def test_unit_scale_solve_gives_the_direct_solve_s_t_star(monkeypatch):
    """The log-space path (a solve at unit scale, times converted by the unit) is
    the same solve: where both are finite they agree to rounding."""
    from condensation.commands.train import prepare
    from condensation.config.network import load_config
    from condensation.effective import predictions as P
    from condensation.effective import theory

    cfg = load_config(None, [*DEEP, "init.scale=1e-3"])  # T* ~ 1e45: finite either way
    data, spec, ens = prepare(cfg)
    probs = [s.problem() for s in P.effective_systems(ens.params, data.z, spec.activation)]
    (direct,) = P.solve_blowups(probs)
    monkeypatch.setattr(theory, "LOG_UNIT_LIMIT", -math.inf)  # every member: log path
    (logged,) = P.solve_blowups(probs)
    assert direct.blew_up and logged.blew_up
    # rtol: one exp/log round trip of T* and of the unit |theta_0|^-14 ~ 1e32
    assert logged.T_star == pytest.approx(direct.T_star, rel=1e-12)
    assert P.log10_t_star(logged) == pytest.approx(math.log10(direct.T_star), rel=1e-12)
    np.testing.assert_allclose(logged.steps["t"], direct.steps["t"], rtol=1e-12)
    # the solve-free lower bound of the horizon warning holds, and is not vacuous
    (bound,) = P.t_star_lower_bound(ens.params, data.z, spec.activation)
    assert direct.T_star * 1e-8 < bound <= direct.T_star


@pytest.mark.slow  # three compiled solves (~15 s); depth 16 is checked in the default suite above
def test_t_star_lower_bound_holds_at_every_depth():
    """``L^((L-2)/2) / ((L-2) |z| r0^(L-2))`` <= the solved T* (depth 3: THEORY §4)."""
    from condensation.commands.train import prepare
    from condensation.config.network import load_config
    from condensation.effective import predictions as P

    for depth in (3, 4, 5):
        widths = ",".join(["3"] * (depth - 1))
        cfg = load_config(None, [f"model.depth={depth}", f"model.widths=[{widths}]", "data.n=10"])
        data, spec, ens = prepare(cfg)
        (t_star,) = P.predicted_t_star(ens.params, data.z, spec.activation)
        (bound,) = P.t_star_lower_bound(ens.params, data.z, spec.activation)
        assert 0 < bound <= t_star, (depth, bound, t_star)


# ---- steps = "auto" beyond the step limit ------------------------------------------------
@pytest.mark.parametrize("mode", [[], ["--fast-forward"]], ids=["gd", "fast-forward"])
def test_auto_horizon_beyond_the_step_limit_is_refused(cli_main, tmp_path, no_gd, mode):
    out = tmp_path / "run"
    code, err = cli_main(
        "train", *_sets(*DEEP, "init.scale=1e-3", "train.steps=auto"), *mode, "--out", str(out)
    )
    assert code == 2
    line = _one_error_line(err)
    assert line.startswith("error: train.steps = 'auto':")
    t_star = float(line.split("predicted T* = ")[1].split()[0])
    assert 1e40 < t_star < 1e50  # ~ eps^-14: the 1.7e45 on its data
    assert "over the limit" in line and "raise the init scale" in line
    assert not out.exists()


# ---- z = 0: no drive ---------------------------------------------------------------------
GAUSS = ["data.dataset=gauss", "model.widths=[4,3]"]  # even targets, symmetric grid: z = 0


@pytest.mark.parametrize(
    "mode",
    [["--set", "train.steps=200"], ["--set", "train.steps=auto"], ["--fast-forward"]],
    ids=["gd", "auto", "fast-forward"],
)
def test_train_on_data_with_z_zero_is_refused_before_compute(cli_main, tmp_path, no_gd, mode):
    out = tmp_path / "run"
    code, err = cli_main("train", *_sets(*GAUSS), *mode, "--out", str(out))
    assert code == 2
    line = _one_error_line(err)
    assert line.startswith("error: data.dataset = 'gauss': z = mean(y x) = 0")
    assert "fix: use labels that correlate with the inputs" in line
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_effective_compare_gd_on_data_with_z_zero_is_refused(cli_main, tmp_path, no_gd):
    out = tmp_path / "run"
    code, err = cli_main("effective", *_sets(*GAUSS), "--compare-gd", "--out", str(out))
    assert code == 2
    assert _one_error_line(err).startswith("error: data.dataset = 'gauss': z = mean(y x) = 0")
    assert list(tmp_path.iterdir()) == []


def test_effective_alone_reports_z_zero_as_no_drive(cli_main, tmp_path):
    """The effective dynamics of z = 0 is a result (no drive), so it runs."""
    out = tmp_path / "run"
    code, err = cli_main("effective", *_sets(*GAUSS), "--out", str(out))
    assert code == 0, err
    (m,) = json.loads((out / "summary.json").read_text())["members"]
    assert m["status"] == "no-drive" and m["T_star"] is None


@pytest.mark.parametrize("which", ["zero target", "zero observed entries"])
def test_matrix_without_drive_is_refused_before_compute(cli_main, tmp_path, no_gd, which):
    m, mask = np.zeros((4, 4)), np.ones((4, 4))
    if which == "zero observed entries":  # M != 0, but only where it is not observed
        m[0, 0], mask[0, 0] = 1.0, 0.0
    np.savez(tmp_path / "problem.npz", M=m, mask=mask)
    out = tmp_path / "run"
    keys = [f"problem.path={tmp_path / 'problem.npz'}", "model.depth=3", "train.steps=50"]
    code, err = cli_main("matrix", *_sets(*keys), "--out", str(out))
    assert code == 2
    line = _one_error_line(err)
    assert line.startswith("error: problem.path = 'problem.npz': every observed entry of M is 0")
    assert not out.exists()


def test_matrix_sensing_without_drive_is_refused(cli_main, tmp_path, no_gd):
    rng = np.random.default_rng(0)
    a = rng.normal(size=(6, 3, 3))
    np.savez(tmp_path / "problem.npz", M=np.zeros((3, 3)), A=a, y=np.zeros(6))
    out = tmp_path / "run"
    keys = [f"problem.path={tmp_path / 'problem.npz'}", "problem.kind=sensing", "train.steps=50"]
    code, err = cli_main("matrix", *_sets(*keys), "--out", str(out))
    assert code == 2
    assert "A^*(y) = 0" in _one_error_line(err)
    assert not out.exists()
