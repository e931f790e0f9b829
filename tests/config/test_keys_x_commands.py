"""Every documented config key with every command: the command runs (tiny sizes) and
writes its summary, or refuses in one line, exit 2, leaving nothing behind (issue 21,
"Combinations", property-based).

The keys are those the README documents for ``train`` / ``effective`` (``[data]``,
``[model]``, ``[init]``, ``[train]``), for ``matrix`` (``[problem]``, ``[model]``,
``[init]``, ``[train]``), the same keys as ``sweep`` axes of each command, and the
``data.*`` keys that ``run`` and ``reproduce`` take with ``--set``.  Each key has a
strategy of values a user might type: valid ones and edge or wrong ones (zero,
negative, huge, ``nan``/``inf``, wrong types, strings, lists, files that do not exist
or are not what the key needs).

What is asserted, whatever the value: exit 0 with ``summary.json`` written and
nothing else left beside the output, or exit 2 with exactly one stderr line
``error: ...`` and nothing at all written; never a traceback, never another status.

Default variant: every command x key with a few hard values (refusals: milliseconds),
plus a few valid draws per command (tiny networks, 5 steps).  ``-m slow``: many more
draws, valid and not, including ``run`` / ``reproduce`` that train.  Derandomized, so
CI is stable; ``CONDENSATION_TEST_SEED`` does not apply.
"""

from __future__ import annotations

import sys
import tempfile
import textwrap
from pathlib import Path

import numpy as np
import pytest
from helpers import refused, run_cli, toml_literal, write_npz
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

F = "@FILES@"  # placeholder for the directory of the test's files, replaced when run

NET_BASE = textwrap.dedent(
    """
    [data]
    n = 8
    d = 2
    [model]
    depth = 3
    widths = [3, 3]
    [init]
    scale = 0.1
    [train]
    lr = 0.1
    steps = 5
    snapshots = 2
    linear_snapshots = 2
    """
)
MAT_BASE = textwrap.dedent(
    """
    [problem]
    n = 4
    rank = 1
    observed = 10
    [model]
    depth = 3
    [init]
    scale = 0.1
    [train]
    lr = 0.05
    steps = 5
    snapshots = 2
    linear_snapshots = 2
    """
)
# `run` trains one experiment at its smallest: the optimizers experiment, GD only
RUN_ARGS = [
    "optimizers",
    "--quick",
    "--set",
    "optimizers=['gd']",
    "--set",
    "width=4",
    "--set",
    "n_eps=2",
    "--set",
    "eps_min=5e-3",
]


def _files(root: Path) -> Path:
    """The files the path keys point at: good ones and bad ones."""
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, size=(8, 2))
    write_npz(root / "data.npz", x=x, y=np.tanh(x @ [1.0, -0.5]))
    write_npz(root / "no_y.npz", x=x)
    write_npz(root / "nan.npz", x=x, y=np.full(8, np.nan))
    (root / "data.csv").write_text("\n".join(f"{a},{b},{a - b}" for a, b in x) + "\n")
    (root / "empty.csv").write_text("")
    (root / "text.txt").write_text("not data\n")
    (root / "notnpz.npz").write_bytes(b"PK\x03\x04 not a zip")
    # init.path for depth 3, widths [3, 3], d = 2: W1 (3, 2), W2 (3, 3), W3 (1, 3)
    write_npz(
        root / "init.npz",
        W1=0.1 * rng.normal(size=(3, 2)),
        W2=0.1 * rng.normal(size=(3, 3)),
        W3=0.1 * rng.normal(size=(1, 3)),
    )
    write_npz(root / "init_shape.npz", W1=np.ones((4, 2)), W2=np.ones((3, 4)), W3=np.ones((1, 3)))
    m = rng.normal(size=(4, 1)) @ rng.normal(size=(1, 4))
    write_npz(root / "problem.npz", M=m, mask=(rng.uniform(size=(4, 4)) < 0.6))
    write_npz(root / "problem_nomask.npz", M=m)
    return root


# ---- values a user might type, as the text after `--set key=` ---------------------------
def _lit(strategy):
    return strategy.map(toml_literal)


WRONG_TYPE = st.sampled_from(['"x"', "[1]", "true", "{a = 1}", '""', "x y", "[]"])
NOT_A_LIST = st.sampled_from(['"x"', "true", "{a = 1}", '""', "x y", "0.1", "[[0.1]]"])
NAN_ISH = st.sampled_from(["nan", "inf", "-inf", '"nan"', "1e309", "-1e309"])
HUGE = st.sampled_from(["1e300", "-1e300", str(2**60), str(2**64), str(-(2**63)), "1e101"])
NOT_A_FILE = st.sampled_from(
    [
        f'"{F}/missing.npz"',
        f'"{F}"',
        f'"{F}/text.txt"',
        '""',
        f'"{F}/empty.csv"',
        f'"{F}/notnpz.npz"',
        f'"{F}/none/x.csv"',
    ]
)


def ints(lo, hi):
    return _lit(st.integers(lo, hi))


def floats(lo, hi):
    return _lit(st.floats(lo, hi, allow_nan=False, allow_infinity=False))


def words(*ws):
    return st.sampled_from([f'"{w}"' for w in ws])


def lists(elements, min_size=1, max_size=3):
    return st.lists(elements, min_size=min_size, max_size=max_size).map(
        lambda xs: "[" + ", ".join(xs) + "]"
    )


BOOL = st.sampled_from(["true", "false"])
BAD_BOOL = st.sampled_from(["1", "0", '"yes"', "[true]", "nan"])
BAD_COUNT = st.one_of(st.sampled_from(["0", "-1", "1.5", "1e9"]), WRONG_TYPE, NAN_ISH, HUGE)
BAD_SEED = st.one_of(st.sampled_from(["-1", str(2**32), "1.5", "1e10"]), WRONG_TYPE, NAN_ISH)
BAD_POSITIVE = st.one_of(st.sampled_from(["0", "-1", "-0.0", "-1e-300"]), WRONG_TYPE, NAN_ISH, HUGE)
BAD_OPEN_UNIT = st.one_of(st.sampled_from(["0", "1", "-0.5", "1.5"]), WRONG_TYPE, NAN_ISH, HUGE)
BAD_UNIT = st.one_of(st.sampled_from(["1", "-0.5", "1.5", "-1e-9"]), WRONG_TYPE, NAN_ISH, HUGE)
BAD_WORD = st.one_of(st.sampled_from(['"nope"', '""', "3", '"TANH "']), st.text(max_size=6))
BAD_LIST = st.one_of(
    st.sampled_from(["[]", "[0]", "[-1]", "[nan]", '["x"]', "[inf]", "[1e301]"]),
    NOT_A_LIST,
    NAN_ISH,
)
SCALE = floats(1e-3, 0.5)

# key -> (valid values, hard values, companions: --set items that make the key apply)
NET_KEYS = {
    "data.dataset": (
        words("teacher", "teacher3", "sin", "cubic", "step", "gauss", "diabetes"),
        BAD_WORD,
        [],
    ),
    "data.path": (
        st.sampled_from([f'"{F}/data.npz"', f'"{F}/data.csv"']),
        st.one_of(NOT_A_FILE, st.sampled_from([f'"{F}/no_y.npz"', f'"{F}/nan.npz"'])),
        [],
    ),
    "data.bias": (BOOL, BAD_BOOL, []),
    "data.n": (ints(1, 12), BAD_COUNT, []),
    "data.d": (ints(1, 3), BAD_COUNT, []),
    "data.seed": (ints(0, 2**32 - 1), BAD_SEED, []),
    "data.noise": (floats(0, 1), st.one_of(st.just("-0.1"), NAN_ISH, HUGE, WRONG_TYPE), []),
    "model.depth": (ints(2, 4), st.one_of(st.sampled_from(["0", "1", "17", "-3"]), WRONG_TYPE), []),
    "model.widths": (
        lists(ints(1, 4), 2, 2),
        st.one_of(
            BAD_LIST, st.sampled_from(["[3]", "[3, 3, 3]", "[3.5, 3]", "[1e9, 1e9]", "[0, 3]"])
        ),
        [],
    ),
    "model.activation": (words("tanh", "sin", "linear", "xtanh", "relu"), BAD_WORD, []),
    "model.output_scale": (floats(0.1, 10), BAD_POSITIVE, []),
    "init.scale": (SCALE, st.one_of(BAD_POSITIVE, st.sampled_from(["1e-200", "[0.1]"])), []),
    "init.gamma": (floats(0.5, 2), st.one_of(NAN_ISH, WRONG_TYPE, st.just("1e300")), []),
    "init.scales": (lists(SCALE), BAD_LIST, []),
    "init.layer_scales": (
        lists(SCALE, 3, 3),
        st.one_of(BAD_LIST, st.sampled_from(["[0.1, 0.1]", "[0.1, 0, 0.1]"])),
        [],
    ),
    "init.layer_gammas": (
        lists(floats(0, 2), 3, 3),
        st.one_of(BAD_LIST, st.sampled_from(["[1.0]", "[1, nan, 1]"])),
        [],
    ),
    "init.seed": (ints(0, 2**32 - 1), BAD_SEED, []),
    "init.seeds": (lists(ints(0, 9)), BAD_LIST, []),
    "init.path": (
        st.just(f'"{F}/init.npz"'),
        st.one_of(NOT_A_FILE, st.sampled_from([f'"{F}/init_shape.npz"', f'"{F}/data.npz"'])),
        [],
    ),
    "init.antisymmetric": (BOOL, BAD_BOOL, []),
    "init.balance": (floats(0, 1), st.one_of(NAN_ISH, WRONG_TYPE), []),
    "train.lr": (floats(1e-3, 0.5), BAD_POSITIVE, []),
    "train.steps": (
        st.one_of(ints(1, 20), st.just('"auto"')),
        st.one_of(BAD_COUNT, st.sampled_from(['"AUTO"', "2e9"])),
        [],
    ),
    "train.dtype": (words("float64", "float32"), BAD_WORD, []),
    "train.snapshots": (ints(2, 6), st.one_of(BAD_COUNT, st.sampled_from(["1", "100001"])), []),
    "train.linear_snapshots": (ints(0, 6), st.one_of(BAD_SEED, st.just("100001")), []),
    "train.plateau_drop": (floats(0.01, 0.99), BAD_OPEN_UNIT, []),
    "train.save": (words("bounded", "full"), BAD_WORD, []),
    "train.optimizer": (words("gd", "sgd", "momentum", "adam"), BAD_WORD, []),
    "train.batch_size": (ints(1, 8), st.one_of(BAD_COUNT, st.just("9")), ["train.optimizer=sgd"]),
    "train.batch_seed": (
        ints(0, 2**32 - 1),
        st.one_of(WRONG_TYPE, NAN_ISH, HUGE),
        ["train.optimizer=sgd"],
    ),
    "train.momentum": (floats(0, 0.99), BAD_UNIT, ["train.optimizer=momentum"]),
    "train.nesterov": (BOOL, BAD_BOOL, ["train.optimizer=momentum"]),
    "train.b1": (floats(0, 0.99), BAD_UNIT, ["train.optimizer=adam"]),
    "train.b2": (floats(0, 0.999), BAD_UNIT, ["train.optimizer=adam"]),
    "train.adam_eps": (
        st.one_of(floats(1e-10, 1e-3), st.just("1e-320")),
        BAD_POSITIVE,
        ["train.optimizer=adam"],
    ),
    "train.fast_forward": (BOOL, BAD_BOOL, []),
    "train.handoff": (floats(1e-3, 0.5), BAD_OPEN_UNIT, ["train.fast_forward=true"]),
}
MAT_KEYS = {
    "problem.kind": (words("completion", "sensing"), BAD_WORD, []),
    "problem.path": (
        st.just(f'"{F}/problem.npz"'),
        st.one_of(NOT_A_FILE, st.sampled_from([f'"{F}/problem_nomask.npz"', f'"{F}/data.npz"'])),
        [],
    ),
    "problem.n": (ints(2, 6), BAD_COUNT, []),
    "problem.cols": (ints(2, 6), BAD_COUNT, []),
    "problem.rank": (ints(1, 3), st.one_of(BAD_COUNT, st.just("5")), []),
    "problem.spectrum": (words("gaussian", "flat"), BAD_WORD, []),
    "problem.observed": (ints(1, 16), st.one_of(BAD_COUNT, st.just("17")), []),
    "problem.seed": (ints(0, 2**32 - 1), BAD_SEED, []),
    "model.depth": (ints(1, 4), st.one_of(st.sampled_from(["0", "17", "-3"]), WRONG_TYPE), []),
    "model.width": (ints(1, 6), BAD_COUNT, []),
    "init.scheme": (words("gaussian", "balanced", "identity"), BAD_WORD, []),
    "init.scale": (SCALE, st.one_of(BAD_POSITIVE, st.just("1e-200")), []),
    "init.scales": (lists(SCALE), BAD_LIST, []),
    "init.seed": (ints(0, 2**32 - 1), BAD_SEED, []),
    "init.seeds": (lists(ints(0, 9)), BAD_LIST, []),
    "train.lr": (floats(1e-3, 0.1), BAD_POSITIVE, []),
    "train.steps": (ints(1, 20), st.one_of(BAD_COUNT, st.just('"auto"')), []),
    "train.dtype": (words("float64", "float32"), BAD_WORD, []),
    "train.snapshots": (ints(2, 6), st.one_of(BAD_COUNT, st.just("1")), []),
    "train.linear_snapshots": (ints(0, 6), BAD_SEED, []),
    "train.fast_forward": (BOOL, BAD_BOOL, []),
    "train.handoff": (floats(1e-3, 0.5), BAD_OPEN_UNIT, ["train.fast_forward=true"]),
}
# keys no command documents: refused whatever the value
UNKNOWN = {
    "data.nope": (st.just("1"), st.just("1"), []),
    "nope.x": (st.just("1"), st.just("1"), []),
}

KEYS = {
    "train": {**NET_KEYS, **UNKNOWN},
    "effective": {**NET_KEYS, **UNKNOWN},
    "effective-gd": {**NET_KEYS, **UNKNOWN},
    "matrix": {**MAT_KEYS, **UNKNOWN},
}
# run / reproduce: the data.* keys of train; any other key of train is refused
DATA_KEYS = {k: v for k, v in NET_KEYS.items() if k.startswith("data.")}
DATA_KEYS |= {**UNKNOWN, "train.lr": (st.just("0.1"), st.just("0.1"), [])}
BASES = {"train": NET_BASE, "effective": NET_BASE, "matrix": MAT_BASE}
OPTIONS = {"effective-gd": ["--compare-gd"]}  # effective-gd: effective --compare-gd

# Failures this test finds on the code of its commit: (command, key) -> (a literal that
# fails, what happens).  Their cases run as xfail(strict=True): the fix turns them into
# XPASS, which fails, so the fix must delete the entry.
KNOWN: dict[tuple[str, str], tuple[str, str]] = {}


# ---- one run ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return _files(tmp_path_factory.mktemp("files"))


def _argv(
    command: str, key: str, literal: str, companions: list[str], files: Path, work: Path
) -> list[str]:
    """The command line of ``command`` with ``key = literal`` (and its companions)."""
    literal = literal.replace(F, str(files))
    out = work / "out"
    if command in KEYS:
        name = command.split("-")[0]
        base = work.parent / f"{name}.toml"
        base.write_text(BASES[name])
        sets = [a for s in [*companions, f"{key}={literal}"] for a in ("--set", s)]
        return [name, base, *OPTIONS.get(command, []), *sets, "--out", out]
    if command.startswith("sweep-"):
        cmd = command.removeprefix("sweep-")
        base = work.parent / f"{cmd}.toml"
        base.write_text(BASES[cmd])
        fixed = "\n".join(f'"{k}" = {v}' for k, v in (c.split("=", 1) for c in companions))
        spec = work.parent / "spec.toml"
        spec.write_text(
            f'[sweep]\ncommand = "{cmd}"\nbase = "{base}"\n[sweep.set]\n{fixed}\n'
            f'[sweep.axes]\n"{key}" = [{_as_toml(literal)}]\n'
        )
        return ["sweep", spec, "--workers", "0", "--out", out]
    if command == "run":
        return ["run", *RUN_ARGS, "--set", f"{key}={literal}", "--out", out]
    assert command == "reproduce"
    return [
        "reproduce",
        "--quick",
        "--only",
        "optimizers",
        "--workers",
        "1",
        "--set",
        f"{key}={literal}",
        "--out",
        out,
    ]


def _as_toml(literal: str) -> str:
    """``literal`` as a value in a TOML file, read as ``--set`` reads it: TOML if it
    parses, else a bare word (a string)."""
    try:
        tomllib.loads(f"v = {literal}")
        return literal
    except ValueError:
        return toml_literal(literal)


def _runs_or_refuses(
    command: str, key: str, literal: str, companions: list[str], files: Path
) -> int:
    """Run it; assert the contract; return the exit status."""
    with tempfile.TemporaryDirectory() as d:
        work = Path(d) / "work"
        work.mkdir()
        argv = _argv(command, key, literal, companions, files, work)
        code, out, err = run_cli(*argv)
        shown = " ".join(map(str, argv))
        assert code in (0, 2), f"exit {code}: {shown}\n{err}"
        left = sorted(p.name for p in work.iterdir())
        if code == 2:
            refused(code, err)
            assert left == [], f"left behind after a refusal: {left}: {shown}"
        else:
            assert left == ["out"], f"beside the output: {left}: {shown}"
            assert (work / "out" / "summary.json").is_file(), shown
    return code


COMMANDS = ["train", "effective", "effective-gd", "matrix"]
SWEEPS = ["sweep-train", "sweep-effective", "sweep-matrix"]
FAST = settings(
    max_examples=2,
    deadline=None,
    derandomize=True,
    database=None,
    phases=[Phase.explicit, Phase.generate],  # a failure shows its input unshrunk
    suppress_health_check=[HealthCheck.too_slow],
)
BROAD = settings(
    max_examples=3,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def _cases(commands, keys_of, known=True):
    """``(command, key)`` params; a known failure is xfail(strict=True) where ``known``."""
    return [
        pytest.param(c, k, marks=pytest.mark.xfail(strict=True, reason=KNOWN[c, k][1]))
        if known and (c, k) in KNOWN
        else (c, k)
        for c in commands
        for k in sorted(keys_of(c))
    ]


def _keys_of(command: str) -> dict:
    if command in KEYS:
        return KEYS[command]
    if command.startswith("sweep-"):
        return KEYS[command.removeprefix("sweep-")]
    return DATA_KEYS


# ---- default: every command x key with hard values; a few valid draws per command --------
@pytest.mark.parametrize("command,key", _cases([*COMMANDS, *SWEEPS, "run", "reproduce"], _keys_of))
@FAST
@given(data=st.data())
def test_hard_values_run_or_are_refused_in_one_line(command, key, data, files):
    _, hard, companions = _keys_of(command)[key]
    if (command, key) in KNOWN:  # its failing input first: the xfail is deterministic
        _runs_or_refuses(command, key, KNOWN[command, key][0], companions, files)
    _runs_or_refuses(command, key, data.draw(hard, label="value"), companions, files)


@pytest.mark.parametrize(  # effective --compare-gd trains and solves: ~10 s a draw, slow
    "command", [pytest.param(c, marks=pytest.mark.slow) if "-" in c else c for c in COMMANDS]
)
@settings(
    max_examples=2,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(data=st.data())
def test_valid_values_run_or_are_refused_in_one_line(command, data, files):
    keys = _keys_of(command)
    key = data.draw(st.sampled_from(sorted(keys)), label="key")
    good, _, companions = keys[key]
    _runs_or_refuses(command, key, data.draw(good, label="value"), companions, files)


@pytest.mark.parametrize(
    "command,key",
    [
        pytest.param(*k, marks=pytest.mark.xfail(strict=True, reason=r))
        for k, (_, r) in KNOWN.items()
    ]
    or [pytest.param("train", "data.n", marks=pytest.mark.skip("no known failure"))],
)
def test_known_failures_with_their_exact_input(command, key, files):
    """The exact input of each known failure, so its report reproduces it."""
    _runs_or_refuses(command, key, KNOWN[command, key][0], _keys_of(command)[key][2], files)


# ---- slow: many draws, valid and not, every command x key --------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("command,key", _cases([*COMMANDS, *SWEEPS], _keys_of, known=False))
@BROAD
@given(data=st.data())
def test_any_value_runs_or_is_refused_in_one_line(command, key, data, files):
    good, hard, companions = _keys_of(command)[key]
    values = good if (command, key) in KNOWN else st.one_of(good, hard)  # known: pinned above
    _runs_or_refuses(command, key, data.draw(values, label="value"), companions, files)


@pytest.mark.slow
@pytest.mark.parametrize("command,key", _cases(["run", "reproduce"], _keys_of, known=False))
@settings(
    max_examples=1,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(data=st.data())
def test_experiments_take_any_data_value_or_refuse_it_in_one_line(command, key, data, files):
    good, _, companions = _keys_of(command)[key]
    _runs_or_refuses(command, key, data.draw(good, label="value"), companions, files)
