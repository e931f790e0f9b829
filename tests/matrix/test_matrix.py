"""Deep matrix factorisation and completion (THEORY §6).

Closed forms first (fields, reduced triple, effective rank, the 2x2 minimum
nuclear norm), then the trainer against a plain loop, then bad input, then the
quantitative claims (the slow ones marked).  The acceptance numbers are also
printed by ``python tests/matrix/test_matrix.py`` (see the bottom of this file).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from condensation import matrix as mx
from condensation.commands.matrix import member_summaries, run_experiment, run_matrix
from condensation.core import matrix as cm
from condensation.core.effective import full_field
from condensation.errors import InputError
from condensation.training.network import snapshot_steps

SEED = int(os.environ.get("CONDENSATION_TEST_SEED", "0"))  # as in conftest.py


def _factors(rng, n1, n2, h, depth, scale=1.0):
    return [scale * rng.standard_normal(s) for s in mx.factor_shapes(n1, n2, depth, h)]


# ---- core: product, fields, triple -----------------------------------------------------
def test_product_orientation(rng):
    w1, w2, w3 = _factors(rng, 4, 6, 5, 3)
    assert w1.shape == (5, 6) and w2.shape == (5, 5) and w3.shape == (4, 5)
    np.testing.assert_allclose(cm.product((w1, w2, w3)), w3 @ w2 @ w1, rtol=1e-14)
    assert mx.factor_shapes(4, 6, 1, 9) == [(4, 6)]


def test_effective_field_closed_form(rng):
    """``W3' = M_O W1^T W2^T``, ``W2' = W3^T M_O W1^T``, ``W1' = W2^T W3^T M_O``."""
    w1, w2, w3 = _factors(rng, 4, 6, 5, 3)
    m_o = rng.standard_normal((4, 6))
    f1, f2, f3 = cm.effective_field((w1, w2, w3), m_o)
    np.testing.assert_allclose(f3, m_o @ w1.T @ w2.T, rtol=1e-12)
    np.testing.assert_allclose(f2, w3.T @ m_o @ w1.T, rtol=1e-12)
    np.testing.assert_allclose(f1, w2.T @ w3.T @ m_o, rtol=1e-12)


@pytest.mark.parametrize("depth", [2, 3, 4])
def test_small_weight_gradient_is_minus_effective_field(rng, depth):
    """For tiny factors the completion-loss gradient is -grad <M_O, X> (THEORY §6)."""
    pb = mx.make_problem(mx.ProblemConfig(n=5, rank=2, observed=12, seed=SEED))
    f = _factors(rng, 5, 5, 5, depth, scale=1e-4)
    g = jax.grad(cm.completion_loss)(tuple(f), pb.m, pb.mask)
    e = cm.effective_field(f, pb.m_obs)
    for gk, ek in zip(g, e):  # the difference is O(|X| / |M|) relative, |X| ~ 1e-4^L
        assert np.linalg.norm(np.asarray(gk) + ek) <= 1e-5 * np.linalg.norm(ek)


def test_one_row_case_is_the_three_layer_network_field(rng):
    """``M_O = z^T``: the deep-factorisation field is the network's effective field."""
    d, m1, m2 = 5, 7, 6
    params = (
        rng.standard_normal((m1, d)),
        rng.standard_normal((m2, m1)),
        rng.standard_normal((1, m2)),
    )
    z = rng.standard_normal(d)
    ours = cm.effective_field(params, z[None, :])
    theirs = full_field(params, z)
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a, b, rtol=1e-14, atol=1e-14)
    assert float(cm.effective_energy(params, z[None, :])) == pytest.approx(
        float((params[2] @ params[1] @ params[0] @ z)[0]), rel=1e-14
    )


def test_reduced_triple_equations(rng):
    """``a' = s1 W c`` and ``c' = s1 W^T a`` for any M_O; ``W' = s1 a c^T`` for rank one."""
    w = _factors(rng, 4, 6, 5, 3)
    m_o = rng.standard_normal((4, 6))
    s1, u1, v1 = mx.top_singular_pair(m_o)
    f = cm.effective_field(w, m_o)
    a, wm, c = cm.reduced_triple(w, u1, v1)
    da, dw, dc = cm.reduced_triple(f, u1, v1)  # the triple map is linear in each factor
    np.testing.assert_allclose(da, s1 * wm @ c, rtol=1e-12)
    np.testing.assert_allclose(dc, s1 * wm.T @ a, rtol=1e-12)
    rank_one = s1 * np.outer(u1, v1)
    _, dw1, _ = cm.reduced_triple(cm.effective_field(w, rank_one), u1, v1)
    np.testing.assert_allclose(dw1, s1 * np.outer(a, c), rtol=1e-12)


def test_effective_rank_closed_forms():
    assert float(cm.effective_rank(jnp.array([3.0, 3.0, 3.0, 0.0]))) == pytest.approx(3.0)
    assert float(cm.effective_rank(jnp.array([5.0, 0.0]))) == pytest.approx(1.0)
    s = np.array([2.0, 1.0])
    p = s / 3
    assert float(mx.effective_rank_np(s)) == pytest.approx(np.exp(-(p * np.log(p)).sum()))


def test_tracked_singular_values_keep_identity():
    """Two components that cross keep their labels (sorted values would swap)."""
    u, v = np.eye(3)[:, :2], np.eye(3)[:, :2]
    xs = np.stack([np.diag([2.0, 1.0, 0.0]), np.diag([1.0, 2.0, 0.0])])
    tracked = np.stack([np.asarray(cm.tracked_singular_values(x, u, v)) for x in xs])
    np.testing.assert_allclose(tracked, [[2.0, 1.0], [1.0, 2.0]])


def test_half_times_and_plateau():
    t = np.linspace(0, 10, 11)
    tracked = np.column_stack([np.clip(t - 2, 0, 4), np.clip(t - 6, 0, 2)])
    np.testing.assert_allclose(mx.half_times(t, tracked), [4.0, 7.0])
    er = np.array([5, 3, 1.1, 1.05, 1.1, 1.5, 1.1, 2, 2, 2, 2])
    assert mx.longest_stretch_below(t, er, 1.2) == (2.0, 4.0)


# ---- problems and init ----------------------------------------------------------------
@pytest.mark.parametrize("spectrum", ["gaussian", "flat"])
def test_generator_normalisation(spectrum):
    p = mx.ProblemConfig(n=30, cols=20, rank=3, observed=200, spectrum=spectrum, seed=SEED)
    pb = mx.make_problem(p)
    s = np.linalg.svd(pb.m, compute_uv=False)
    assert pb.shape == (30, 20) and pb.n_observed == 200
    assert np.sum(pb.m**2) == pytest.approx(600.0)  # |M|_F^2 = n1 n2
    assert s[3] < 1e-10 * s[0] and s[2] > 1e-3 * s[0]
    if spectrum == "flat":
        np.testing.assert_allclose(s[:3], np.sqrt(600 / 3))
    # the same seed gives the same M whatever the number of observations
    other = mx.make_problem(mx.ProblemConfig(**{**p.__dict__, "observed": 50}))
    np.testing.assert_array_equal(other.m, pb.m)


def test_sensing_problem():
    pb = mx.make_problem(mx.ProblemConfig(kind="sensing", n=6, rank=1, observed=40, seed=SEED))
    np.testing.assert_allclose(pb.y, np.einsum("kij,ij->k", pb.a, pb.m))
    np.testing.assert_allclose(pb.m_obs, np.einsum("k,kij->ij", pb.y, pb.a))
    assert pb.loss(pb.m) == pytest.approx(0.0, abs=1e-20)
    assert pb.test_mask.sum() == 36


def test_init_schemes():
    shapes = mx.factor_shapes(6, 4, 3, 5)
    g = mx.init_factors(shapes, "gaussian", 1e-3, SEED)
    assert np.std(np.concatenate([w.ravel() for w in g])) == pytest.approx(1e-3, rel=0.3)
    b = mx.init_factors(shapes, "balanced", 1e-2, SEED)
    for lo, hi in zip(b[:-1], b[1:]):
        np.testing.assert_allclose(hi.T @ hi, lo @ lo.T, atol=1e-15)
    c = 1e-2 * np.sqrt(5)
    np.testing.assert_allclose(np.linalg.svd(cm.product(b), compute_uv=False), c**3, rtol=1e-12)
    i = mx.init_factors(shapes, "identity", 0.1, SEED)
    np.testing.assert_allclose(cm.product(i), 1e-3 * np.eye(6, 4), atol=1e-18)


# ---- the nuclear-norm baseline -----------------------------------------------------
def _two_by_two():
    return mx.problem_from_arrays(np.array([[0.0, 1.0], [1.0, 0.0]]), np.array([[0, 1], [1, 1]]))


def test_nuclear_norm_closed_form_2x2():
    """``[[x, 1], [1, 0]]`` has nuclear norm ``sqrt(x^2 + 4)``: the minimum is x = 0."""
    res = mx.min_nuclear_norm(_two_by_two(), tol=1e-10)
    assert res.converged
    np.testing.assert_allclose(res.x, [[0.0, 1.0], [1.0, 0.0]], atol=1e-6)


def test_nuclear_norm_recovers_easy_problems():
    for observed in (100, 130):
        pb = mx.make_problem(mx.ProblemConfig(n=12, rank=1, observed=observed, seed=SEED))
        res = mx.min_nuclear_norm(pb)
        assert res.converged and res.constraint_residual < 1e-12
        # M is feasible, so the minimum is at most |M|_* (with 100 entries it can be below)
        assert np.linalg.norm(res.x, "nuc") <= np.linalg.norm(pb.m, "nuc") * (1 + 1e-6)
    assert mx.matrix_errors(pb, res.x)["rel_fro_error"] < 1e-6  # 130 of 144: recovered
    sens = mx.make_problem(mx.ProblemConfig(kind="sensing", n=6, rank=1, observed=36, seed=SEED))
    res = mx.min_nuclear_norm(sens)  # 36 generic measurements of a 6x6 matrix determine it
    np.testing.assert_allclose(res.x, sens.m, atol=1e-6)


# ---- the trainer ---------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["completion", "sensing"])
def test_trainer_matches_plain_gd(kind, spread_always):
    """Three members (padded onto the two test devices) each equal plain GD."""
    p = mx.ProblemConfig(kind=kind, n=5, cols=4, rank=2, observed=12, seed=SEED)
    pb = mx.make_problem(p)
    cfg = mx.matrix_config_from_dict(
        {"model": {"depth": 3, "width": 3}, "init": {"scale": 0.3, "seeds": [0, 1, 2]}}
    )
    ens = mx.init_ensemble(cfg, pb.shape)
    r = mx.train_factorisation(pb, ens.params, lr=0.01, steps=30, snapshots=np.array([0, 7, 30]))
    loss = cm.completion_loss if kind == "completion" else cm.sensing_loss
    grad = jax.jit(jax.grad(loss))
    for e in range(3):
        f = [np.asarray(p[e]) for p in ens.params]
        for _ in range(30):
            g = grad(tuple(f), *pb.operator())
            f = [w - 0.01 * np.asarray(gw) for w, gw in zip(f, g)]
        for got, want in zip(r.final_params, f):
            np.testing.assert_allclose(got[e], want, rtol=1e-12, atol=1e-15)
        assert r.series["loss"][e, -1] == pytest.approx(pb.loss(cm.product(f)), rel=1e-12)
    assert r.series["x"].shape == (3, 3, 5, 4)
    assert r.tracked_singular_values.shape == (3, 3, 4)
    assert r.escape_step.shape == r.escape_w1.shape[:1] == (3,)


def test_trainer_records_final_stage_and_escape():
    """The in-loop escape step is the first step with loss <= loss_0 / 2 (checked by a
    rerun with snapshots at that step and the one before); final-stage entry precedes it."""
    cfg = mx.matrix_config_from_dict(
        {"problem": {"n": 6, "rank": 1, "observed": 30}, "init": {"scale": 1e-2}}
    )
    pb, steps = mx.load_problem(cfg.problem), 3000
    ens = mx.init_ensemble(cfg, pb.shape)
    r = mx.train_factorisation(pb, ens.params, lr=0.01, steps=steps, snapshots=np.array([0, steps]))
    esc = int(r.escape_step[0])
    assert 0 < esc < steps
    snaps = np.array([0, esc - 1, esc, steps])
    loss = mx.train_factorisation(pb, ens.params, lr=0.01, steps=steps, snapshots=snaps).series[
        "loss"
    ][0]
    assert loss[1] > loss[0] / 2 >= loss[2]
    # final-stage entry comes before the escape (THEORY §5: late in the plateau)
    assert 0 < r.final_stage_step[0] <= esc


# ---- bad input: one line, naming what is wrong, exit 2, nothing written ---------------
def _npz(path, **arrays):
    np.savez(path, **arrays)
    return str(path)


def _bad_files(tmp_path):
    m = np.arange(9.0).reshape(3, 3)
    return {
        "shape": (_npz(tmp_path / "s.npz", M=m, mask=np.ones((3, 4))), "different shapes"),
        "empty": (_npz(tmp_path / "e.npz", M=m, mask=np.zeros((3, 3))), "no observed"),
        "nonfinite": (
            _npz(tmp_path / "n.npz", M=np.where(m == 4, np.nan, m), mask=np.ones((3, 3))),
            "non-finite",
        ),
        "inf": (
            _npz(tmp_path / "i.npz", M=np.where(m == 2, np.inf, m), mask=np.eye(3)),
            "non-finite",
        ),
        "nomask": (_npz(tmp_path / "k.npz", M=m), "no array mask"),
    }


def test_good_problem_files(tmp_path):
    pb = mx.make_problem(mx.ProblemConfig(n=5, cols=4, rank=2, observed=9, seed=SEED))
    path = _npz(tmp_path / "c.npz", M=pb.m, mask=pb.mask.astype(bool))
    got = mx.load_problem(mx.matrix_config_from_dict({"problem": {"path": path}}).problem)
    np.testing.assert_array_equal(got.m_obs, pb.m_obs)
    sens = mx.make_problem(mx.ProblemConfig(kind="sensing", n=4, rank=1, observed=7, seed=SEED))
    path = _npz(tmp_path / "s.npz", M=sens.m, A=sens.a)  # y defaults to A(M)
    raw = {"problem": {"kind": "sensing", "path": path}}
    got = mx.load_problem(mx.matrix_config_from_dict(raw).problem)
    np.testing.assert_allclose(got.y, sens.y, rtol=1e-14)
    bad = _npz(tmp_path / "b.npz", M=sens.m, A=sens.a[:, :3])
    with pytest.raises(InputError, match="A must be"):
        mx.load_problem(
            mx.matrix_config_from_dict({"problem": {**raw["problem"], "path": bad}}).problem
        )


def test_float32_runs_close_to_float64():
    pb = mx.make_problem(mx.ProblemConfig(n=5, rank=1, observed=15, seed=SEED))
    cfg = mx.matrix_config_from_dict({"model": {"depth": 2}, "init": {"scale": 0.1}})
    ens = mx.init_ensemble(cfg, pb.shape)
    kw = dict(lr=0.05, steps=200, snapshots=np.array([0, 200]))
    r32 = mx.train_factorisation(pb, ens.params, dtype="float32", **kw)
    r64 = mx.train_factorisation(pb, ens.params, dtype="float64", **kw)
    np.testing.assert_allclose(r32.series["x"][0, -1], r64.series["x"][0, -1], atol=1e-4)


def test_bad_problem_files(tmp_path):
    for path, words in _bad_files(tmp_path).values():
        cfg = mx.matrix_config_from_dict({"problem": {"path": path}})
        with pytest.raises(InputError) as e:
            mx.load_problem(cfg.problem)
        msg = str(e.value)
        assert msg.startswith("problem.path") and words in msg and "\n" not in msg


BAD_CONFIG = [
    (["problem.rank=21"], "problem.rank", "exceeds the dimension"),
    (["problem.observed=0"], "problem.observed", "empty mask"),
    (["problem.observed=401"], "problem.observed", "more than"),
    (["problem.kind='tomography'"], "problem.kind", "unknown"),
    (["problem.spectrum='zipf'"], "problem.spectrum", "unknown"),
    (["model.depth=0"], "model.depth", ">= 1"),
    (["model.width=0"], "model.width", ">= 1"),
    (["init.scheme='orthogonal'"], "init.scheme", "unknown"),
    (["init.scale=0"], "init.scale", "> 0"),
    (["train.lr=-1"], "train.lr", "> 0"),
    (["train.dtype='float16'"], "train.dtype", "unknown"),
    (["model.widths=[3]"], "model.widths", "unknown key"),
    (["data.n=3"], "data", "unknown config section"),
]


@pytest.mark.parametrize("overrides,field,words", BAD_CONFIG)
def test_bad_matrix_config(overrides, field, words):
    with pytest.raises(InputError) as e:
        mx.load_matrix_config(None, overrides)
    msg = str(e.value)
    assert msg.startswith(field) and words in msg and "fix:" in msg and "\n" not in msg


def test_cli_bad_input_exit_2_no_output(tmp_path, cli_main):
    cases = [[f"--set=problem.path='{p}'"] for p, _ in _bad_files(tmp_path).values()]
    cases += [[f"--set={o}" for o in overrides] for overrides, _, _ in BAD_CONFIG[:3]]
    for extra in cases:
        out = tmp_path / "out"
        code, err = cli_main("matrix", *extra, "--out", str(out))
        lines = [ln for ln in err.strip().splitlines() if ln.strip()]
        assert code == 2 and len(lines) == 1 and "error:" in lines[0], err
        assert not out.exists()
        assert not list(tmp_path.glob(".out*"))  # no partial directory either


TINY = {
    "problem": {"n": 6, "rank": 1, "observed": 24},
    "model": {"depth": 3},
    "init": {"scale": 1e-2, "seeds": [0, 1]},
    "train": {"lr": 0.02, "steps": 3000, "snapshots": 10, "linear_snapshots": 40},
}


def test_cli_matrix_writes_run(tmp_path, cli_main):
    import tomli_w

    cfg = tmp_path / "tiny.toml"
    cfg.write_text(tomli_w.dumps(TINY))
    out = tmp_path / "run"
    code, err = cli_main("matrix", str(cfg), "--out", str(out))
    assert code == 0, err
    s = json.loads((out / "summary.json").read_text())
    assert s["shape"] == [6, 6] and len(s["members"]) == 2
    keys = (
        "depth test_rmse train_loss effective_rank singular_values escape_time "
        "T_star_effective final_stage_entry_time"
    ).split()
    for m in s["members"]:
        assert all(k in m for k in keys)
        assert m["depth"] == 3 and m["test_rmse"] < 1e-3
        assert m["escape_time"] == pytest.approx(m["T_star_effective"], rel=0.05)
    assert s["nuclear_norm_baseline"]["converged"]
    for f in ("loss.png", "singular_values.png", "alignment.png"):
        assert (out / "figures" / f).stat().st_size > 1000
    for f in ("series.npz", "products.npz", "final_factors.npz", "problem.npz"):
        assert (out / "arrays" / f).is_file()


# ---- the acceptance checks ---------------------------------------------------
def _x11_at_losses(r, targets):
    """|X11| where the observed-entry MSE L = 2 loss / 3 crosses each target (log interp)."""
    mse = 2 * r.series["loss"][0] / 3
    x11 = np.abs(r.series["x"][0, :, 0, 0])
    out = []
    for target in targets:
        j = int(np.argmax(mse <= target))
        assert mse[j] <= target < mse[j - 1], f"L = {target} not reached (last {mse[-1]:.3g})"
        f = np.log(target / mse[j - 1]) / np.log(mse[j] / mse[j - 1])
        out.append(float(np.exp(np.log(x11[j - 1]) + f * np.log(x11[j] / x11[j - 1]))))
    return np.array(out)


def run_two_by_two(steps: int = 4_000_000, lr: float = 0.002):
    """Depth 3, eps = 1e-3 on the 2x2 completion with observed (1,2) = (2,1) = 1, (2,2) = 0."""
    cfg = mx.matrix_config_from_dict({"model": {"depth": 3}, "init": {"scale": 1e-3}})
    pb = _two_by_two()
    ens = mx.init_ensemble(cfg, pb.shape)
    snaps = snapshot_steps(steps, 100, 1000)
    return mx.train_factorisation(pb, ens.params, lr=lr, steps=steps, snapshots=snaps)


def test_two_by_two_unobserved_entry_diverges():
    """``|X11| = 1/sqrt(3L)`` within 5 % at L = 1e-2, 1e-3, 1e-4; the product stays rank one."""
    r = run_two_by_two()
    targets = np.array([1e-2, 1e-3, 1e-4])
    x11 = _x11_at_losses(r, targets)
    ratio = x11 * np.sqrt(3 * targets)
    np.testing.assert_allclose(ratio, 1.0, rtol=0.05)
    sv = r.series["singular_values"][0]
    late = 2 * r.series["loss"][0] / 3 <= 1e-2
    assert np.max(sv[late, 1] / sv[late, 0]) < 1e-6


@pytest.mark.slow  # the default run stays under 10 minutes on 2 cores
def test_one_row_T_star_equals_network_T_star(rng):
    """``M_O = z^T``: the deep-factorisation T* is the three-layer network's effective T*
    (:mod:`condensation.effective.system`) to 1e-10."""
    from condensation.effective.system import build_system, solve

    d, m1, m2 = 4, 6, 5
    params = tuple(1e-3 * rng.standard_normal(s) for s in ((m1, d), (m2, m1), (1, m2)))
    z = rng.standard_normal(d)
    ours = mx.effective_blowup(params, z[None, :])
    assert ours.blew_up
    net = solve(build_system(params, z, form="full"))
    assert net.blew_up
    assert abs(ours.T_star - net.T_star) <= 1e-10 * net.T_star


@pytest.mark.slow
def test_twenty_by_twenty_rank_one_plateau_and_T_star():
    """20x20 rank 2, 142 observed, eps = 1e-3, depth 3: rank-one plateau, recovery, T*."""
    run = run_matrix(acceptance_20_config(), baseline=True)
    for m in member_summaries(run):
        start, end = m["rank_one_plateau"]
        assert end - start > 5.0
        assert m["test_rmse"] < 1e-4
        assert abs(m["escape_time"] / m["T_star_effective"] - 1) < 0.05


def acceptance_20_config():
    here = Path(__file__).resolve().parents[2] / "configs" / "matrix_completion.toml"
    return mx.load_matrix_config(here, ["init.seeds=[0]"])


@pytest.mark.slow
def test_hundred_by_hundred_depth3_beats_depth2():
    """100x100 rank 5, 2000 observed: depth-3 RMSE >= 10x below depth 2, effective rank 5 +- 0.1."""
    res = run_hundred()
    assert res[3]["test_rmse"] * 10 <= res[2]["test_rmse"]
    assert abs(res[3]["effective_rank"] - 5) <= 0.1


def run_hundred() -> dict:
    here = Path(__file__).resolve().parents[2] / "configs" / "matrix_100.toml"
    out = {}
    for depth in (2, 3):
        cfg = mx.load_matrix_config(here, [f"model.depth={depth}"])
        run = run_matrix(cfg, t_star=depth == 3, baseline=depth == 3)
        out[depth] = member_summaries(run)[0]
        if run.baseline is not None:
            out["nuclear"] = mx.matrix_errors(run.problem, run.baseline.x)
    return out


@pytest.mark.slow
def test_experiment_quick(tmp_path):
    from condensation.commands.matrix import EXPERIMENT_DEFAULTS, EXPERIMENT_QUICK

    head = run_experiment({**EXPERIMENT_DEFAULTS, **EXPERIMENT_QUICK}, tmp_path)
    assert (tmp_path / "figures" / "matrix_sweep.png").is_file()
    assert (tmp_path / "figures" / "matrix_trajectory.png").is_file()
    assert head["test_rmse_depth3_obs200"] < head["test_rmse_depth1_obs200"]


if __name__ == "__main__":  # print the acceptance numbers
    r = run_two_by_two()
    t = np.array([1e-2, 1e-3, 1e-4])
    print("2x2: |X11| sqrt(3L) at L = 1e-2, 1e-3, 1e-4:", _x11_at_losses(r, t) * np.sqrt(3 * t))
    run = run_matrix(mx.load_matrix_config(Path("configs/matrix_completion.toml")))
    for m in member_summaries(run):
        print(
            "20x20 seed",
            m["seed"],
            "plateau",
            m["rank_one_plateau"],
            "rmse",
            m["test_rmse"],
            "escape/T*",
            m["escape_over_T_star"],
            "final-stage",
            m["final_stage_entry_time"],
        )
    print("100x100:", json.dumps(run_hundred(), indent=1, default=float))
