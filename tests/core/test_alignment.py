"""One |cos(b_j, z)| and one final-stage condition (issue 21, item 4): the core's
functions against direct computations, and a source scan that no other module
writes either formula itself."""

import pathlib
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from condensation.core import alignment
from condensation.core.final_stage import final_stage_counts, final_stage_holds
from condensation.core.metrics import abs_cos_to as metrics_abs_cos_to

SRC = pathlib.Path(__file__).resolve().parents[2] / "src" / "condensation"


@pytest.mark.parametrize("xp", [np, jnp])
def test_abs_cos_closed_form_zero_rows_and_zero_z(xp):
    z = np.array([3.0, 4.0, 0.0])  # |z| = 5
    rows = np.array(
        [
            [3.0, 4.0, 0.0],  # parallel: 1
            [-6.0, -8.0, 0.0],  # antiparallel: |cos| = 1
            [4.0, -3.0, 0.0],  # orthogonal: 0
            [0.0, 0.0, 0.0],  # zero row: 0, not nan
            [1.0, 0.0, 0.0],  # 3 / 5
            [0.0, 1.0, 1.0],  # 4 / (5 sqrt 2)
        ]
    )
    want = np.array([1.0, 1.0, 0.0, 0.0, 0.6, 4.0 / (5.0 * np.sqrt(2.0))])
    got = np.asarray(alignment.abs_cos_to(xp.asarray(rows), xp.asarray(z), xp))
    np.testing.assert_allclose(got, want, rtol=1e-15, atol=1e-15)
    zero = np.asarray(alignment.abs_cos_to(xp.asarray(rows), xp.zeros(3), xp))
    assert np.array_equal(zero, np.zeros(6))  # zero z: all 0, no nan
    # the reduced coordinates (c, |z|^2, |b_perp|^2) give the same numbers
    c = rows @ z
    bperp2 = np.sum((rows - np.outer(c, z) / (z @ z)) ** 2, axis=1)
    red = np.asarray(alignment.abs_cos_reduced(xp.asarray(c), float(z @ z), xp.asarray(bperp2), xp))
    np.testing.assert_allclose(red, want, rtol=1e-14, atol=1e-15)


def test_abs_cos_random_against_numpy_and_jit():
    rng = np.random.default_rng(0)
    rows, z = rng.standard_normal((4, 7, 5)), rng.standard_normal(5)
    direct = np.abs(np.einsum("...i,i->...", rows, z)) / (
        np.sqrt(np.sum(rows**2, axis=-1)) * np.sqrt(z @ z)
    )
    np.testing.assert_allclose(alignment.abs_cos_to(rows, z, np), direct, rtol=1e-14)
    np.testing.assert_allclose(metrics_abs_cos_to(rows, z), direct, rtol=1e-14)
    traced = jax.jit(jax.vmap(lambda r: alignment.abs_cos_to(r, jnp.asarray(z))))(rows)
    np.testing.assert_allclose(np.asarray(traced), direct, rtol=1e-14)
    med = jax.jit(alignment.median_abs_cos)(rows[0], z)
    np.testing.assert_allclose(float(med), np.median(direct[0]), rtol=1e-14)


def _brute(a, w, c):
    """The two constraints of THEORY §5 by explicit loops."""
    m2, m1 = w.shape
    s = [np.sign(cj) for cj in c]
    inner = 0
    for j in range(m1):
        v = sum(w[i, j] * a[i] for i in range(m2))
        inner += s[j] * v <= 0
    pairs = 0
    for i in range(m1):
        for j in range(i + 1, m1):
            g = sum(w[k, i] * w[k, j] for k in range(m2))
            pairs += s[i] * s[j] * g < 0
    return inner, pairs


def test_final_stage_against_brute_force():
    rng = np.random.default_rng(1)
    holds_jit = jax.jit(final_stage_holds)
    seen = set()
    states = []
    for trial in range(60):
        m2, m1 = rng.integers(1, 4), rng.integers(1, 5)
        a = rng.standard_normal(m2)
        # near-final-stage states often (aligned columns), so "holds" occurs too
        u = rng.standard_normal(m2)
        c = rng.standard_normal(m1)
        spread = [0.05, 0.5, 2.0][trial % 3]
        w = np.sign(c) * (u[:, None] + spread * rng.standard_normal((m2, m1)))
        a = u if trial % 2 else a
        states.append((a, w, c))
        want = _brute(a, w, c)
        for xp in (np, jnp):
            n_in, n_pairs = final_stage_counts(a, w, c, xp=xp)
            assert (int(n_in), int(n_pairs)) == want
            assert bool(final_stage_holds(a, w, c, xp=xp)) == (want == (0, 0))
        assert bool(holds_jit(a, w, c)) == (want == (0, 0))
        seen.add(want == (0, 0))
    assert seen == {True, False}
    # numpy, stacked over a leading axis: the same verdicts state by state
    same = [s for s in states if s[1].shape == (2, 3)]
    stacked = final_stage_holds(*(np.stack(x) for x in zip(*same)), xp=np)
    assert list(stacked) == [_brute(*s) == (0, 0) for s in same]


# what a module writes when it computes |cos| to z itself: |<., z>| over a product
# of norms, or an inline final-stage inequality on sign(c) times W^T a / W^T W
_OWN = {
    "core/alignment.py": re.compile(
        r"abs\([^)]*@\s*z\w*\)\s*/|abs\(c\)\s*/"
        r"|norm\([^)]*\)\s*\*\s*\w*\.?linalg\.norm\(z"
    ),
    "core/final_stage.py": re.compile(
        r"sign\(c\)\s*\*|\(w\.T\s*@\s*(a|w)\)\s*<|einsum\(\"tij,ti->tj\""
    ),
}
# the functions only the owner (and metrics' numpy wrapper of abs_cos_to) defines
_NAMES = {
    "core/alignment.py": re.compile(r"def (abs_cos\w*|median_abs_cos)\("),
    "core/final_stage.py": re.compile(
        r"def (final_stage_(holds|counts|np)|inner_product_margins|angle_matrix)\("
    ),
}


def offenders(src: pathlib.Path, owner: str) -> list[str]:
    """Lines of modules under ``src`` other than ``owner`` that write its formula."""
    out = []
    for path in sorted(src.rglob("*.py")):
        rel = path.relative_to(src).as_posix()
        if rel == owner:
            continue
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if _OWN[owner].search(line.split("#")[0]):
                out.append(f"{rel}:{n}: {line.strip()}")
    return out


@pytest.mark.parametrize("owner", sorted(_OWN))
def test_one_implementation_in_the_source(owner):
    # the scan sees the formula where it lives (so it could see a copy elsewhere) ...
    assert _OWN[owner].search((SRC / owner).read_text()), f"the scan misses {owner}"
    # ... and nowhere else
    assert offenders(SRC, owner) == []
    defs = {
        p.relative_to(SRC).as_posix()
        for p in SRC.rglob("*.py")
        if _NAMES[owner].search(p.read_text())
    }
    allowed = {owner, "core/metrics.py"} if owner == "core/alignment.py" else {owner}
    assert defs <= allowed, defs
