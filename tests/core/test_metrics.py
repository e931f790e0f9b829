import numpy as np

from condensation.core.metrics import (
    abs_cos_to,
    cosine_matrix,
    count_clusters,
    eigen_order,
    sigma_ratio,
)


def test_count_clusters_sees_two_orientations(rng):
    u, v = np.eye(4)[0], np.eye(4)[1]
    rows = np.concatenate(
        [
            np.outer(rng.choice([-1, 1], 20), u),  # +-u is one orientation
            np.outer(rng.uniform(0.5, 2, 15), v),
        ]
    ) + 0.01 * rng.standard_normal((35, 4))
    assert count_clusters(rows) == 2
    assert count_clusters(rng.standard_normal((40, 6))) > 2


def test_sigma_ratio_and_cosines(rng):
    a, b = rng.standard_normal(5), rng.standard_normal(4)
    assert sigma_ratio(np.outer(a, b)) < 1e-12
    assert sigma_ratio(np.eye(3)) == 1.0
    z = rng.standard_normal(4)
    rows = np.stack([2 * z, -3 * z, np.array([z[1], -z[0], 0, 0])])
    np.testing.assert_allclose(abs_cos_to(rows, z)[:2], 1.0)


def test_eigen_order_groups_blocks(rng):
    u = rng.standard_normal(3)
    rows = np.concatenate([np.tile(u, (4, 1)), np.tile(-u, (4, 1))])[rng.permutation(8)]
    c = cosine_matrix(rows)
    o = eigen_order(c)
    signs = np.sign(rows[o] @ u)
    assert np.count_nonzero(np.diff(signs)) == 1  # one switch: two contiguous blocks
