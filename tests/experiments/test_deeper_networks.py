"""``deeper-networks`` (issue 14): the depth-L chain formulas against autodiff, the
sign-condition bookkeeping on constructed trajectories, the escape law of the
effective dynamics at depth 4 (and, slow, 5) against scipy, GD against the effective T*
at one cheap scale, and (slow) the default run's headline numbers."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.integrate import solve_ivp

from condensation.config.network import DataConfig
from condensation.core.activations import ACTIVATIONS
from condensation.core.chain import (
    chain_counts,
    chain_gram_rates,
    chain_products,
    deep_v,
    deep_v_rate,
)
from condensation.core.effective import full_field
from condensation.core.final_stage import final_stage_counts
from condensation.data import load_dataset
from condensation.effective.deep import (
    build_deep_system,
    sign_condition_counts,
    sign_condition_sets,
)
from condensation.effective.system import solve
from condensation.errors import InputError
from condensation.experiments import get
from condensation.experiments.deeper_networks import _check, fit_slope, set_statistics
from condensation.training.network import train


def _chain_net(rng, depth, widths, d):
    dims = [d, *widths, 1]
    return [jnp.asarray(rng.standard_normal((dims[k + 1], dims[k]))) for k in range(depth)]


@jax.jit
def _formulas_and_autodiff(ps, z):
    """(chain formulas, the same quantities' derivatives along the effective field by
    autodiff): v', G_3' against c v^T + v c^T, and every G_k'."""
    field = full_field(ps, z)
    _, dv = jax.jvp(lambda *p: deep_v(p), tuple(ps), tuple(field))
    _, dgs = jax.jvp(lambda *p: [m.T @ m for m in chain_products(p)], tuple(ps), tuple(field))
    c, v = ps[0] @ z, deep_v(ps)
    mine = [deep_v_rate(ps, z), jnp.outer(c, v) + jnp.outer(v, c), *chain_gram_rates(ps, z)]
    return mine, [dv, dgs[0], *dgs]


def test_chain_formulas_are_the_derivatives_along_the_flow(rng):
    # v' = sum_k |P_k|^2 M_k^T M_k c; (W2^T W2)' = c v^T + v c^T (so chain condition 3
    # cannot decrease while the inner condition holds: the docs' invariance argument);
    # the general G_k' formula (depth 5: k = 3, 4, 5, with Q_kl = I, W3, W4 W3).
    # Unequal widths catch a transposed or misplaced factor.
    depth = 5
    ps = _chain_net(rng, depth, [5 + k for k in range(depth - 1)], 3)
    mine, ref = _formulas_and_autodiff(ps, jnp.asarray(rng.standard_normal(3)))
    for got, want in zip(mine, ref):
        np.testing.assert_allclose(got, want, rtol=1e-11, atol=1e-11 * float(jnp.max(abs(want))))


def test_chain_conditions_are_the_final_stage_condition_at_depth_3(rng):
    for _ in range(2):
        b, w, a = _chain_net(rng, 3, [6, 5], 4)
        z = jnp.asarray(rng.standard_normal(4))
        n_inner, pairs = chain_counts([b, w, a], z)
        ref_inner, ref_pairs = final_stage_counts(a[0], w, b @ z)
        assert int(n_inner) == int(ref_inner) and int(pairs[0]) == int(ref_pairs)


def test_stacked_numpy_counts_equal_the_core_counts_state_by_state(rng):
    # (2, 2) stacked depth-5 states of unequal widths, near-condensed so that the
    # counts are neither all zero nor all maximal
    z = rng.standard_normal(3)
    dims = [3, 6, 5, 4, 3, 1]
    base = [rng.standard_normal((dims[k + 1], dims[k])) for k in range(5)]
    base[0] = np.outer(np.sign(rng.standard_normal(6)), z) + 0.3 * base[0]
    stack = [b + 0.8 * rng.standard_normal((2, 2, *b.shape)) for b in base]
    got = sign_condition_counts(stack, z)
    seen = set()
    for i in range(2):
        for j in range(2):
            n_inner, pairs = chain_counts([jnp.asarray(w[i, j]) for w in stack], jnp.asarray(z))
            assert got["fs_inner_violations"][i, j] == int(n_inner)
            for k in range(3, 6):
                assert got[f"chain{k}_violations"][i, j] == int(pairs[k - 3])
                seen.add(int(pairs[k - 3]))
    assert len(seen) > 1  # the states differ in their counts: the comparison has teeth


def _inside_state(depth, m, z):
    """A state inside every condition: W1 rows +-2z (s_j = sign(c_j) = s_j), W2 =
    diag(s) (S W2^T W2 S = I), then all-ones layers (every M_k S has equal columns)."""
    s = np.array([1.0, -1.0, 1.0, -1.0])[:m]
    ws = [np.diag(s)] + [np.ones((m, m)) for _ in range(depth - 3)]
    return [np.outer(s, z) * 2.0, *ws, np.ones((1, m))]


def test_an_exit_is_detected_and_reported_per_condition():
    depth, m = 4, 4
    z = np.array([0.6, 0.8, 0.0])
    inside = _inside_state(depth, m, z)
    assert sign_condition_sets(sign_condition_counts(inside, z), depth)["full"]
    # leave chain condition 4 only: W3's first two columns have a negative inner
    # product, so S M_4^T M_4 S = W3^T W3 has a negative entry, while chain 3 (W2
    # untouched) and the inner condition (W4 W3 > 0 entrywise) still hold
    out = [p.copy() for p in inside]
    out[2] = np.eye(m)
    out[2][:2, :2] = [[1.0, -1.0], [0.5, 1.0]]
    out[3] = np.array([[0.1, 1.0, 1.0, 1.0]])
    traj = [inside, inside, out, inside, out]  # in, in, out, back in, out again
    stacked = [np.stack([s[k] for s in traj]) for k in range(depth)]
    counts = sign_condition_counts(stacked, z)
    assert counts["chain3_violations"].tolist() == [0, 0, 0, 0, 0]
    assert counts["chain4_violations"][2] > 0
    sets = sign_condition_sets(counts, depth)
    assert sets["full"].tolist() == [True, True, False, True, False]
    st = set_statistics([sets, sign_condition_sets(counts | {"chain4_violations":
                                                             np.zeros(5)}, depth)])  # fmt: skip
    assert st["full"] == {"entered": 2, "exits": 1, "leads": st["full"]["leads"]}
    assert st["chain4"]["exits"] == 1 and st["chain3"]["exits"] == 0
    # and a state with one flipped first-layer row violates the inner condition
    flipped = [p.copy() for p in inside]
    flipped[0][0] *= -1
    assert sign_condition_counts(flipped, z)["fs_inner_violations"] >= 1


def _scipy_growth_time(ps, z, growth):
    """Time at which |theta| first reaches ``growth`` x its start, by scipy (DOP853)
    on the full effective field written in numpy."""
    shapes = [p.shape for p in ps]
    sizes = np.cumsum([0] + [int(np.prod(s)) for s in shapes])

    def unflat(y):
        return [y[sizes[k]:sizes[k + 1]].reshape(shapes[k]) for k in range(len(shapes))]

    def rhs(t, y):
        ws = unflat(y)
        fwd = [z]
        for w in ws:
            fwd.append(w @ fwd[-1])
        back = [np.ones(1)]
        for w in ws[::-1]:
            back.append(back[-1] @ w)
        back = back[::-1]  # back[k] = W_L ... W_{k+1}, a row of length m_k
        return np.concatenate([np.outer(back[k + 1], fwd[k]).ravel() for k in range(len(ws))])

    y0 = np.concatenate([p.ravel() for p in ps])
    target = growth * np.linalg.norm(y0)
    event = lambda t, y: np.linalg.norm(y) - target  # noqa: E731
    event.terminal = True
    sol = solve_ivp(rhs, (0, 1e9), y0, method="DOP853", rtol=1e-12, atol=1e-14, events=event)
    return float(sol.t_events[0][0])


def _teacher():
    return load_dataset(DataConfig(dataset="teacher", seed=0))


def _escape_law(depth, data, rng, width=4):
    """T* over four decades of eps for one draw: fitted slope, and T* at eps = 0.3 next
    to scipy's time to grow the norm 1e3-fold (T* - t ~ 1e-3^(L-2) T* then)."""
    act = ACTIVATIONS["tanh"]
    dims = [data.d_in] + [width] * (depth - 1) + [1]
    g = [rng.standard_normal((dims[k + 1], dims[k])) for k in range(depth)]
    eps = np.array([1e-3, 1e-2, 1e-1, 1.0])
    t_star = np.array([solve(build_deep_system([e * w for w in g], data.z,
                                               activation=act)).T_star for e in eps])  # fmt: skip
    ref = _scipy_growth_time([0.3 * w for w in g], data.z, 1e3)
    return g, fit_slope(eps, t_star), t_star[-1] * 0.3 ** -(depth - 2), ref


def test_depth_4_escape_law_and_gd_agree_with_the_effective_t_star(rng):
    data = _teacher()
    g, slope, t_03, ref = _escape_law(4, data, rng)
    # the solver starts every eps at unit scale, so T* ∝ eps^-2 holds to its T* error
    # (~1e-12): 1e-9 leaves room for rounding; a wrong degree would give -1 or -3
    assert slope == pytest.approx(-2.0, abs=1e-9)
    # scipy's time to grow 1e3-fold is T* - O(1e-6 T*) (|theta| ~ (T* - t)^(-1/2))
    assert ref < t_03 and (t_03 - ref) / t_03 < 1e-5
    # GD (lr 0.25, escape = loss halved) at eps with T* ~ 100: it escapes within 5 %
    # of T*: lr / T* is 0.25 %, the O(1) time between the loss halving and the blow-up
    # about 1 %, and the field's higher-order terms are O(eps^2) ~ 1e-3
    eps = (t_03 * 0.3**2 / 100.0) ** 0.5
    t_eff = solve(build_deep_system([eps * w for w in g], data.z)).T_star
    steps = int(1.3 * t_eff / 0.25)
    r = train([eps * w[None] for w in g], data.x, data.y, act=ACTIVATIONS["tanh"].fn, lr=0.25,
              steps=steps, snapshots=np.array([0, steps]), track_final_stage=False)  # fmt: skip
    assert r.escape_time[0] == pytest.approx(t_eff, rel=0.05)


@pytest.mark.slow  # a second compilation of the blow-up solver (~8 s of CPU); the default
def test_depth_5_escape_law(rng):  # run's test checks the depth-5 slopes too
    g, slope, t_03, ref = _escape_law(5, _teacher(), rng)
    assert slope == pytest.approx(-3.0, abs=1e-9)
    assert ref < t_03 and (t_03 - ref) / t_03 < 1e-5


def test_bad_parameters_are_refused_before_compute(cli_main, tmp_path):
    p = dict(get("deeper-networks").defaults)
    for key, bad in (("depths", [2, 4]), ("depths", [4, 4]), ("eps_min", 2.0),
                     ("n_gd_eps", 1), ("gd_time_max", 1.0), ("condensed_cos", 1.5)):  # fmt: skip
        with pytest.raises(InputError, match=key):
            _check({**p, key: bad})
    code, err = cli_main("run", "deeper-networks", "--set", "depths=[9]", "--out",
                         str(tmp_path / "x"))  # fmt: skip
    assert code == 2 and "depths" in err
    assert not (tmp_path / "x").exists()


@pytest.mark.slow  # about 45 s of CPU: one compiled blow-up solver and GD loop per depth
def test_deeper_networks_default_run(tmp_path):
    """The default run's acceptance numbers (docs/open-questions.md)."""
    from condensation.reproduction import run_experiment

    s = run_experiment("deeper-networks", tmp_path / "dn")
    h = s["headline"]
    for depth in (4, 5):
        k = f"deeper_networks.d{depth}"
        assert h[f"{k}_effective_slope"] == pytest.approx(-(depth - 2), abs=1e-9)
        assert h[f"{k}_effective_slope_gd_range"] == pytest.approx(-(depth - 2), abs=1e-9)
        # GD's O(1) offset after the blow-up time flattens its slope by ~T*(1)/T*: 5 %
        assert h[f"{k}_gd_slope"] == pytest.approx(-(depth - 2), rel=0.05)
        assert h[f"{k}_gd_over_effective_max_rel_dev"] < 0.1
        assert h[f"{k}_gd_n_not_escaped"] == 0
        assert h[f"{k}_n_blow_up"] == h[f"{k}_n_trajectories"] >= 50
        assert h[f"{k}_n_entered_full"] == h[f"{k}_n_trajectories"]
        assert h[f"{k}_n_exits_full"] == 0
        assert h[f"{k}_effective_median_abs_cos_final"] > 0.999
    for f in ("escape_vs_eps", "condensation", "sign_conditions"):
        assert (tmp_path / "dn" / "figures" / f"{f}.png").is_file()
    assert json.loads((tmp_path / "dn" / "summary.json").read_text())["section"] == (
        "open-questions")
