"""Optimizers in the compiled trainer: gd is plain GD, sgd(batch n) is gd, every
optimizer's first steps equal a plain numpy reference, mini-batch sampling is
without replacement, and bad settings are one-line errors (exit 2)."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from condensation import train
from condensation.training.optimizers import Optimizer, batch_indices

OVERRIDES = ["model.widths=[6, 5]", "init.seeds=[0, 1]", "init.scale=0.3", "data.n=24"]
STEPS = 12


def numpy_grad(params, x, y):
    """Gradient of 0.5 mean (f(x) - y)^2 of a tanh network, by hand (sample-major)."""
    hs = [x]
    for w in params[:-1]:
        hs.append(np.tanh(hs[-1] @ w.T))
    r = (hs[-1] @ params[-1].T)[:, 0] - y
    d = r[:, None] / x.shape[0]  # dR/d(output), (n, 1)
    grads = [None] * len(params)
    for k in range(len(params) - 1, -1, -1):
        grads[k] = d.T @ hs[k]
        if k:
            d = (d @ params[k]) * (1.0 - hs[k] ** 2)
    return grads


def numpy_reference(opt: Optimizer, params, x, y, lr, steps, stream):
    """Parameters after each of ``steps`` updates, written out from the formulas."""
    p = [np.array(w, dtype=float) for w in params]
    m = [np.zeros_like(w) for w in p]
    v = [np.zeros_like(w) for w in p]
    out = [[w.copy() for w in p]]
    for k in range(steps):
        if opt.minibatch:
            idx = np.asarray(batch_indices(opt, x.shape[0], stream, k))
            g = numpy_grad(p, x[idx], y[idx])
        else:
            g = numpy_grad(p, x, y)
        for i in range(len(p)):
            if opt.name in ("gd", "sgd"):
                p[i] = p[i] - lr * g[i]
            elif opt.name == "momentum":
                m[i] = g[i] + opt.momentum * m[i]
                step = g[i] + opt.momentum * m[i] if opt.nesterov else m[i]
                p[i] = p[i] - lr * step
            else:  # adam, bias-corrected
                m[i] = opt.b1 * m[i] + (1 - opt.b1) * g[i]
                v[i] = opt.b2 * v[i] + (1 - opt.b2) * g[i] ** 2
                mh, vh = m[i] / (1 - opt.b1 ** (k + 1)), v[i] / (1 - opt.b2 ** (k + 1))
                p[i] = p[i] - lr * mh / (np.sqrt(vh) + opt.adam_eps)
        out.append([w.copy() for w in p])
    return out


@pytest.mark.parametrize(
    "opt,lr,spread",
    [
        (Optimizer("gd"), 0.2, False),
        (Optimizer("sgd", batch_size=7, batch_seed=3), 0.2, False),  # 3 batches/epoch, 3 unused
        (Optimizer("momentum", momentum=0.8, nesterov=True, batch_size=12), 0.1, True),
        (Optimizer("adam", b1=0.8, b2=0.99, adam_eps=1e-6), 0.01, True),
    ],
    ids=["gd", "sgd", "nesterov-minibatch-spread", "adam-spread"],
)
def test_first_steps_match_numpy_reference(network_setup, monkeypatch, opt, lr, spread):
    """Both members (each with its own mini-batch stream; spread over two devices
    where marked) equal the formulas evaluated in numpy, to 1e-12, after 6 and 12
    steps (an error in any step would show in both).  Heavy-ball momentum: the
    divergence test below; sgd with b > 2n/3 (one weighted pass): sgd(b = n) vs gd."""
    if spread:
        from condensation.training import devices

        monkeypatch.setattr(devices, "SPREAD_MIN_FLOPS", 0.0)
    _, data, spec, ens = network_setup(OVERRIDES)
    r = train(
        ens.params,
        data.x,
        data.y,
        act=spec.activation.fn,
        lr=lr,
        steps=STEPS,
        snapshots=np.array([0, STEPS // 2, STEPS]),
        optimizer=opt,
        streams=[5, 9],
        track_final_stage=False,  # (compiles faster; tracking is tested below)
    )
    for i, stream in enumerate([5, 9]):
        ref = numpy_reference(opt, [w[i] for w in ens.params], data.x, data.y, lr, STEPS, stream)
        for j, k in enumerate((0, STEPS // 2, STEPS)):
            for layer in range(spec.depth):
                np.testing.assert_allclose(
                    r.snapshots[layer][i, j], ref[k][layer], rtol=0, atol=1e-12
                )
    moved = np.abs(r.snapshots[0][:, -1] - r.snapshots[0][:, 0]).max()
    assert moved > 1e-3  # the steps did something


def test_full_batch_sgd_equals_gd(network_setup):
    """sgd with batch_size = n (a fresh permutation of all samples every step)
    equals gd, the default, to 1e-12, with the same escape and final-stage steps.
    (gd itself: the numpy reference above, and the escape-step test of
    test_train.py against brute-force GD.)"""
    steps = 300
    _, data, spec, ens = network_setup(["model.widths=[8, 8]", "init.scale=0.05", "data.n=40"])
    kw = dict(act=spec.activation.fn, lr=0.2, steps=steps, snapshots=np.array([0, steps]))
    gd = train(ens.params, data.x, data.y, **kw)
    sgd = train(ens.params, data.x, data.y, optimizer=Optimizer("sgd", batch_size=40), **kw)
    assert 0 < gd.escape_step[0] < steps
    for field in ("escape_step", "final_stage_step", "diverged_step"):
        np.testing.assert_array_equal(getattr(sgd, field), getattr(gd, field))
    for a, b in zip(sgd.snapshots + sgd.escape_params, gd.snapshots + gd.escape_params):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-12)


def test_minibatches_are_drawn_without_replacement():
    """Within an epoch no sample repeats; n mod batch_size are left out; a new
    epoch is a new permutation; a new stream is a new order."""
    opt, n = Optimizer("sgd", batch_size=7), 30  # 4 batches of 7, 2 unused per epoch
    epoch = [np.asarray(batch_indices(opt, n, 0, k)) for k in range(4)]
    used = np.concatenate(epoch)
    assert used.size == 28 and np.unique(used).size == 28
    nxt = np.concatenate([np.asarray(batch_indices(opt, n, 0, k)) for k in range(4, 8)])
    assert np.unique(nxt).size == 28 and not np.array_equal(nxt, used)
    other = np.concatenate([np.asarray(batch_indices(opt, n, 1, k)) for k in range(4)])
    assert not np.array_equal(other, used)


def test_diverging_member_is_frozen_under_momentum(network_setup):
    """Divergence tracking is unchanged for a stateful optimizer: the diverging
    member is frozen at finite parameters, the other runs as the numpy reference."""
    _, data, spec, ens = network_setup(
        ["model.activation='linear'", "model.widths=[6, 6]", "init.scales=[0.01, 30.0]"]
    )
    opt, lr, steps = Optimizer("momentum"), 0.5, 100
    kw = dict(act=spec.activation.fn, lr=lr, steps=steps, snapshots=np.array([0, steps]))
    r = train(ens.params, data.x, data.y, optimizer=opt, track_final_stage=False, **kw)
    assert r.diverged_step[1] > 0 and r.diverged_step[0] == -1
    assert all(np.all(np.isfinite(w)) for w in r.snapshots)
    lin = [w[0] for w in ens.params]
    act_ref = numpy_reference_linear(opt, lin, data.x, data.y, lr, steps)
    for layer in range(spec.depth):
        np.testing.assert_allclose(r.snapshots[layer][0, -1], act_ref[layer], rtol=0, atol=1e-12)


def numpy_reference_linear(opt, params, x, y, lr, steps):
    """Heavy-ball momentum on a linear network (numpy)."""
    p = [np.array(w, dtype=float) for w in params]
    m = [np.zeros_like(w) for w in p]
    for _ in range(steps):
        hs = [x]
        for w in p[:-1]:
            hs.append(hs[-1] @ w.T)
        d = ((hs[-1] @ p[-1].T)[:, 0] - y)[:, None] / x.shape[0]
        g = [None] * len(p)
        for k in range(len(p) - 1, -1, -1):
            g[k] = d.T @ hs[k]
            d = d @ p[k]
        for i in range(len(p)):
            m[i] = g[i] + opt.momentum * m[i]
            p[i] = p[i] - lr * m[i]
    return p


BAD = [
    (["train.optimizer='lbfgs'"], "train.optimizer"),
    (["train.optimizer='sgd'", "train.batch_size=0"], "train.batch_size"),
    (["train.optimizer='sgd'", "train.batch_size=-3"], "train.batch_size"),
    (["train.optimizer='sgd'", "train.batch_size=101"], "train.batch_size"),
    (["train.batch_size=10"], "train.batch_size"),  # gd is full batch
    (["train.b1=0.5"], "train.b1"),  # an Adam setting on gd
    (["train.optimizer='sgd'", "train.momentum=0.9"], "train.momentum"),
    (["train.optimizer='momentum'", "train.momentum=-0.1"], "train.momentum"),
    (["train.optimizer='adam'", "train.b2=1.0"], "train.b2"),
    (["train.optimizer='adam'", "train.adam_eps=0.0"], "train.adam_eps"),
]


@pytest.mark.parametrize("overrides,field", BAD)
def test_bad_optimizer_settings_exit_2(tmp_path, cli_main, overrides, field):
    out = tmp_path / "run"
    args = [a for o in overrides for a in ("--set", o)]
    code, err = cli_main("train", *args, "--out", str(out))
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert code == 2 and len(lines) == 1, err
    assert field in lines[0] and "fix:" in lines[0]
    assert list(tmp_path.iterdir()) == []


def test_batch_size_above_n_of_a_data_file_exit_2(tmp_path, cli_main, rng):
    path = tmp_path / "d.npz"
    np.savez(path, x=rng.standard_normal((10, 3)), y=rng.standard_normal(10))
    out = tmp_path / "run"
    sets = [f"data.path='{path}'", "train.optimizer='adam'", "train.batch_size=11"]
    code, err = cli_main("train", *[a for s in sets for a in ("--set", s)], "--out", str(out))
    assert code == 2 and "train.batch_size" in err and "n = 10" in err, err
    assert not out.exists()


def test_readme_sgd_command_records_the_optimizer(tmp_path, cli_main):
    """The README's sgd command (shortened), through the CLI: summary.json records
    the optimizer, its settings and what the effective prediction is for it."""
    out = tmp_path / "sgd"
    args = ["train", "configs/default.toml", "--set", "train.optimizer=sgd"]
    args += ["--set", "train.batch_size=25", "--set", "train.batch_seed=7"]
    args += ["--set", "train.steps=30", "--set", "model.widths=[6, 5]", "--out", str(out)]
    code, err = cli_main(*args)
    assert code == 0, err
    o = json.loads((out / "summary.json").read_text())["optimizer"]
    assert (o["name"], o["batch_size"], o["batch_seed"]) == ("sgd", 25, 7)
    assert o["loss_measured_on"] == "full batch" and "b1" not in o
    assert o["effective_prediction"].startswith("averaged")


def test_optimizer_module_is_one_transform_per_name():
    """Each name builds an optax transformation; gd's has no state."""
    p = (jnp.ones(3),)
    for name in ("gd", "sgd", "momentum", "adam"):
        opt = Optimizer(name, batch_size=4 if name == "sgd" else None)
        tx = opt.transform(0.1)
        assert isinstance(tx, optax.GradientTransformation)
        leaves = jax.tree.leaves(tx.init(p))
        assert (len(leaves) == 0) == (name in ("gd", "sgd"))


@pytest.mark.slow  # about 10 s of compilation (one program per optimizer)
def test_optimizers_experiment_quick(tmp_path):
    """The quick variant: gd keeps the 1/eps law, sgd at batch n/4 escapes when gd
    does (its noise averages out), Adam has no 1/eps plateau; figures written."""
    from condensation.experiments import get

    exp = get("optimizers")
    h = exp.run(exp.params(quick=True), tmp_path, lambda *a: None)
    assert h["optimizers.gd_n_not_escaped"] == 0 and h["optimizers.adam_n_not_escaped"] == 0
    assert -1.2 < h["optimizers.gd_slope"] < -0.8
    assert h["optimizers.sgd_b16_max_rel_diff_to_gd"] < 0.05
    assert h["optimizers.adam_slope"] > -0.5
    assert h["optimizers.gd_median_abs_cos_at_escape"] > 0.9
    for f in exp.figures:
        assert (tmp_path / f.file).stat().st_size > 1000


@pytest.mark.parametrize(
    "name,prefix,reach",
    [("gd", "gd", "theorem"), ("sgd", "trained", "averaged"), ("adam", "trained", "not a theorem")],
)
def test_effective_comparison_is_labelled(name, prefix, reach):
    """effective --compare-gd names a non-GD run's keys trained_* and says what the
    effective prediction is for its optimizer (a theorem only for gd)."""
    from condensation import load_config, load_dataset
    from condensation.commands.effective import trained_label
    from condensation.commands.train import optimizer_of, optimizer_summary

    cfg = load_config(None, [f"train.optimizer='{name}'"])
    data = load_dataset(cfg.data)
    assert trained_label(cfg, data) == prefix
    block = optimizer_summary(optimizer_of(cfg, data))
    assert block["name"] == name and block["effective_prediction"].split(":")[0] == reach


@pytest.mark.slow
def test_optimizers_experiment_default_acceptance(tmp_path):
    """Default run, eps in [1e-4, 1e-2]: gd and every sgd batch size keep the 1/eps
    law (slope within 5 % of -1) and escape within 5 % of gd; Adam has no 1/eps
    plateau; every optimizer is condensed at its escape (median |cos| > 0.9)."""
    from condensation.experiments import get

    exp = get("optimizers")
    h = exp.run(exp.params(), tmp_path, lambda *a: None)
    for lab in ("gd", "sgd_b64", "sgd_b16", "sgd_b4"):
        assert -1.05 <= h[f"optimizers.{lab}_slope"] <= -0.95
        assert h[f"optimizers.{lab}_n_not_escaped"] == 0
    for lab in ("sgd_b64", "sgd_b16", "sgd_b4"):
        assert h[f"optimizers.{lab}_max_rel_diff_to_gd"] < 0.05
    assert h["optimizers.adam_slope"] > -0.5
    for lab in ("gd", "sgd_b4", "momentum", "adam"):
        assert h[f"optimizers.{lab}_median_abs_cos_at_escape"] > 0.9
