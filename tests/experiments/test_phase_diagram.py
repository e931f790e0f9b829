"""Training to a tolerance with an init-scaled lr, and the phase-diagram experiment."""

import csv
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from condensation import experiments as X
from condensation.core.activations import ACTIVATIONS
from condensation.core.network import loss
from condensation.training.tolerance import _forward_backward, train_to_tolerance

X3 = np.array([[-1.0, 1.0], [0.0, 1.0], [1.0, 1.0]])  # three 1-D points with a bias input
Y3 = np.array([-0.5, 0.0, 0.5])


def _net(rng, m, depth, scale):
    dims = [2, *([m] * (depth - 1)), 1]
    return [scale * rng.standard_normal((dims[k + 1], dims[k])) for k in range(depth)]


@pytest.mark.parametrize("act, depth", [("tanh", 3), ("relu", 2)])
def test_forward_backward_is_autodiff_and_the_tangent_kernel(rng, act, depth):
    # one pass gives the loss gradient (== jax.grad) and the per-sample Jacobian factors
    fn, kappa = ACTIVATIONS[act].fn, 0.7
    p = tuple(jnp.asarray(w) for w in _net(rng, 5, depth, 0.6))
    f, hs, ds = _forward_backward(p, jnp.asarray(X3), fn, kappa)
    r = (f - Y3) / 3
    ours = [(d * r) @ h.T for d, h in zip(ds, hs)]
    ref = jax.grad(lambda q: loss((*q[:-1], kappa * q[-1]), X3, Y3, fn))(p)
    for a, b in zip(ours, ref):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15)
    jac = jax.jacrev(lambda q: _forward_backward(q, jnp.asarray(X3), fn, kappa)[0])(p)
    flat = np.concatenate([np.asarray(j).reshape(3, -1) for j in jac], axis=1)
    gram = sum((d.T @ d) * (h.T @ h) for d, h in zip(ds, hs))
    np.testing.assert_allclose(gram, flat @ flat.T, rtol=1e-12, atol=1e-15)


def test_stops_are_reported_and_padding_is_exact(rng):
    tanh = ACTIVATIONS["tanh"].fn
    small = _net(rng, 6, 2, 0.3)
    padded = [np.zeros((10, 2)), np.zeros((1, 10))]
    padded[0][:6], padded[1][:, :6] = small[0], small[1]
    tiny = [w * 1e-6 for w in small]
    params = [np.stack([a, b, c]) for a, b, c in zip(_pad(small, 10), padded, _pad(tiny, 10))]
    r = train_to_tolerance(params, X3, Y3, act=tanh, tol=1e-4, max_steps=400)
    assert r.stop[0] == "tolerance" and r.loss_ratio[0] <= 1e-4
    # zero neurons stay zero: the padded copy is the same run
    np.testing.assert_allclose(r.rd_end[1], r.rd_end[0], rtol=1e-12)
    assert r.steps[1] == r.steps[0]
    np.testing.assert_array_equal(r.params[0][1][6:], 0.0)
    assert r.stop[2] in ("plateau", "tolerance")
    r2 = train_to_tolerance(params, X3, Y3, act=tanh, tol=1e-4, max_steps=3)
    assert r2.stop[0] == "budget" and r2.stop[2] == "plateau" and np.all(r2.steps == 3)
    assert np.all(r.rd_max >= r.rd_end - 1e-15)


def _pad(ws, m):
    out = [np.zeros((m, 2)), np.zeros((1, m))]
    out[0][: ws[0].shape[0]], out[1][:, : ws[1].shape[1]] = ws[0], ws[1]
    return out


def test_reproduce_uses_the_reduced_grid():
    exp = X.get("phase-diagram")
    full, red, quick = exp.params(), exp.params(reproduce=True), exp.params(quick=True)
    assert len(full["gammas"]) * len(full["gamma_primes"]) >= 25
    assert red["gammas"] == exp.reproduce["gammas"] and quick["gammas"] == exp.quick["gammas"]
    assert exp.params(quick=True, reproduce=True) == quick
    other = X.get("escape-scaling")  # without REPRODUCE nothing changes
    assert other.params(reproduce=True) == other.params()


def test_phase_diagram_quick_writes_the_table(tmp_path, cli_main):
    out = tmp_path / "pd"
    code, err = cli_main("run", "phase-diagram", "--quick", "--out", str(out))
    assert code == 0, err
    with open(out / "arrays" / "phase_diagram.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 4
    for col in ("gamma", "gamma_prime", "width_min", "width_max", "rd_slope_layer1",
                "regime_layer1", "rd_slope_layer2", "regime_layer2", "theory_regime"):  # fmt: skip
        assert col in rows[0]
    by = {(float(r["gamma"]), float(r["gamma_prime"])): r for r in rows}
    assert by[(0.5, 0.5)]["regime_layer1"] == "linear"  # far from the boundaries
    assert by[(1.5, -0.5)]["regime_layer1"] == "condensed"
    h = json.loads((out / "summary.json").read_text())["headline"]
    assert h["phase_diagram.n_cells"] == 4
    assert (out / "figures" / "phase_diagram.png").is_file()


@pytest.mark.parametrize(
    "item, field",
    [("depth=4", "depth"), ("widths=[20, 20]", "widths"), ("layer_axes=[1, 1]", "layer_axes"),
     ("widths=[21, 80]", "widths"), ("tol=2.0", "tol")],
)  # fmt: skip
def test_bad_phase_diagram_parameters_exit_2(tmp_path, cli_main, item, field):
    out = tmp_path / "x"
    code, err = cli_main("run", "phase-diagram", "--quick", "--set", item, "--out", str(out))
    assert code == 2 and field in err and len(err.strip().splitlines()) == 1, err
    assert not out.exists()


def test_a_grid_too_wide_for_memory_is_refused_up_front(cli_main, tmp_path):
    # width 1e7 (Luo et al.'s 1-d setting, 3 seeds, 2 workers): tens of GB of cells
    out = tmp_path / "pd"
    code, err = cli_main(
        "run", "phase-diagram", "--quick", "--set", "widths=[1000, 10000000]",
        "--set", "seeds=[0, 1, 2]", "--set", "workers=2", "--out", str(out),
    )  # fmt: skip
    assert code == 2, err
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and "widths" in lines[0] and "GiB" in lines[0], err
    assert not out.exists()
