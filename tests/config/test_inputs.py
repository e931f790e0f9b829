"""The validation layer: every bad file, number, seed or size is one InputError naming
the field, before compute; property-based over configs and files; the fuzz corpus."""

import io
import os
import tempfile
from pathlib import Path

import fuzz_corpus
import numpy as np
import pytest
from helpers import toml_literal
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from condensation import InputError, load_config, load_dataset
from condensation.commands.train import prepare
from condensation.config import checks as inputs
from condensation.config.matrix import ProblemConfig
from condensation.matrix import load_matrix_config
from condensation.matrix.problems import load_problem
from condensation.models import NetworkSpec, load_params


def _one_line(e: InputError, field: str) -> None:
    text = str(e)
    assert text.startswith(field) and "fix:" in text and "\n" not in text, text


# ---- files ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "name,problem",
    [
        ("empty.npz", "holds no arrays"),
        ("zero.npz", "not a readable .npz"),
        ("garbage.npz", "not a readable .npz"),
        ("truncated.npz", "npz"),
        ("renamed.npz", "a single .npy array"),
        ("object.npz", "object arrays"),
        ("complex.npz", "complex"),
        ("strings.npz", "not an array of numbers"),
        ("nan.npz", "x[0, 0] = nan': 1 of x's entries are non-finite"),
        ("huge.npz", "above 1e+100 in magnitude"),
        ("d0.npz", "d = 0"),
        ("n0.npz", "no samples"),
        ("x3d.npz", "shape"),
        ("pickle-inside.npz", "npz"),
        ("text.csv", "row 2, column 2: 'five' is not a number"),
        ("empty-field.csv", "row 2, column 2: an empty field"),
        ("ragged.csv", "row 2 has 2 columns, the first data row has 3"),
        ("semicolon.csv", "separate columns with commas"),
        ("binary.csv", "not UTF-8"),
        ("latin1.csv", "not UTF-8"),
        ("nul.csv", "binary data"),
        ("blank.csv", "no data rows"),
        ("header-only.csv", "no data rows"),
        ("one-column.csv", "1 column"),
        ("huge.csv", "above 1e+100"),
        ("inf.csv", "non-finite"),
        ("data.txt", "unknown file type"),
    ],
)
def test_bad_data_file_is_one_line(tmp_path, name, problem):
    p = tmp_path / name
    fuzz_corpus._write(p, fuzz_corpus.BAD_FILES[name])
    with pytest.raises(InputError) as e:
        load_dataset(load_config(None, [f"data.path='{p}'"]).data)
    _one_line(e.value, "data.path")
    assert problem in str(e.value)


def test_npz_is_never_unpickled(tmp_path):
    """An object array in an .npz is refused without running its pickle."""

    class Boom:
        def __reduce__(self):
            return (os.system, ("touch " + str(tmp_path / "pwned"),))

    p = tmp_path / "evil.npz"
    np.savez(p, x=np.array([Boom()], dtype=object), y=np.zeros(1))
    with pytest.raises(InputError, match="object arrays"):
        inputs.load_npz(p, "data.path")
    assert not (tmp_path / "pwned").exists()


def test_init_and_problem_files_use_the_same_layer(tmp_path):
    spec = NetworkSpec.from_config(load_config(None).model, 5)
    for name in ("object.npz", "complex.npz", "empty.npz", "renamed.npz"):
        p = tmp_path / name
        fuzz_corpus._write(p, fuzz_corpus.BAD_FILES[name])
        with pytest.raises(InputError) as e:
            load_params(str(p), spec)
        _one_line(e.value, "init.path")
        with pytest.raises(InputError) as e:
            load_problem(ProblemConfig(path=str(p)))
        _one_line(e.value, "problem.path")


def test_csv_with_header_and_good_rows(tmp_path):
    p = tmp_path / "ok.csv"
    p.write_text("a, b ,y\n1,2,3\n\n4,5.5,-6e-1\n")
    np.testing.assert_array_equal(inputs.load_csv(p, "data.path"), [[1, 2, 3], [4, 5.5, -0.6]])


def test_config_must_be_utf8(tmp_path):
    p = tmp_path / "c.toml"
    p.write_bytes("[data]\ndataset = 'caf\xe9'\n".encode("latin-1"))
    with pytest.raises(InputError, match="not UTF-8") as e:
        load_config(p)
    _one_line(e.value, "CONFIG")


# ---- numbers, seeds, sizes -----------------------------------------------------------
@pytest.mark.parametrize(
    "overrides,field",
    [
        (["data.seed=-1"], "data.seed"),
        (["init.seed=4294967296"], "init.seed"),
        (["init.seeds=[0, -3]"], "init.seeds"),
        (["train.steps=" + "9" * 40], "train.steps"),
        (["train.lr=" + "9" * 40], "train.lr"),
        (["train.lr=1e300"], "train.lr"),
        (["train.snapshots=1000000000"], "train.snapshots"),
        (["train.linear_snapshots=-1"], "train.linear_snapshots"),
        (["init.gamma=1e6"], "init.gamma"),
        (["init.scale=1e-200"], "init.scale"),
        (["init.scale=1e-30", "train.dtype='float32'"], "init.scale"),
        (["model.depth=1000", "model.widths=[2]"], "model.depth"),
        (["data.noise=1e999"], "data.noise"),
    ],
)
def test_bad_numbers_name_the_field(overrides, field):
    with pytest.raises(InputError) as e:
        load_config(None, overrides)
    _one_line(e.value, field)


def test_matrix_seeds_and_depth_follow_the_same_rules():
    for overrides, field in (
        (["problem.seed=-1"], "problem.seed"),
        (["init.seeds=[4294967296]"], "init.seeds"),
        (["model.depth=1000"], "model.depth"),
    ):
        with pytest.raises(InputError) as e:
            load_matrix_config(None, overrides)
        _one_line(e.value, field)


def test_memory_is_estimated_before_compute(monkeypatch):
    cfg = load_config(None, ["model.widths=[40000, 40000]"])
    with pytest.raises(InputError, match=r"needs about [\d.e+]+ GiB \(data") as e:
        prepare(cfg)
    _one_line(e.value, "model.widths")
    monkeypatch.setenv(inputs.MEMORY_ENV, "1e6")  # the documented override of the cap
    with pytest.raises(InputError, match="model.widths"):
        prepare(load_config(None, ["model.widths=[50, 50]"]))
    monkeypatch.setenv(inputs.MEMORY_ENV, "1e12")
    assert 0 < inputs.check_train_memory(load_config(None, ["model.widths=[50, 50]"]), 100, 5)


def test_memory_estimate_counts_snapshots():
    base = inputs.network_memory(100, 5, (50, 50), 8, 2, "float64")
    more = inputs.network_memory(100, 5, (50, 50), 8, 1002, "float64")
    weights = 5 * 50 + 50 * 50 + 50
    assert more["snapshots"] - base["snapshots"] == 8.0 * 8 * 1000 * weights * 2


# ---- properties ----------------------------------------------------------------------
_toml_values = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.text(max_size=8),
    st.lists(st.one_of(st.integers(-(2**40), 2**40), st.floats(), st.text(max_size=3)), max_size=4),
)


_NET_KEYS = sorted(fuzz_corpus._NET_KEYS)
_MAT_KEYS = sorted(fuzz_corpus._MAT_KEYS)


@settings(max_examples=300, deadline=None)
@given(
    key=st.one_of(st.sampled_from(_NET_KEYS), st.text(max_size=12)),
    value=st.one_of(_toml_values, st.text(max_size=12)),
    literal=st.booleans(),
)
def test_any_override_is_a_config_or_one_line(key, value, literal):
    item = f"{key}={toml_literal(value) if literal else value}"
    try:
        cfg = load_config(None, [item])
    except InputError as e:
        assert "\n" not in str(e) and "fix:" in str(e)
        return
    assert cfg.train.steps >= 1 and all(w >= 1 for w in cfg.model.widths)
    assert all(0 <= s < 2**32 for s, _ in cfg.member_seeds_scales)


@settings(max_examples=200, deadline=None)
@given(key=st.sampled_from(_MAT_KEYS), value=_toml_values)
def test_any_matrix_override_is_a_config_or_one_line(key, value):
    try:
        load_matrix_config(None, [f"{key}={toml_literal(value)}"])
    except InputError as e:
        assert "\n" not in str(e)


@settings(max_examples=150, deadline=None)
@given(name=st.sampled_from(["escape-scaling", "two-vs-three-layer", "matrix-completion"]),
       value=_toml_values, data=st.data())  # fmt: skip
def test_any_experiment_parameter_is_checked(name, value, data):
    from condensation import experiments

    exp = experiments.get(name)
    key = data.draw(st.sampled_from(sorted(exp.defaults)))
    try:
        exp.params([f"{key}={toml_literal(value)}"], quick=True)
    except InputError as e:
        assert "\n" not in str(e)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(content=st.one_of(st.binary(max_size=300), st.text(max_size=200).map(str.encode)),
       suffix=st.sampled_from([".csv", ".npz", ".toml"]))  # fmt: skip
def test_any_file_is_data_or_one_line(content, suffix):
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / f"f{suffix}"
        p.write_bytes(content)
        try:
            if suffix == ".toml":
                load_config(p)
            else:
                data = load_dataset(load_config(None, [f"data.path='{p}'"]).data)
                assert np.all(np.isfinite(data.x)) and data.x.shape[1] >= 1
        except InputError as e:
            assert "\n" not in str(e)


@settings(max_examples=150, deadline=None)
@given(
    arr=hnp.arrays(
        dtype=st.one_of(hnp.floating_dtypes(), hnp.integer_dtypes(), hnp.complex_number_dtypes(),
                        hnp.boolean_dtypes(), hnp.unicode_string_dtypes()),
        shape=hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=4),
    ),
)  # fmt: skip
def test_any_npz_array_is_real_finite_or_one_line(arr):
    buf = io.BytesIO()
    np.savez(buf, x=arr, y=np.zeros(arr.shape[0]))
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "a.npz"
        p.write_bytes(buf.getvalue())
        try:
            data = load_dataset(load_config(None, [f"data.path='{p}'"]).data)
        except InputError as e:
            assert "\n" not in str(e) and str(e).startswith("data.path")
            return
        assert data.x.dtype == np.float64 and np.all(np.abs(data.x) <= inputs.MAX_ABS)


# ---- the fuzz corpus through the CLI -------------------------------------------------
def _check(outcomes):
    counts = fuzz_corpus.summarise(outcomes)
    bad = [o for o in outcomes if fuzz_corpus.bad(o)]
    assert not fuzz_corpus.failed(counts), bad[:5]  # tracebacks, hangs, partial, foreign
    return counts


def test_fuzz_sample(tmp_path):
    """A representative sample of the corpus (all fail validation before compute)."""
    cases = fuzz_corpus.sample()
    assert len(cases) == len(fuzz_corpus.SAMPLE_NAMES)
    counts = _check(fuzz_corpus.run_all(cases, tmp_path))
    assert counts["error"] == len(cases)


@pytest.mark.slow
def test_fuzz_corpus(tmp_path):
    """Every case over every command: 0 tracebacks, 0 hangs, 0 partial outputs, 0
    foreign files changed or read, 0 silently wrong results (``python benchmarks/fuzz.py``
    prints the counts, with the early-signal section)."""
    cases = fuzz_corpus.corpus()
    assert len(cases) >= 300
    counts = _check(fuzz_corpus.run_all(cases, tmp_path))
    assert counts["ok"] >= 4
