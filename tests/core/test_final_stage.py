"""Final-stage condition: definitions, forward invariance, condensation, GD tracking."""

import numpy as np
import pytest

from condensation.commands.effective import final_stage_summary
from condensation.core.final_stage import (
    final_stage_counts,
    final_stage_holds,
    inner_product_margins,
)
from condensation.effective.condensed import condensed_report
from condensation.effective.system import build_system, solve_batch


def test_counts_on_hand_made_states():
    a = np.array([1.0, 1.0])
    w = np.array([[1.0, 2.0], [0.5, 1.0]])
    c = np.array([1.0, 3.0])
    assert final_stage_counts(a, w, c) == (0, 0)
    # flip one neuron's projection: its inner product and its angles go wrong
    n_inner, n_pairs = final_stage_counts(a, w, np.array([1.0, -3.0]))
    assert n_inner == 1 and n_pairs == 1
    assert not final_stage_holds(a, w, np.array([1.0, -3.0]))


def test_holds_agrees_with_counts_on_both_branches(rng):
    """``final_stage_holds`` forms the Gram matrix only when the inner-product
    constraint holds; its verdict is still ``counts == (0, 0)``, jitted or vmapped."""
    import jax

    m1, m2 = 7, 5
    states, seen = [], set()
    for spread in np.geomspace(0.05, 3.0, 40):
        c = rng.standard_normal(m1)
        u = rng.standard_normal(m2)
        w = np.sign(c) * (u[:, None] + spread * rng.standard_normal((m2, m1)))
        a = u + 0.3 * rng.standard_normal(m2)
        if rng.random() < 0.3:  # random signs: the inner-product constraint fails
            c = c * rng.choice([-1.0, 1.0], m1)
        states.append((a, w, c))
    holds = jax.jit(final_stage_holds)
    for a, w, c in states:
        n_inner, n_pairs = final_stage_counts(a, w, c)
        assert bool(holds(a, w, c)) == (n_inner == 0 and n_pairs == 0)
        seen.add((int(n_inner) == 0, int(n_pairs) == 0))
    assert {(True, True), (True, False), (False, False)} <= seen
    a, w, c = (np.stack(v) for v in zip(*states))
    batched = jax.vmap(final_stage_holds)(a, w, c)
    assert [bool(v) for v in batched] == [bool(holds(*st)) for st in states]


def _padded_nets(rng, n, m, d=4, eps=1e-3):
    nets = []
    for _ in range(n):
        m1, m2 = rng.integers(3, m + 1, size=2)
        b, w, a = np.zeros((m, d)), np.zeros((m, m)), np.zeros((1, m))
        b[:m1] = rng.standard_normal((m1, d))
        w[:m2, :m1] = rng.standard_normal((m2, m1))
        a[0, :m2] = rng.standard_normal(m2)
        nets.append([eps * b, eps * w, eps * a])
    return nets


@pytest.mark.slow  # the default run stays under 10 minutes on 2 cores
def test_entered_late_never_left_and_condensed(rng):
    z = rng.standard_normal(4) * 0.4
    systems = [build_system(n, z, form="reduced") for n in _padded_nets(rng, 5, 12)]
    for sysm, sol in zip(systems, solve_batch(systems)):
        assert sol.blew_up
        fs = final_stage_summary(sol.steps)
        assert fs["final_stage_entry_time"] < sol.T_star
        assert fs["final_stage_violations_after_entry"] == 0  # forward invariance
        assert fs["condensed"] and fs["min_abs_cos_final"] > 0.999
        rep = condensed_report(sysm, sol, fs["final_stage_entry_time"])
        assert np.all(np.diff(rep["w_sigma_ratio"]) < 0)  # W -> rank one
        assert rep["w_sigma_ratio"][-1] < 1e-4
        assert rep["min_abs_cos"][-1] > 1 - 1e-6
        assert rep["w_rows_min_abs_cos_c"][-1] > 1 - 1e-6
        assert rep["log_bound_min_ratio"] >= 1.0  # the log lower bound holds, with C = 0


@pytest.mark.slow  # the default run stays under 10 minutes on 2 cores
def test_gd_final_stage_step_matches_brute_force(trained_and_reference):
    def inside(params, lk, l0, data):
        b, w, a = params
        return bool(final_stage_holds(a[0], w, b @ data.z))

    overrides = ["model.widths=[6, 5]", "init.scale=0.05", "data.n=30"]
    r, first = trained_and_reference(overrides, 1500, 0.1, inside)
    assert first > 0
    assert r.final_stage_step[0] == first


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_watch_gives_the_gram_verdict_at_every_step_of_a_drifting_sequence(rng, dtype):
    """``watch_final_stage`` carries violating pairs from step to step and forms the
    Gram matrix only when none still violates; its verdict is
    ``final_stage_holds``'s at every state, whatever the pairs it is given (states
    drift from violated to inside and back, with jumps, a NaN state and a zero c)."""
    import jax

    from condensation.core.final_stage import watch_final_stage, witness_pairs

    m1, m2 = 9, 6
    c = rng.standard_normal(m1)
    g = rng.standard_normal(m2)
    noise = rng.standard_normal((m2, m1))
    states = []
    for t in np.r_[np.linspace(3.0, 0.0, 60), np.linspace(0.0, 3.0, 30)]:
        w = np.sign(c) * (g[:, None] + t * noise)
        states.append((g + 0.05 * rng.standard_normal(m2), w, c))
    states.insert(40, (g, np.full((m2, m1), np.nan), c))
    states.insert(20, (g, states[20][1], np.zeros(m1)))
    states.insert(10, (g, np.sign(c) * rng.standard_normal((m2, m1)), c))  # a jump
    watch, exact = jax.jit(watch_final_stage), jax.jit(final_stage_holds)
    pairs, verdicts = witness_pairs(m1), set()
    for a, w, cc in states:
        a, w, cc = (np.asarray(v, dtype) for v in (a, w, cc))
        holds, pairs = watch(a, w, cc, pairs)
        expected = bool(exact(a, w, cc))
        assert bool(holds) == expected
        verdicts.add(expected)
        assert pairs.shape == (8, 2) and np.all((pairs >= 0) & (pairs < m1))
    assert verdicts == {True, False}
    one = witness_pairs(1)  # a single first-layer neuron: no pairs, the (0, 0) "pair"
    assert one.shape == (1, 2)
    holds, _ = watch(np.ones(2, dtype), np.ones((2, 1), dtype), np.ones(1, dtype), one)
    assert bool(holds)


def test_trainer_entry_is_the_per_step_gram_verdict_through_a_long_window():
    """The default example: the inner-product constraint holds ~1500 steps before
    the entry (the window where the Gram matrix used to be formed every step); the
    trainer's entry step is the first stored state that ``final_stage_holds``
    accepts, every step of the window stored."""
    from condensation import load_config, prepare, train

    cfg = load_config("configs/default.toml", [])
    data, spec, ens = prepare(cfg)
    steps = 7700
    snaps = np.r_[0, np.arange(5800, steps + 1)]
    r = train(
        ens.params, data.x, data.y, act=spec.activation.fn, lr=cfg.train.lr, steps=steps,
        snapshots=snaps,
    )  # fmt: skip
    b, w, a = (np.asarray(s[0]) for s in r.snapshots)
    inner = np.all(inner_product_margins(a[:, 0], w, b @ data.z, np) > 0, axis=-1)
    holds = final_stage_holds(a[:, 0], w, b @ data.z, xp=np)
    first_inner, entry = np.argmax(inner), np.argmax(holds)
    assert 0 < first_inner and entry - first_inner > 1000  # the window is stored whole
    assert r.final_stage_step[0] == snaps[entry]


@pytest.mark.slow
def test_final_stage_acceptance_20_random_initial_conditions():
    """Issue #4: 20 random ICs, widths 10-100, eps = 1e-3."""
    from condensation.experiments.final_stage_vs_plateau import _random_ics

    rng_z = np.random.default_rng(3)
    z = rng_z.standard_normal(5) * 0.4
    p = {
        "random_seed": 11,
        "random_width_min": 10,
        "random_width_max": 100,
        "random_ics": 20,
        "random_eps": 1e-3,
    }
    nets, _ = _random_ics(p, z)
    systems = [build_system(n, z, form="reduced") for n in nets]
    fracs = []
    for sol in solve_batch(systems):
        fs = final_stage_summary(sol.steps)
        assert fs["final_stage_entry_time"] < sol.T_star
        assert fs["final_stage_violations_after_entry"] == 0
        assert fs["min_abs_cos_final"] > 0.999
        fracs.append((sol.T_star - fs["final_stage_entry_time"]) / sol.T_star)
    assert max(fracs) < 0.05, fracs
