"""Issue 20, the report and loading a run back: no path from a run's files leads
outside it, and a malformed run directory is one line, never a traceback.

The run directories are built by hand (the layout ``condensation run`` /
``reproduce`` write: see ``reproduce.run_into`` and ``report/html.py``), with tiny
PNGs, so nothing here trains a network.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import os
import struct
import tempfile
import types
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from condensation import load_run
from condensation.errors import InputError
from condensation.report.html import render_report
from condensation.store import rundir as store

SECRET = b"TOP-SECRET-d41d8cd98f00b204e980"


def _png(payload: bytes = b"") -> bytes:
    """A valid 1x1 grey PNG, with ``payload`` in a private ancillary chunk."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + data))
        return struct.pack(">I", len(data)) + kind + data + crc

    ihdr = struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0)
    body = chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00\x80"))
    if payload:
        body += chunk(b"prVt", payload)
    return b"\x89PNG\r\n\x1a\n" + body + chunk(b"IEND", b"")


SECRET_PNG = _png(SECRET)


def _experiment_summary(name: str = "exp-a") -> dict:
    """What ``reproduce.run_into`` writes for an experiment."""
    key = name.replace("-", "_")
    return {
        "kind": "experiment",
        "name": name,
        "title": f"Title of {name}",
        "section": "scaling",
        "story": "A story <with> characters & more.",
        "quick": True,
        "params": {"k": 2, "eps": [1e-3, 1e-2], "data": {"n": 10}},
        "headline": {f"{key}.slope": -1.0, f"{key}.count": 3, f"{key}.none": None},
        "figures": [
            {"file": "figures/line.png", "caption": "a line", "numbers": [f"{key}.slope"]},
        ],
        "other_numbers": [f"{key}.count", f"{key}.none"],
        "elapsed_s": 0.1,
        "cpu_s": 0.1,
    }


def _write_experiment(d: Path, summary: dict | None = None, name: str = "exp-a") -> None:
    (d / "figures").mkdir(parents=True, exist_ok=True)
    (d / "arrays").mkdir(exist_ok=True)
    (d / "figures" / "line.png").write_bytes(_png(name.encode()))
    store.save_arrays(d / "arrays" / "line.npz", x=np.arange(3.0))
    store.write_json(d / "summary.json", summary or _experiment_summary(name))


def _reproduce_summary(names=("exp-a",)) -> dict:
    return {
        "kind": "reproduce",
        "quick": True,
        "experiments": list(names),
        "headline": {n: {} for n in names},
        "elapsed_s": {n: 0.1 for n in names},
    }


def _outside(root: Path) -> Path:
    """A secret PNG and a complete experiment run beside the run directories."""
    (root / "secret.png").write_bytes(SECRET_PNG)
    exp = root / "outside-exp"
    _write_experiment(exp, name="outside-exp")
    (exp / "figures" / "line.png").write_bytes(SECRET_PNG)
    return exp


def _link_outside_exp(root: Path):
    return lambda t: os.symlink(root / "outside-exp", t / "linked")


def _make_reproduce(out: Path, top: dict | None = None, child: dict | None = None, extra=None):
    """A reproduce directory ``out`` with one experiment ``exp-a``, marked as ours;
    ``extra(tmp)`` adds files before the marker is written."""
    with store.run_directory(out) as tmp:
        _write_experiment(tmp / "exp-a", child)
        store.write_json(tmp / "summary.json", top or _reproduce_summary())
        if extra is not None:
            extra(tmp)
    return out


def _make_experiment(out: Path, summary: dict | None = None, extra=None):
    with store.run_directory(out) as tmp:
        _write_experiment(tmp, summary)
        if extra is not None:
            extra(tmp)
    return out


def _snapshot(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` (symlinks as their target's text), by relative path."""
    out = {}
    for dirpath, dirs, files in os.walk(root):
        for f in files + [x for x in dirs if os.path.islink(os.path.join(dirpath, x))]:
            p = Path(dirpath) / f
            rel = p.relative_to(root).as_posix()
            out[rel] = ("-> " + os.readlink(p)).encode() if p.is_symlink() else p.read_bytes()
    return out


def _no_secret_in(d: Path) -> None:
    for rel, data in _snapshot(d).items():
        assert SECRET not in data, rel
        assert base64.b64encode(SECRET_PNG) not in data, rel
        assert base64.b64encode(SECRET) not in data, rel


def _one_line(e: InputError) -> str:
    msg = str(e)
    assert "\n" not in msg and "\r" not in msg and "fix:" in msg, msg
    return msg


def _refused(d: Path, *expect: str) -> str:
    """``render_report(d)`` refuses in one line containing each of ``expect``, and
    changes nothing under ``d``'s parent."""
    before = _snapshot(d.parent)
    with pytest.raises(InputError) as e:
        render_report(d)
    msg = _one_line(e.value)
    for s in expect:
        assert s in msg, msg
    assert _snapshot(d.parent) == before
    return msg


# ---- 1. no path from a run's files leads outside it ----------------------------------
@pytest.mark.parametrize(
    "file",
    ["{root}/secret.png", "../secret.png", "../../secret.png", "figures/../../secret.png"],
)
def test_report_refuses_a_figure_file_outside_the_experiment(tmp_path, file):
    _outside(tmp_path)
    s = _experiment_summary()
    s["figures"].append({"file": file.format(root=tmp_path), "caption": "x", "numbers": []})
    out = _make_experiment(tmp_path / "run", s)
    _refused(out, str(out / "summary.json") + " figures[1].file")
    _no_secret_in(out)


def test_report_refuses_a_figure_symlink_pointing_outside(tmp_path):
    _outside(tmp_path)

    def link(tmp):
        (tmp / "figures" / "line.png").unlink()
        os.symlink(tmp_path / "secret.png", tmp / "figures" / "line.png")

    out = _make_experiment(tmp_path / "run", extra=link)
    _refused(out, "figures[0].file", "outside the run directory")
    _no_secret_in(out)


def test_report_figure_of_a_child_stays_in_that_child(tmp_path):
    """A reproduce child's figure may not reach into its parent either."""
    _outside(tmp_path)
    child = _experiment_summary()
    child["figures"][0]["file"] = "../summary.json"
    out = _make_reproduce(tmp_path / "rep", child=child)
    _refused(out, str(out / "exp-a" / "summary.json") + " figures[0].file")


@pytest.mark.parametrize("entry", ["../outside-exp", "{root}/outside-exp", "x/../../outside-exp"])
def test_report_refuses_an_experiments_entry_outside_the_run(tmp_path, entry):
    _outside(tmp_path)
    top = _reproduce_summary(["exp-a", entry.format(root=tmp_path)])
    out = _make_reproduce(tmp_path / "rep", top=top)
    _refused(out, str(out / "summary.json") + " experiments[1]")
    _no_secret_in(out)


def test_report_refuses_an_experiment_symlink_pointing_outside(tmp_path):
    _outside(tmp_path)
    top = _reproduce_summary(["exp-a", "linked"])
    out = _make_reproduce(tmp_path / "rep", top=top, extra=_link_outside_exp(tmp_path))
    _refused(out, "experiments[1]", "outside the run directory")
    _no_secret_in(out)


def test_report_refuses_a_summary_symlink_pointing_outside(tmp_path):
    outside = _outside(tmp_path)

    def link(tmp):
        (tmp / "exp-a" / "summary.json").unlink()
        os.symlink(outside / "summary.json", tmp / "exp-a" / "summary.json")

    out = _make_reproduce(tmp_path / "rep", extra=link)
    _refused(out, "summary.json", "outside the run directory")
    _no_secret_in(out)


@pytest.mark.parametrize("entry", ["../outside-exp", "{root}/outside-exp", ".", "linked"])
def test_load_run_children_stay_inside(tmp_path, entry):
    """``condensation.load_run`` follows no ``experiments`` entry outside the run
    (``.`` named the run itself: an endless recursion)."""
    _outside(tmp_path)
    top = _reproduce_summary(["exp-a", entry.format(root=tmp_path)])
    out = _make_reproduce(tmp_path / "rep", top=top, extra=_link_outside_exp(tmp_path))
    with pytest.raises(InputError) as e:
        load_run(out)
    assert "experiments[1]" in _one_line(e.value)


def test_load_run_refuses_arrays_and_config_pointing_outside(tmp_path):
    (tmp_path / "secret.npz").write_bytes(b"")
    store.save_arrays(tmp_path / "secret.npz", v=np.arange(3.0))
    (tmp_path / "secret.toml").write_text('token = "secret"\n')
    out = _make_experiment(
        tmp_path / "a", extra=lambda t: os.symlink(tmp_path / "secret.npz", t / "arrays" / "s.npz")
    )
    with pytest.raises(InputError) as e:
        load_run(out)
    assert "s.npz" in _one_line(e.value)
    out = _make_experiment(
        tmp_path / "b", extra=lambda t: os.symlink(tmp_path / "secret.toml", t / "config.toml")
    )
    with pytest.raises(InputError) as e:
        load_run(out)
    assert "config.toml" in _one_line(e.value)


@pytest.mark.parametrize(
    "content,where",
    [
        (b"[1, 2, 3]", "summary.json"),
        (b"[" * 100_000 + b"]" * 100_000, "summary.json"),
    ],
)
def test_load_run_malformed_summary_is_one_line(tmp_path, content, where):
    out = _make_experiment(tmp_path / "a")
    (out / "summary.json").write_bytes(content)
    with pytest.raises(InputError) as e:
        load_run(out)
    assert where in _one_line(e.value)


def test_load_run_malformed_config_is_one_line(tmp_path):
    def bad(t):
        (t / "config.toml").write_text("a = [\n")

    out = _make_experiment(tmp_path / "a", extra=bad)
    with pytest.raises(InputError) as e:
        load_run(out)
    assert "config.toml" in _one_line(e.value)


# ---- 2. a hand-edited summary.json: rendered or one line naming file and key ----------
def _drop(*path):
    def f(s):
        node = s
        for k in path[:-1]:
            node = node[k]
        del node[path[-1]]

    return f


def _set(value, *path):
    def f(s):
        node = s
        for k in path[:-1]:
            node = node[k]
        node[path[-1]] = value

    return f


# (mutation of a valid experiment summary, the key the refusal names; None: renders)
MALFORMED = {
    "no title": (_drop("title"), "title"),
    "no name": (_drop("name"), "name"),
    "no story": (_drop("story"), None),
    "no figures": (_drop("figures"), None),
    "figure without file": (_drop("figures", 0, "file"), "figures[0].file"),
    "figure without caption": (_drop("figures", 0, "caption"), None),
    "title a number": (_set(5, "title"), "title"),
    "name null": (_set(None, "name"), "name"),
    "story a list": (_set(["a"], "story"), "story"),
    "section a list": (_set(["scaling"], "section"), "section"),
    "section unknown": (_set("elsewhere", "section"), None),
    "figures a dict": (_set({"file": "figures/line.png"}, "figures"), "figures"),
    "figure a string": (_set("figures/line.png", "figures", 0), "figures[0]"),
    "figure file a number": (_set(3, "figures", 0, "file"), "figures[0].file"),
    "figure numbers a string": (_set("slope", "figures", 0, "numbers"), "figures[0].numbers"),
    "figure numbers numbers": (_set([1, 2], "figures", 0, "numbers"), "figures[0].numbers[0]"),
    "figure missing on disk": (_set("figures/nope.png", "figures", 0, "file"), "figures[0].file"),
    "figure not a png": (_set("summary.json", "figures", 0, "file"), "figures[0].file"),
    "figure a folder": (_set("figures", "figures", 0, "file"), "figures[0].file"),
    "figure the run itself": (_set(".", "figures", 0, "file"), "figures[0].file"),
    "headline a list": (_set([1, 2], "headline"), "headline"),
    "headline null": (_set(None, "headline"), "headline"),
    "headline deep": (_set({"x": json.loads("[" * 40 + "]" * 40)}, "headline"), "headline"),
    "params a string": (_set("k=2", "params"), "params"),
    "params null": (_set(None, "params"), "params"),
    "other_numbers a dict": (_set({"a": 1}, "other_numbers"), "other_numbers"),
    "other_numbers nulls": (_set([None], "other_numbers"), "other_numbers[0]"),
    "quick a string": (_set("yes", "quick"), "quick"),
    "huge title": (_set("T" * 2_000_000, "title"), None),
    "huge number": (_set(1e308 * 10, "headline", "exp_a.slope"), None),
    "huge integer": (_set(10**4000, "headline", "exp_a.slope"), None),
    "control characters": (_set("a\nb\x1b[2J\x00c", "title"), None),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_report_malformed_experiment_summary(tmp_path, case):
    mutate, key = MALFORMED[case]
    s = _experiment_summary()
    mutate(s)
    out = _make_reproduce(tmp_path / "rep", child=s)
    if key is None:
        page = render_report(out).read_text(encoding="utf-8")
        assert page.startswith("<!DOCTYPE html>") and "\x1b" not in page
        return
    _refused(out, str(out / "exp-a" / "summary.json") + " " + key)
    assert not (out / "report.html").exists()


@pytest.mark.parametrize(
    "content,expect",
    [
        (b"\xff\xfe\x00{", "not UTF-8"),
        (b'{"kind": "experiment", ', "not valid JSON"),
        (b"[]", "must be a JSON object"),
        (b"null", "must be a JSON object"),
        (b'"experiment"', "must be a JSON object"),
        (b"[" * 100_000 + b"]" * 100_000, "not valid JSON"),
        (b'{"kind": "experiment", "x": ' + b"9" * 5000 + b"}", "not valid JSON"),
    ],
)
def test_report_child_summary_not_an_object(tmp_path, content, expect):
    def edit(t):
        (t / "exp-a" / "summary.json").write_bytes(content)

    out = _make_reproduce(tmp_path / "rep", extra=edit)
    msg = _refused(out, expect)
    assert "exp-a" in msg


@pytest.mark.parametrize(
    "top,key",
    [
        ({"kind": "reproduce", "experiments": "exp-a"}, "experiments"),
        ({"kind": "reproduce", "experiments": [["exp-a"]]}, "experiments[0]"),
        ({"kind": "reproduce", "experiments": [None]}, "experiments[0]"),
        ({"kind": "reproduce", "experiments": ["exp-a"], "quick": "yes"}, "quick"),
        ({"kind": "experiment", "name": "x", "title": "y", "figures": {}}, "figures"),
    ],
)
def test_report_malformed_top_summary(tmp_path, top, key):
    out = _make_reproduce(tmp_path / "rep", top=top)
    _refused(out, key)


@pytest.mark.parametrize(
    "case", ["no title", "figures a dict", "headline a list", "section a list"]
)
def test_cli_report_malformed_summary_one_line_exit_2(tmp_path, cli_main, case):
    mutate, key = MALFORMED[case]
    s = _experiment_summary()
    mutate(s)
    out = _make_experiment(tmp_path / "run", s)
    code, err = cli_main("report", str(out))
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error:"), err
    assert key in lines[0] and "summary.json" in lines[0]


# ---- 2b. report.html only where it is ours to write --------------------------------
def test_report_html_a_folder_is_refused(tmp_path, cli_main):
    out = _make_experiment(tmp_path / "run", extra=lambda t: (t / "report.html").mkdir())
    (out / "report.html" / "keep.txt").write_text("mine")
    _refused(out, "report.html")
    code, err = cli_main("report", str(out))
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert (out / "report.html" / "keep.txt").read_text() == "mine"


def test_report_html_symlink_is_refused(tmp_path):
    (tmp_path / "elsewhere.html").write_text("mine")
    out = _make_experiment(
        tmp_path / "run", extra=lambda t: os.symlink(tmp_path / "elsewhere.html", t / "report.html")
    )
    _refused(out, "report.html")
    assert (out / "report.html").is_symlink()


def test_report_never_replaces_a_report_it_did_not_write(tmp_path):
    """A marked run holding a report.html its manifest does not list (the user's)."""
    out = _make_experiment(tmp_path / "run")
    (out / "report.html").write_text("my own notes")
    _refused(out, "report.html", "nothing was changed")
    assert (out / "report.html").read_text() == "my own notes"


def test_report_refuses_a_directory_without_our_marker(tmp_path):
    """A user's folder that looks like a run (a summary.json and figures) but was not
    written by condensation: its report.html is never replaced."""
    d = tmp_path / "mine"
    _write_experiment(d)
    (d / "report.html").write_text("my own page")
    _refused(d, ".condensation-run")
    assert (d / "report.html").read_text() == "my own page"
    (d / "report.html").unlink()
    _refused(d, ".condensation-run")
    assert not (d / "report.html").exists()


def test_report_rerender_of_our_run_still_works_and_is_listed(tmp_path):
    out = _make_reproduce(tmp_path / "rep")
    first = render_report(out).read_bytes()
    assert "report.html" in store.read_marker(out)["files"]
    assert render_report(out).read_bytes() == first  # ours now: re-rendered in place
    page = first.decode()
    assert page.count('src="data:image/png;base64,') == 1 and "&lt;with&gt;" in page


def test_report_write_failure_is_one_line_and_leaves_nothing(tmp_path, monkeypatch):
    import errno

    import condensation.report.html as H

    out = _make_experiment(tmp_path / "run")
    before = _snapshot(out)

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(H, "add_to_manifest", full)
    with pytest.raises(InputError) as e:
        render_report(out)
    assert "No space left" in _one_line(e.value)
    assert _snapshot(out) == before


# ---- resume reuses only well-formed experiment runs --------------------------------
def _fake_experiment_module():
    from condensation import experiments as X

    mod = types.ModuleType("fake_trust_report")
    mod.NAME, mod.TITLE, mod.SECTION = "fake-exp", "Fake", "scaling"
    mod.STORY, mod.DEFAULTS, mod.QUICK = "story", {"k": 2}, {}
    mod.FIGURES = (X.Figure("figures/line.png", "a line", ("slope",)),)

    def run(params, out_dir: Path, progress):
        (out_dir / "figures" / "line.png").write_bytes(_png())
        return {"slope": float(params["k"])}

    mod.run = run
    return X.from_module(mod)


def test_resume_recomputes_a_hand_edited_experiment(tmp_path, monkeypatch):
    from condensation import experiments as X
    from condensation.reproduction import reproduce

    exp = _fake_experiment_module()
    monkeypatch.setattr(X, "registry", lambda: {exp.name: exp})
    out = tmp_path / "rep"
    reproduce(out, workers=1)
    p = out / "fake-exp" / "summary.json"
    s = json.loads(p.read_text())
    del s["headline"]  # hand-edited, still listed in the manifest
    p.write_text(json.dumps(s))
    top = reproduce(out, workers=1, resume=True)
    assert top["reused"] == [] and top["headline"]["fake-exp"] == {"fake_exp.slope": 2.0}


# ---- 3. property: any mutation of a valid run is rendered or refused in one line ------
_PATHS = st.sampled_from(
    ["../secret.png", "{root}/secret.png", "figures/link.png", "../outside-exp", "linked", ".", ""]
)
_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12)
    | _PATHS,
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=6), c, max_size=3),
    max_leaves=6,
)


def _nodes(v, path=()):
    """Every ``(path, value)`` inside the JSON value ``v`` (the root included)."""
    yield path, v
    if isinstance(v, dict):
        for k, x in v.items():
            yield from _nodes(x, (*path, k))
    elif isinstance(v, list):
        for i, x in enumerate(v):
            yield from _nodes(x, (*path, i))


def _mutate(doc, data, root: Path):
    """Drop or replace one to three nodes of ``doc`` (the root: a new JSON value)."""
    for _ in range(data.draw(st.integers(1, 3))):
        nodes = list(_nodes(doc))
        path, _v = data.draw(st.sampled_from(nodes))
        value = data.draw(_json)
        if isinstance(value, str):
            value = value.format(root=root) if "{root}" in value else value
        if not path:
            doc = value
            continue
        parent = doc
        for k in path[:-1]:
            parent = parent[k]
        if data.draw(st.booleans()):
            del parent[path[-1]]
        else:
            parent[path[-1]] = value
    return doc


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), target=st.sampled_from(["top", "child", "experiment"]))
def test_property_mutated_summary_rendered_or_refused(data, target):
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        _outside(root)

        def links(t, exp_dir):
            os.symlink(root / "outside-exp", t / "linked")
            os.symlink(root / "secret.png", exp_dir / "figures" / "link.png")

        if target == "experiment":
            doc = _experiment_summary()
            out = _make_experiment(root / "run", extra=lambda t: links(t, t))
            file = out / "summary.json"
        else:
            out = _make_reproduce(root / "rep", extra=lambda t: links(t, t / "exp-a"))
            if target == "top":
                doc, file = _reproduce_summary(), out / "summary.json"
            else:
                doc, file = _experiment_summary(), out / "exp-a" / "summary.json"
        doc = _mutate(copy.deepcopy(doc), data, root)
        file.write_text(json.dumps(doc))
        outside = {
            k: hashlib.sha256(v).hexdigest()
            for k, v in _snapshot(root).items()
            if not k.startswith(out.name + "/")
        }
        inside = _snapshot(out)
        try:
            render_report(out)
        except InputError as e:
            _one_line(e)
            assert _snapshot(out) == inside  # a refusal changes nothing
        else:
            now = _snapshot(out)
            changed = {k for k in set(inside) | set(now) if inside.get(k) != now.get(k)}
            assert changed <= {"report.html", store.MARKER}
        _no_secret_in(out)
        after = {
            k: hashlib.sha256(v).hexdigest()
            for k, v in _snapshot(root).items()
            if not k.startswith(out.name + "/")
        }
        assert after == outside
