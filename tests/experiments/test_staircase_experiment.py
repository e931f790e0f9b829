"""The ``staircase`` experiment: the matrix closed form against GD, the measured laws
of each stage's plateau, stages behind a long first plateau, and the teacher3 set."""

from __future__ import annotations

import numpy as np
import pytest

from condensation.config.network import config_from_dict, data_keys_used
from condensation.core.staircase import mode_half_time, segment_stages
from condensation.data import load_dataset
from condensation.errors import InputError
from condensation.experiments import staircase as sc


def test_matrix_half_times_within_one_percent_of_the_closed_form():
    p = {**sc.DEFAULTS, "matrix_depths": [2, 3, 4], "matrix_eps": [1e-2]}
    p["matrix_max_steps"] = 100_000  # depth 4 at eps 1e-2 needs ~750k: skipped, and counted
    seen = []
    m = sc._matrix_part(p, seen.append)
    head = m["headline"]
    assert head["matrix_runs"] == 2 and head["matrix_skipped"] == 1 and len(seen) == 3
    assert head["matrix_max_rel_err"] < 0.01
    for depth in (2, 3):
        assert head[f"matrix_depth{depth}_max_rel_err_at_eps_min"] < 0.01
        rows = m["depth"] == depth
        # the stored closed form is the exact integral, and each mode is there once
        assert sorted(m["mode"][rows]) == [1, 2, 3]
        for s, c in zip(m["s"][rows], m["closed_form"][rows]):
            assert c == mode_half_time(s, 1e-2**depth, depth)


def test_laws_read_each_stage_law_off_synthetic_lengths():
    eps = [1e-2, 1e-3, 1e-4]
    e = np.array(eps)
    lengths = np.stack([5.0 / e, np.full(3, 280.0), 10.0 * np.log10(1 / e)], axis=1)
    t_star = 5.0 / e
    escapes = 1.02 * t_star
    shares = [(0.5, 0.1), (0.8, 0.05), (0.9, 0.02)]
    h = sc._laws(eps[::-1], escapes[::-1], t_star[::-1], lengths[::-1], shares[::-1], 3)
    assert h["stage1_slope"] == pytest.approx(-1.0)
    assert h["stage2_slope"] == pytest.approx(0.0, abs=1e-12)
    assert h["stage2_rel_change_at_eps_min"] == pytest.approx(0.0, abs=1e-12)
    assert h["stage3_per_decade"] == pytest.approx(10.0)
    assert h["stage3_rel_change_at_eps_min"] == pytest.approx(10 / 40)
    assert h["later_max_rel_change"] == pytest.approx(0.25)
    assert h["T_star_max_rel_err"] == pytest.approx(0.02)
    assert h["T_star_rel_err_at_eps_min"] == pytest.approx(0.02)
    assert h["stage_count_at_eps_min"] == 3 and h["stage_counts_agree"]
    assert (h["first_plateau_share"], h["later_plateau_share"]) == (0.9, 0.02)  # eps 1e-4's


def test_a_missing_stage_is_counted_not_guessed():
    lengths = np.array([[10.0, 50.0], [20.0, np.nan]])
    h = sc._laws([1e-2, 1e-3], [10.0, 20.0], [np.nan, np.nan], lengths, [(0, 0)] * 2, 2)
    assert h["stage_count_at_eps_min"] == 1 and not h["stage_counts_agree"]
    assert h["stage2_slope"] is None and h["later_max_rel_change"] is None
    assert h["T_star_max_rel_err"] is None and "first_plateau_share" not in h


def test_stages_after_resolve_a_short_plateau_behind_a_long_first_one():
    esc = 2e4  # a first plateau ~1/eps long, then a second of 300
    t = np.concatenate([np.linspace(0, 0.9 * esc, 200), np.linspace(0.9 * esc, esc + 900, 4000)])
    loss = 0.5 / (1 + np.exp((t - esc) / 3)) + 0.05 / (1 + np.exp((t - esc - 300) / 3)) + 0.005
    st = sc._stages_after(t, loss, esc)
    assert len(st) == 2 and st[0]["start_t"] == 0.0
    second = st[1]["drop_start_t"] - st[1]["start_t"]
    assert 240 < second < 300  # the drops themselves take ~15 on each side
    whole = segment_stages(t, loss)  # on the whole horizon the window is 100 time units
    assert len(whole) < 2 or abs((whole[1]["drop_start_t"] - whole[1]["start_t"]) - second) > 5


def test_teacher3_is_three_centred_directions_and_refuses_d_below_3():
    cfg = config_from_dict({"data": {"dataset": "teacher3", "n": 300, "d": 5, "seed": 2}})
    d = load_dataset(cfg.data)
    assert d.x.shape == (300, 5) and abs(d.y.mean()) < 1e-12
    again = load_dataset(cfg.data)
    assert np.array_equal(d.y, again.y)  # the seed decides it
    assert {"n", "d", "seed"} <= data_keys_used(cfg.data)
    with pytest.raises(InputError, match=r"data\.d.*teacher3 has three directions") as e:
        config_from_dict({"data": {"dataset": "teacher3", "d": 2}})
    assert "\n" not in str(e.value)


@pytest.mark.slow
def test_two_layer_first_plateau_gains_ln10_over_z_per_decade():
    """The linear effective dynamics (AGF's first stage): ln(10)/|z| per decade."""
    p = {**sc.DEFAULTS, "eps": [1e-3, 1e-4, 1e-5], "room": 400.0, "linear_snapshots": 800}
    res = sc._network_part(p, 2, lambda what: None)
    h = res["headline"]
    assert h["stage1_per_decade_rel_err"] < 0.05, h


@pytest.mark.slow
def test_three_layer_first_escape_is_t_star_and_the_second_plateau_barely_moves():
    p = {**sc.DEFAULTS, "eps": [1e-3, 1e-4], "room": 600.0, "linear_snapshots": 1200}
    h = sc._network_part(p, 3, lambda what: None)["headline"]
    assert h["T_star_rel_err_at_eps_min"] < 0.01, h
    assert h["stage_count_at_eps_min"] >= 2 and h["stage2_rel_change_at_eps_min"] < 0.2, h


def test_plateau_lengths_take_stage_one_from_the_escape_even_without_a_drop():
    stages = [[{"start_t": 0.0, "drop_start_t": 9.0},
               {"start_t": 12.0, "drop_start_t": 40.0}], [], [{"start_t": 0.0}]]  # fmt: skip
    out = sc._plateau_lengths(stages, [10.0, 20.0, np.nan])
    np.testing.assert_array_equal(out, [[10.0, 28.0], [20.0, np.nan], [np.nan, np.nan]])


def test_run_saves_and_draws_runs_with_different_stage_counts(tmp_path, monkeypatch):
    """The stage lists differ in length per eps (diabetes finds 2, 1, 1): nothing
    ragged is saved, every figure is drawn."""
    eps = np.array([1e-2, 1e-3])
    t = np.linspace(0, 400, 800)

    def net(p, depth, tick):
        tick(f"depth {depth}")
        st = [[{"start_t": 0.0, "drop_start_t": 9.0, "drop_end_t": 11.0},
               {"start_t": 11.0, "drop_start_t": 50.0, "drop_end_t": 60.0}],
              [{"start_t": 0.0, "drop_start_t": 19.0, "drop_end_t": 21.0}]]  # fmt: skip
        lengths = sc._plateau_lengths(st, [10.0, 20.0])
        return {"headline": sc._laws(list(eps), [10.0, 20.0], [np.nan] * 2, lengths,
                                     [(np.nan, np.nan)] * 2, depth),
                "eps": eps, "escape_time": np.array([10.0, 20.0]), "t_star": np.full(2, np.nan),
                "plateau_lengths": lengths, "stages": st,
                "curves": [(t, 1 / (1 + t)), (t, 1 / (1 + t / 2))]}  # fmt: skip

    monkeypatch.setattr(sc, "_network_part", net)
    p = {**sc.DEFAULTS, **sc.QUICK, "matrix_depths": [2], "matrix_max_steps": 1}  # all skipped
    for sub in ("arrays", "figures"):  # made by the framework before run
        (tmp_path / sub).mkdir()
    head = sc.run(p, tmp_path, lambda *a: None)
    assert head["matrix_runs"] == 0 and head["matrix_skipped"] == 1
    assert head["matrix_max_rel_err"] is None
    assert head["depth2_stage_count_at_eps_min"] == 1 and not head["depth2_stage_counts_agree"]
    saved = np.load(tmp_path / "arrays" / "network_depth2.npz")
    assert saved["plateau_lengths"].shape == (2, 2)
    for fig in sc.FIGURES:
        assert (tmp_path / fig.file).is_file()


@pytest.mark.parametrize(
    ("key", "value"),
    [("depths", [2, 1]), ("eps", [1e-2, 2.0]), ("matrix_eps", [1.0])],
)
def test_bad_lists_are_refused_in_one_line_before_anything_runs(key, value, tmp_path):
    p = {**sc.DEFAULTS, **sc.QUICK, key: value}
    ticks = []
    with pytest.raises(InputError, match=key) as e:
        sc.run(p, tmp_path, lambda *a: ticks.append(a))
    assert "\n" not in str(e.value) and ticks == [] and not any(tmp_path.iterdir())
