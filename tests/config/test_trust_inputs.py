"""Issue 20, input edges: the CSV reader is strict, every refusal is one printable
line, integers follow one rule whatever their TOML type, a memory refusal names the
input that makes the run too large, and a ``--set`` value is never cut short.

Each case runs through the CLI in-process where the issue describes CLI behaviour
(exit 2 and exactly one stderr line ``error: ...`` without control characters)."""

import dataclasses
import math
import string

import numpy as np
import pytest
import tomli_w
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from condensation import InputError, load_config, load_dataset
from condensation.config import checks as inputs
from condensation.config.matrix import SECTIONS as MATRIX_SECTIONS
from condensation.config.matrix import matrix_config_from_dict
from condensation.config.network import SECTIONS as NETWORK_SECTIONS
from condensation.config.network import DataConfig, config_from_dict, parse_override
from condensation.datasets import TEACHERS
from condensation.experiments import get as get_experiment
from condensation.experiments import parse_set
from condensation.matrix import load_matrix_config

QUICK = settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
TINY = ["--set", "model.widths=[3, 3]", "--set", "train.steps=2"]  # a run of no cost


def one_error_line(code, err: str) -> str:
    """Exit 2 and exactly one stderr line, ``error: ...``, every character printable."""
    lines = err.splitlines()  # also splits at \x1c-\x1e, \x85, \u2028, \u2029
    assert code == 2, (code, err)
    assert len(lines) == 1 and lines[0].startswith("error:"), err
    assert lines[0].isprintable(), repr(lines[0])
    return lines[0]


def printable_line(e: InputError) -> str:
    text = str(e)
    assert text.isprintable() and len(text.splitlines()) == 1, repr(text)
    return text


# ---- 1. the CSV reader -------------------------------------------------------------------
def test_bom_does_not_hide_the_first_sample(tmp_path):
    """A headerless CSV starting with a UTF-8 BOM used 2 of its 3 samples."""
    p = tmp_path / "bom.csv"
    p.write_bytes(b"\xef\xbb\xbf1,2,3\n4,5,6\n7,8,9\n")
    data = load_dataset(DataConfig(path=str(p)))
    np.testing.assert_array_equal(data.x, [[1, 2], [4, 5], [7, 8]])
    np.testing.assert_array_equal(data.y, [3, 6, 9])


def test_bom_before_a_header_is_dropped_too(tmp_path):
    p = tmp_path / "bom-header.csv"
    p.write_bytes(b"\xef\xbb\xbfx1,y\n1,2\n")
    np.testing.assert_array_equal(inputs.load_csv(p, "data.path"), [[1, 2]])


@pytest.mark.parametrize(
    "first,col,cell",
    [("1,2,oops", 3, "oops"), ("0x10,2,3", 1, "0x10"), ("1,2_0,3", 2, "2_0")],
)
def test_a_first_row_with_a_number_is_data_not_a_header(cli_main, tmp_path, first, col, cell):
    """``1,2,oops`` or ``0x10,2,3`` was silently skipped as a header (exit 0)."""
    p = tmp_path / "typo.csv"
    p.write_text(f"{first}\n4,5,6\n7,8,9\n")
    code, err = cli_main("train", *TINY, "--set", f"data.path='{p}'", "--out", str(tmp_path / "o"))
    line = one_error_line(code, err)
    assert line.startswith("error: data.path = ")
    assert f"row 1, column {col}: {cell!r} is not a number" in line
    assert not (tmp_path / "o").exists()


# (cell, what the message says about it): each refused, naming row 3 and column 2
BAD_CELLS = [
    ("0x10", "'0x10' is not a number"),
    ("1_000", "'1_000' is not a number"),
    ("\u0661\u0662", "is not a number"),  # Arabic-Indic digits: float() reads them
    ("\uff11", "is not a number"),  # a full-width 1
    ("1.2.3", "'1.2.3' is not a number"),
    ("1 2", "'1 2' is not a number"),
    ("", "an empty field"),
    ("  ", "an empty field"),
    ("nan", "'nan' is non-finite"),
    ("-Infinity", "'-Infinity' is non-finite"),
    ("1e400", "'1e400' is above 1e+100 in magnitude"),  # float() gives inf
    ("-1e101", "'-1e101' is above 1e+100 in magnitude"),
    ('"7', "not CSV"),  # an unclosed quote
    ('"2"3', "not CSV"),  # text after a closing quote: was read as 23
]


@pytest.mark.parametrize("cell,what", BAD_CELLS)
def test_every_bad_cell_names_row_and_column(tmp_path, cell, what):
    p = tmp_path / "bad.csv"
    p.write_text(f"x,y\n1,2\n3,{cell}\n5,6\n", encoding="utf-8")
    with pytest.raises(InputError) as e:
        inputs.load_csv(p, "data.path")
    text = printable_line(e.value)
    assert what in text, text
    if what != "not CSV":
        assert "row 3, column 2: " in text, text


@pytest.mark.parametrize(
    "cell,value",
    [(" 1.5 ", 1.5), ("\t-2\t", -2.0), ('"3"', 3.0), ('" 4e-1 "', 0.4), ("+.5", 0.5),
     ("5.", 5.0), ("1E2", 100.0), ("1e-400", 0.0), ("-0", 0.0), ("1e100", 1e100)],
)  # fmt: skip
def test_accepted_cells(tmp_path, cell, value):
    """Decimal numbers; spaces and tabs around a cell and CSV quotes are ignored."""
    p = tmp_path / "ok.csv"
    p.write_text(f"a,b\n1,{cell}\n", encoding="utf-8")
    assert inputs.load_csv(p, "data.path")[0, 1] == value


def test_a_header_has_one_name_per_column(tmp_path):
    p = tmp_path / "h.csv"
    p.write_text("x,y\n1,2,3\n4,5,6\n")
    with pytest.raises(InputError, match=r"the header \(row 1\) has 2 columns") as e:
        inputs.load_csv(p, "data.path")
    printable_line(e.value)


def test_a_row_of_empty_cells_is_not_skipped(tmp_path):
    """Only empty lines are skipped: ``,,`` is a sample whose cells are missing."""
    p = tmp_path / "e.csv"
    p.write_text("x,y\n1,2\n,\n\n3,4\n")
    with pytest.raises(InputError, match="row 3, column 1: an empty field"):
        inputs.load_csv(p, "data.path")


_GOOD = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False).map(lambda v: f"{v:.6g}")
_NOT_A_NUMBER = st.one_of(
    st.sampled_from(["0x10", "0b1", "1_0", "nan", "inf", "NaN", "oops", "1e", "e5", "--1", ""]),
    st.text(alphabet=string.ascii_letters + "#$%&*!?_" + "\u00e9\u0663\x1b", min_size=1),
)


@QUICK
@given(
    grid=st.integers(2, 6).flatmap(
        lambda c: st.lists(st.lists(_GOOD, min_size=c, max_size=c), min_size=1, max_size=6)
    ),
    where=st.tuples(st.integers(0, 100), st.integers(0, 100)),
    bad=_NOT_A_NUMBER,
    header=st.booleans(),
)
def test_any_bad_cell_anywhere_names_its_row_and_column(tmp_path, grid, where, bad, header):
    """One bad cell in a numeric grid (the first row included, with or without a
    header above it) is an error naming that cell's row and column."""
    i, j = where[0] % len(grid), where[1] % len(grid[0])
    rows = [list(r) for r in grid]
    rows[i][j] = bad
    lines = ([",".join(f"c{k}" for k in range(len(rows[0])))] if header else []) + [
        ",".join(r) for r in rows
    ]
    p = tmp_path / "g.csv"
    p.write_text("\n".join(lines) + "\n", encoding="utf-8")
    if not header and len(rows[0]) == 1:
        return  # a one-column file: a lone non-number first row is a header
    with pytest.raises(InputError) as e:
        inputs.load_csv(p, "data.path")
    text = printable_line(e.value)
    assert f"row {i + 1 + int(header)}, column {j + 1}: " in text, text


# ---- 2. every refusal is one printable line ----------------------------------------------
CONTROL = ["\n", "\r", "\x1b[2J", "\x00", "\x07", "\x85", "\u2028", "\u202e", "\x7f", "\t"]


@pytest.mark.parametrize("bad", CONTROL)
def test_control_characters_in_a_set_key_are_escaped(cli_main, tmp_path, bad):
    """A newline, an ANSI escape or a NUL in a key name was printed raw."""
    code, err = cli_main("train", "--set", f"train.l{bad}r=1", "--out", str(tmp_path / "o"))
    line = one_error_line(code, err)
    assert line.startswith("error: train.l") and "unknown key" in line


def test_an_escape_in_a_config_file_key_does_not_clear_the_terminal(cli_main, tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text('[train]\n"a\\u001b[2J\\u0000b\\nc" = 1\n')
    code, err = cli_main("train", str(cfg), "--out", str(tmp_path / "o"))
    line = one_error_line(code, err)
    assert line.startswith("error: train.a\\x1b[2J\\x00b\\nc = 1: unknown key")


@QUICK
@given(
    key=st.text(
        alphabet=st.characters(
            codec="utf-8", categories=["Cc", "Cf", "Zl", "Zp", "Ll"], exclude_characters="=."
        ),
        min_size=1,
        max_size=12,
    ).filter(lambda k: not k.isprintable())
)
def test_random_control_characters_in_key_names(cli_main, tmp_path, key):
    code, err = cli_main("train", "--set", f"model.{key}=1", "--out", str(tmp_path / "o"))
    one_error_line(code, err)


@settings(max_examples=50, deadline=None)
@given(
    field=st.text(max_size=30),
    value=st.one_of(st.text(max_size=30), st.lists(st.text(max_size=5), max_size=3)),
    problem=st.text(max_size=30),
    fix=st.text(max_size=30),
)
def test_every_input_error_is_one_printable_line(field, value, problem, fix):
    """errors.py is the one place: any text in any of the four parts stays one line."""
    printable_line(InputError(field, value, problem, fix))


def test_escaping_is_idempotent_and_keeps_printable_text():
    from condensation.errors import printable

    assert printable("train.lr") == "train.lr"
    once = printable("a\nb\x1b\u2028")
    assert once == "a\\nb\\x1b\\u2028" and printable(once) == once


# ---- 3. one integer rule -----------------------------------------------------------------
def _int_keys(sections) -> list[tuple[str, bool]]:
    """(section.key, is a list) of every integer key of a config family."""
    out = []
    for section, cls in sections.items():
        for f in dataclasses.fields(cls):
            t = str(f.type)
            if t.startswith("int") or t.startswith("tuple[int"):
                out.append((f"{section}.{f.name}", t.startswith("tuple")))
    return out


NETWORK_INT_KEYS = _int_keys(NETWORK_SECTIONS)
MATRIX_INT_KEYS = _int_keys(MATRIX_SECTIONS)
BAD_FLOATS = [1e300, 2.0**53 + 2, 2.0**60, -1e20, 3.5, -0.5, math.nan, math.inf, -math.inf]


def test_every_integer_key_is_covered():
    assert {"data.n", "data.d", "model.widths", "train.steps", "init.seeds"} <= {
        k for k, _ in NETWORK_INT_KEYS
    }
    assert {"problem.n", "problem.observed", "model.width"} <= {k for k, _ in MATRIX_INT_KEYS}


def _set(key: str, is_list: bool, v: float) -> str:
    text = tomli_w.dumps({"v": v})[len("v = ") :].strip()
    return f"{key}={'[' + text + ']' if is_list else text}"


@QUICK
@given(
    family=st.sampled_from(["network", "matrix"]),
    pick=st.integers(0, 1000),
    v=st.one_of(
        st.sampled_from([*BAD_FLOATS, -0.0, 0.0, 2.0**53, 1e4]),
        st.floats(allow_nan=True, allow_infinity=True),
    ),
)
def test_integer_keys_given_as_floats(family, pick, v):
    """A float for an integer key is converted only when exactly integral and within
    2**53 (then the stored config reads back); anything else is refused naming the key."""
    keys, load, rebuild = (
        (NETWORK_INT_KEYS, load_config, config_from_dict)
        if family == "network"
        else (MATRIX_INT_KEYS, load_matrix_config, matrix_config_from_dict)
    )
    key, is_list = keys[pick % len(keys)]
    integral = math.isfinite(v) and v.is_integer() and abs(v) <= 2**53
    try:
        cfg = load(None, [_set(key, is_list, v)])
    except InputError as e:
        printable_line(e)
        # an integral value may be valid for its key and still conflict with another
        # key's default (problem.n = 1 against rank 2): that key is named
        assert e.field == key or integral, (key, v, str(e))
        if not integral:
            assert "integer" in e.problem, str(e)
        return
    assert integral, (key, v)
    section, name = key.split(".")
    got = getattr(getattr(cfg, section), name)
    got = got[0] if is_list else got
    assert type(got) is int and got == v
    assert rebuild(cfg.to_dict()) == cfg  # its own stored config is accepted


def test_a_huge_whole_float_does_not_run(cli_main, tmp_path):
    """``data.d=1e300`` on a 1-D data set ran, then its own stored config was refused."""
    code, err = cli_main(
        "train", *TINY, "--set", "data.dataset='sin'", "--set", "data.d=1e300",
        "--out", str(tmp_path / "o"),
    )  # fmt: skip
    line = one_error_line(code, err)
    assert line.startswith("error: data.d = 1e+300: integer too large")
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("v", [1e300, 2.0**53 + 2, 3.5, math.nan, math.inf])
def test_experiment_parameters_follow_the_same_integer_rule(v):
    exp = get_experiment("escape-scaling")
    item = _set("n_eps", False, v)
    with pytest.raises(InputError) as from_experiment:
        exp.params([item])
    with pytest.raises(InputError) as from_config:
        load_config(None, [_set("train.snapshots", False, v)])
    assert from_experiment.value.problem == from_config.value.problem


# ---- 4. the memory refusal names the input that makes the run too large -------------------
def test_data_n_is_blamed_for_data_n(cli_main, tmp_path):
    """``data.n=1e15`` was blamed on model.widths."""
    code, err = cli_main("train", "--set", "data.n=1e15", "--out", str(tmp_path / "o"))
    line = one_error_line(code, err)
    assert line.startswith("error: data.n = 1000000000000000: the run needs about "), line
    assert "data.n is the largest factor" in line


@pytest.mark.parametrize(
    "overrides,field",
    [
        (["data.n=1000000"], "data.n"),
        (["data.d=1000000"], "data.d"),
        (["model.widths=[20000, 20000]"], "model.widths"),
        (["init.seeds=" + str(list(range(3000)))], "init.seeds"),
        (["init.scales=" + str([1e-3] * 3000)], "init.scales"),
        (["train.save='full'", "train.steps=100000", "train.snapshots=50000"], "train.snapshots"),
        (
            ["train.save='full'", "train.steps=100000", "train.linear_snapshots=50000"],
            "train.linear_snapshots",
        ),
        (["data.dataset='sin'", "data.n=10000000"], "data.n"),
    ],
)
def test_network_memory_blames_the_largest_factor(monkeypatch, overrides, field):
    monkeypatch.setenv(inputs.MEMORY_ENV, "1e9")
    cfg = load_config(None, overrides)
    d_in = cfg.data.d if cfg.data.dataset in TEACHERS else 1
    with pytest.raises(InputError) as e:
        inputs.check_train_memory(cfg, cfg.data.n, d_in)
    assert e.value.field == field, str(e.value)
    assert f"{field}" in e.value.problem and e.value.fix.startswith(f"use a smaller {field}")
    printable_line(e.value)


def test_a_data_file_is_blamed_for_its_size(monkeypatch, tmp_path):
    p = tmp_path / "big.csv"
    p.write_text("x,y\n1,2\n")
    monkeypatch.setenv(inputs.MEMORY_ENV, "1e6")
    cfg = load_config(None, [f"data.path='{p}'"])
    with pytest.raises(InputError) as e:
        inputs.check_train_memory(cfg, 10**7, 2)
    assert e.value.field == "data.path" and "10000000 rows" in e.value.problem, str(e.value)


@pytest.mark.parametrize(
    "overrides,field",
    [
        (["problem.n=5", "problem.cols=1000000", "problem.rank=1", "problem.observed=5"],
         "problem.cols"),
        (["problem.n=30", "model.width=10000000"], "model.width"),
        (["problem.kind='sensing'", "problem.n=10", "problem.observed=10000000"],
         "problem.observed"),
        (["init.seeds=" + str(list(range(5000)))], "init.seeds"),
        (["problem.n=3000"], "problem.n"),
    ],
)  # fmt: skip
def test_matrix_memory_blames_the_largest_factor(monkeypatch, overrides, field):
    monkeypatch.setenv(inputs.MEMORY_ENV, "1e9")
    cfg = load_matrix_config(None, overrides)
    p = cfg.problem
    with pytest.raises(InputError) as e:
        inputs.check_matrix_memory(cfg, p.n, p.cols if p.cols is not None else p.n, p.observed)
    assert e.value.field == field, str(e.value)
    printable_line(e.value)


def test_memory_that_fits_is_returned(monkeypatch):
    monkeypatch.setenv(inputs.MEMORY_ENV, "1e12")
    cfg = load_config(None, ["model.widths=[50, 50]"])
    parts = inputs.train_memory(100, 5, (50, 50), 1, 262, "float64", "bounded")
    assert inputs.check_train_memory(cfg, 100, 5) == pytest.approx(sum(parts.values()))


# ---- 5. a --set value is never cut short -------------------------------------------------
@pytest.mark.parametrize(
    "item",
    [
        "train.lr=0.1\nx=1",  # a second key after a line break was dropped
        "train.lr=0.1\n[x]\ny=1",
        "train.lr=0.1\n# note",
        "train.lr=0.1#0.2",  # a trailing comment was dropped
        'data.path="a\nb"',  # a raw newline in a TOML string: was read as '"a\nb"'
        "data.dataset=sin\u2028x",
    ],
)
def test_set_with_a_line_break_or_comment_is_refused(cli_main, tmp_path, item):
    code, err = cli_main("train", *TINY, "--set", item, "--out", str(tmp_path / "o"))
    line = one_error_line(code, err)
    assert line.startswith("error: --set = "), line
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    "item",
    ["eps_max=1e-2\nn_eps=3", "eps_max=1e-2 # was 1e-3", "eps_max=1e-2\n#"],
)
def test_experiment_set_is_never_cut_short(item):
    with pytest.raises(InputError) as e:
        get_experiment("escape-scaling").params([item])
    assert e.value.field == "--set"
    printable_line(e.value)


@QUICK
@given(
    suffix=st.text(
        alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=1, max_size=20
    )
)
def test_anything_after_a_line_break_is_refused_or_blank(suffix):
    """Refused in one line, or (only when the rest is blank) the value alone."""
    for parse in (parse_override, parse_set):
        try:
            value = parse(f"train.lr=0.1\n{suffix}")[-1]
        except InputError as e:
            printable_line(e)
            continue
        assert not suffix.strip() and value == 0.1, (suffix, value)


@pytest.mark.parametrize(
    "item,value",
    [
        ("init.seeds=" + tomli_w.dumps({"v": list(range(40))})[4:].strip(), list(range(40))),
        ('data.path="""a\nb"""', "a\nb"),  # a TOML multi-line string: parsed entirely
        ('data.path="a\\nb"', "a\nb"),
        ("data.path='a#b'", "a#b"),
        ("data.path=a#b", "a#b"),  # not TOML: the bare word, whole
        ("train.lr=0.1\n", 0.1),  # trailing whitespace
        ("init.scales=[1e-3, # first\n 1e-2]", [1e-3, 1e-2]),
    ],
)
def test_values_read_entirely(item, value):
    """What stays accepted: multi-line TOML values (sweeps pass tomli_w's long
    arrays this way), quoted '#', bare words."""
    assert parse_override(item)[2] == value
