"""Helpers shared by the test modules (imported as ``helpers``: pytest puts tests/ on
the path)."""

from __future__ import annotations

import contextlib
import re


def net_data(n=24, d=3, seed=0):
    """A small teacher data set ``(x, tanh(x @ z))`` for the trainers' tests."""
    import numpy as np

    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d))
    return x, np.tanh(x @ rng.standard_normal(d))


def net_params(scales, m=6, d=3, seed=1):
    """Three-layer weights (W1, W2, W3), one member per scale in ``scales``."""
    import numpy as np

    rng = np.random.default_rng(seed)
    shapes = [(m, d), (m, m), (1, m)]
    return [np.stack([s * rng.standard_normal(sh) for s in scales]) for sh in shapes]


def sets(items: list[str]) -> list[str]:
    """``["a=1", "b=2"]`` -> ``["--set", "a=1", "--set", "b=2"]``."""
    return [a for s in items for a in ("--set", s)]


@contextlib.contextmanager
def ctrl_c_in_train(at_step: int = 20):
    """Within the block, an in-process ``condensation train`` is interrupted as by
    Ctrl-C once its progress reaches ``at_step`` steps (no pytest fixture needed: the
    fuzz runner uses it outside pytest)."""
    from condensation.cli import _train

    @contextlib.contextmanager
    def ctrl_c(total, description):
        def update(done):
            if done >= at_step:
                raise KeyboardInterrupt

        yield update

    saved = _train.progress_bar
    _train.progress_bar = ctrl_c
    try:
        yield
    finally:
        _train.progress_bar = saved


def run_cli(*args) -> tuple[int | str, str, str]:
    """``condensation *args`` in this process, without pytest fixtures (so hypothesis
    tests and scripts can call it): ``(exit status, stdout, stderr)``.

    An exception that escapes ``main()`` (what a user would see as a traceback) is not
    raised: the status is the string ``"traceback"`` and stderr holds the traceback.
    """
    import io
    import sys
    import traceback
    from contextlib import redirect_stderr, redirect_stdout

    from condensation.cli import main

    out, err = io.StringIO(), io.StringIO()
    saved = sys.argv
    sys.argv = ["condensation", *map(str, args)]
    code: int | str
    try:
        with redirect_stdout(out), redirect_stderr(err):
            try:
                main()
                code = 0
            except SystemExit as e:
                code = 0 if e.code is None else e.code
            except Exception:
                code = "traceback"
                err.write(traceback.format_exc())
    finally:
        sys.argv = saved
    return code, out.getvalue(), err.getvalue()


def toml_literal(v) -> str:
    """A Python value as a TOML literal, as typed after ``--set key=``: ``True`` ->
    ``true``, ``"a"`` -> ``"a"`` (escaped), ``nan``/``inf`` as TOML writes them, lists
    element by element; other values as ``str`` (integers, and text already literal)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return {float("inf"): "inf", float("-inf"): "-inf"}.get(v, "nan" if v != v else repr(v))
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(toml_literal(x) for x in v) + "]"
    return str(v)


def write_npz(path, **arrays):
    """Write ``arrays`` to the ``.npz`` at ``path`` (parents made) and return the path."""
    from pathlib import Path

    import numpy as np

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **{k: np.asarray(v) for k, v in arrays.items()})
    return path


def one_line(text: str) -> str:
    """The one non-empty line of ``text`` (asserted: exactly one), e.g. an error
    message or a command's stderr."""
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, text
    return lines[0]


def refused(code, err: str, *words: str) -> str:
    """A refusal as the house writes it: exit status 2 and exactly one stderr line
    ``error: ...`` that contains each of ``words``; returns that line."""
    assert code == 2, f"exit {code}: {err}"
    line = one_line(err)
    assert line.startswith("error: "), err
    for w in words:
        assert w in line, f"{w!r} not in {line!r}"
    return line


def gaussian_params(rng, d: int, widths, scale: float = 1.0) -> tuple:
    """Weights ``(W1, ..., WL)`` of a network with ``d`` inputs, hidden ``widths`` and
    one output, every entry ``scale * N(0, 1)`` from ``rng`` (W1 drawn first; ``Wk``
    is (m_k, m_{k-1})): numpy arrays."""
    dims = [d, *widths, 1]
    return tuple(scale * rng.standard_normal((dims[k + 1], dims[k])) for k in range(len(dims) - 1))


_NUMBER = re.compile(r"(?<![\w./-])[-+]?(\d+\.\d+|\d+(?:\.\d*)?e[-+]?\d+)(?![\w./])")


def console_problems(text: str) -> list[str]:
    """What a console output does wrong: a decimal number with more than 6 significant
    digits (``367.95000000000005``).  Integers are exact and paths are not numbers.

    >>> console_problems("escape t = 367.95000000000005, rel. error 1.0e-11")
    ['367.95000000000005']
    >>> console_problems("T* = 381.809 at /tmp/pytest-1.2/run, 12000 steps")
    []
    """
    bad = []
    for m in _NUMBER.finditer(text):
        mantissa = m[1].split("e")[0].replace(".", "").lstrip("0")
        if len(mantissa) > 6:
            bad.append(m[0])
    return bad
