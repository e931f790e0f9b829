import numpy as np
import pytest

from condensation.core.metrics import (
    abs_cos_to,
    cosine_matrix,
    count_clusters,
    eigen_order,
    row_order,
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


@pytest.mark.parametrize("m, d", [(300, 3), (40, 5), (4, 6), (1, 2)])
def test_row_order_is_eigen_order_of_the_cosine_matrix(rng, m, d):
    """The SVD of the unit rows gives the leading eigenvector of their cosine
    matrix: the same order up to its direction, also with zero and huge rows."""
    centres = rng.standard_normal((3, d))
    rows = centres[rng.integers(0, 3, m)] + 0.05 * rng.standard_normal((m, d))
    rows *= rng.choice([1e-300, 1.0, 1e300], size=(m, 1))
    rows[rng.random(m) < 0.1] = 0.0
    vec = np.linalg.eigh(np.nan_to_num(cosine_matrix(rows)))[1][:, -1]
    steps = np.diff(vec[row_order(rows)])
    assert np.all(steps >= -1e-9) or np.all(steps <= 1e-9)  # sorted, up to the sign
