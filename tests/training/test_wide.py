"""Wide networks (issue 12 item 3): bounded snapshot storage and vectorised metrics.

Invariants: the vectorised metrics equal the per-snapshot loop they replaced; a
bounded run equals a full run on every quantity it keeps; ``train.save = "full"``
round-trips through ``load_run``; a thinned run resumes bit-identically.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.spatial.distance import squareform

from condensation import load_run
from condensation.commands import train as runs_train
from condensation.core import metrics as M
from condensation.core import snapshots

SMALL = ["model.widths=[3, 12]", "train.steps=80", "train.snapshots=6", "train.linear_snapshots=8"]


def _sets(items):
    return [a for s in items for a in ("--set", s)]


# ---- the per-snapshot loop this replaced, kept here as the reference ---------------
def _old_count_clusters(rows, threshold=M.ALIGNED, cover=M.COVER):
    m = rows.shape[0]
    if m == 1:
        return 1
    dist = 1.0 - np.abs(M.cosine_matrix(rows))
    np.fill_diagonal(dist, 0.0)
    dist = np.maximum((dist + dist.T) / 2, 0.0)
    labels = fcluster(
        linkage(squareform(dist, checks=False), "complete"), 1 - threshold, "distance"
    )
    sizes = np.sort(np.bincount(labels))[::-1]
    return int(np.searchsorted(np.cumsum(sizes), cover * m - 1e-9) + 1)


def _old_sigma_ratio(w):
    w = np.asarray(w, dtype=float)
    if not np.all(np.isfinite(w)):
        return float("nan")
    s = np.linalg.svd(w, compute_uv=False)
    return float(s[1] / s[0]) if s.size > 1 and s[0] > 0 else 0.0


def _stack(rng, e, k, m, d, groups):
    """(E, K, m, d): snapshots that condense from random rows onto ``groups`` lines."""
    centres = rng.normal(size=(groups, d))
    sign = rng.choice([-1.0, 1.0], size=(m, 1))
    target = sign * centres[np.arange(m) % groups]
    out = np.empty((e, k, m, d))
    for j, a in enumerate(np.linspace(0, 1, k)):
        out[:, j] = (1 - a) * rng.normal(size=(e, m, d)) + a * target
    return out


def test_vectorised_metrics_equal_the_old_loop():
    rng = np.random.default_rng(0)
    b = _stack(rng, 2, 7, 15, 4, groups=3)
    b[1, 2] *= 1e150  # extreme rows are rescaled, not overflowed
    w = _stack(rng, 2, 7, 9, 15, groups=1)
    w[0, 3, 0, 0] = np.nan  # a non-finite W2 gives NaN
    a = rng.normal(size=(2, 7, 1, 9))
    z = rng.normal(size=4)
    met = M.snapshot_metrics([b, w, a], z)
    old_clusters = [[_old_count_clusters(b[i, j]) for j in range(7)] for i in range(2)]
    np.testing.assert_array_equal(met["n_clusters"], old_clusters)
    assert len(set(met["n_clusters"].ravel())) > 2  # from ~0.9 m down to a few clusters
    old_sigma = [[_old_sigma_ratio(w[i, j]) for j in range(7)] for i in range(2)]
    np.testing.assert_allclose(met["w_sigma_ratio"], old_sigma, rtol=1e-12, atol=0)
    assert np.isnan(met["w_sigma_ratio"][0, 3])
    cos = np.array([[M.abs_cos_to(b[i, j], z) for j in range(7)] for i in range(2)])
    np.testing.assert_array_equal(met["median_abs_cos"], np.median(cos, axis=-1))
    np.testing.assert_array_equal(met["frac_abs_cos_above_0_95"], np.mean(cos > 0.95, axis=-1))
    norms = [[[np.linalg.norm(x[i, j]) for x in (b, w, a)] for j in range(7)] for i in range(2)]
    np.testing.assert_allclose(met["layer_norms"], norms, rtol=1e-14)
    # one snapshot at a time gives the same numbers as the whole stack
    one = M.snapshot_metrics([x[:, 4] for x in (b, w, a)], z)
    for name in ("median_abs_cos", "n_clusters", "w_sigma_ratio"):
        np.testing.assert_array_equal(one[name], met[name][:, 4])


def test_gram_sigma_ratio_and_leading_eigenvector_match_the_full_decompositions(monkeypatch):
    monkeypatch.setattr(M, "GRAM_MIN_SIZE", 24)  # the wide-matrix branch at a small size
    rng = np.random.default_rng(1)
    m = M.GRAM_MIN_SIZE + 16
    u, v = rng.normal(size=(m, 1)), rng.normal(size=(1, m - 7))
    mats = np.stack([rng.normal(size=(m, m - 7)), u @ v + 1e-3 * rng.normal(size=(m, m - 7))])
    np.testing.assert_allclose(
        M.sigma_ratios(mats), [_old_sigma_ratio(x) for x in mats], rtol=0, atol=1e-12
    )
    wide = np.swapaxes(mats, 1, 2)  # more columns than rows
    np.testing.assert_allclose(M.sigma_ratios(wide), M.sigma_ratios(mats), rtol=0, atol=1e-12)
    assert M.sigma_ratios(np.stack([u @ v, 0 * u @ v])) == pytest.approx([0, 0], abs=1e-7)
    assert M.sigma_ratios(mats)[1] < 0.05  # near rank one: a small ratio, still accurate
    rows = np.repeat(rng.normal(size=(2, 3)), m // 2, axis=0) + 0.05 * rng.normal(size=(m, 3))
    cos = M.cosine_matrix(rows)
    full = np.argsort(np.linalg.eigh(cos)[1][:, -1], kind="stable")
    got = M.eigen_order(cos)
    assert np.array_equal(got, full) or np.array_equal(got, full[::-1])  # up to the sign


def test_kept_indices_fit_the_budget_and_keep_first_and_last():
    k = 254  # the default 12000 steps give 254 snapshots
    assert snapshots.kept_indices("full", k, [1e9, 1e9]) == [None, None]
    assert snapshots.kept_indices("bounded", k, [1e3, 1e4, 1e3]) == [None, None, None]
    # width 1000, d_in 5, one member, float64: W1 40 kB, W2 8 MB, W3 8 kB per snapshot
    sizes = snapshots.network_layer_bytes(5, [1000, 1000], 1, 8)
    kept = snapshots.kept_indices("bounded", k, sizes)
    assert kept[0] is None and kept[2] is None and kept[1] is not None
    assert kept[1][0] == 0 and kept[1][-1] == k - 1 and np.all(np.diff(kept[1]) > 0)
    assert snapshots.stored_bytes(k, sizes, kept) <= snapshots.BUDGET_BYTES
    assert snapshots.stored_bytes(k, sizes, [None] * 3) > 2e9  # "full": 2 GB
    # a layer too big for even two snapshots still keeps the first and the last
    huge = snapshots.kept_indices("bounded", k, [1e12])
    assert list(huge[0]) == [0, k - 1]
    with pytest.raises(ValueError):
        snapshots.kept_indices("some", k, sizes)


@pytest.fixture
def thin(monkeypatch):
    """A budget small enough that W2 of the SMALL network is thinned (W1 and W3 kept),
    and n_clusters computed at a few snapshots only."""
    monkeypatch.setattr(snapshots, "BUDGET_BYTES", 5000)
    monkeypatch.setattr(runs_train, "CLUSTER_BUDGET", 5 * 3**2)  # m1 = 3: 5 snapshots


def test_bounded_equals_full_on_what_it_keeps_full_round_trips_thinned_resumes(
    tmp_path, cli_main, monkeypatch, thin
):
    from condensation.config.network import load_config
    from condensation.models import NetworkSpec, init_ensemble
    from condensation.store.checkpoint import Checkpoint

    full, bounded = tmp_path / "full", tmp_path / "bounded"
    assert cli_main("train", *_sets([*SMALL, "train.save='full'"]), "--out", str(full))[0] == 0
    assert cli_main("train", *_sets(SMALL), "--out", str(bounded))[0] == 0
    f, b = load_run(full), load_run(bounded)
    assert f.summary["save"] == "full" and b.summary["save"] == "bounded"
    fs, bs = f.arrays["snapshots"], b.arrays["snapshots"]
    steps = fs["steps"]
    e, k = len(f.summary["members"]), steps.size

    # full: every layer at every snapshot, as README documents; the stored states are
    # the ones the loop measured (layer norms) and start at the initial ensemble
    cfg = load_config(None, SMALL)
    init = init_ensemble(cfg, NetworkSpec.from_config(cfg.model, f.summary["d_in"])).params
    norms = f.arrays["metrics"]["layer_norms"]
    assert f.summary["stored_snapshots"] == [k, k, k]
    for i in range(3):
        w = fs[f"W{i + 1}"]
        assert w.shape == (e, k, *np.shape(init[i])[1:])
        np.testing.assert_array_equal(fs[f"W{i + 1}_steps"], steps)
        np.testing.assert_array_equal(w[:, 0], init[i])
        np.testing.assert_allclose(np.linalg.norm(w, axis=(-2, -1)), norms[..., i], rtol=1e-14)

    # bounded: the same run, W2 stored at fewer steps (always the first and the last)
    n1, n2, n3 = b.summary["stored_snapshots"]
    assert n1 == k and n3 == k and 2 <= n2 < k  # only the 12 x 3 layer thinned
    for key in ("members", "z", "n", "depth"):
        assert f.summary[key] == b.summary[key]
    for name in ("steps", "times", "loss", "W1", "W3", "W1_steps", "W3_steps"):
        np.testing.assert_array_equal(fs[name], bs[name])
    at = np.searchsorted(steps, bs["W2_steps"])
    assert at[0] == 0 and at[-1] == k - 1
    np.testing.assert_array_equal(bs["W2"], fs["W2"][:, at])
    fm, bm = f.arrays["metrics"], b.arrays["metrics"]
    for name in ("times", "median_abs_cos", "frac_abs_cos_above_0_95", "layer_norms"):
        np.testing.assert_array_equal(fm[name], bm[name])
    for name, count in (("w_sigma_ratio", n2), ("n_clusters", 5)):
        have = ~np.isnan(bm[name])
        assert have.sum() == count and have[:, 0].all() and have[:, -1].all()
        np.testing.assert_array_equal(bm[name][have], fm[name][have])
    assert not np.isnan(fm["n_clusters"]).any() and not np.isnan(fm["w_sigma_ratio"]).any()
    assert (bounded / "figures" / "cosine_heatmaps.png").is_file()

    # a thinned run interrupted midway resumes bit-identical to the uninterrupted one
    # (the snapshots a layer does not keep go through the checkpoint as placeholders)
    monkeypatch.setenv("CONDENSATION_CHECKPOINT_EVERY", "0")

    def stop_midway(done):
        if done >= 30:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        runs_train.run_training(cfg, stop_midway, Checkpoint(tmp_path / "ck", "key"))
    again = runs_train.run_training(cfg, None, Checkpoint(tmp_path / "ck", "key", resume=True))
    ref = runs_train.run_training(cfg).result
    res = again.result
    assert res.snapshot_index[1] is not None and len(res.snapshot_index[1]) == n2
    for i in range(3):
        np.testing.assert_array_equal(res.snapshots[i], ref.snapshots[i])
        np.testing.assert_array_equal(res.layer_steps(i), ref.layer_steps(i))
    for name in ref.measures:
        np.testing.assert_array_equal(res.measures[name], ref.measures[name])
    np.testing.assert_array_equal(res.snapshot_loss, ref.snapshot_loss)
    np.testing.assert_array_equal(res.escape_step, ref.escape_step)


def test_bad_save_value_is_one_line_exit_2(tmp_path, cli_main):
    code, err = cli_main("train", "--set", "train.save=everything", "--out", str(tmp_path / "x"))
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 2 and len(lines) == 1, err
    assert "train.save" in lines[0] and "everything" in lines[0] and '"full"' in lines[0]
    assert not (tmp_path / "x").exists()
