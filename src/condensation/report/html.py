"""The HTML report: one self-contained page rendered purely from stored files.

:func:`render_report` reads ``DIR/summary.json`` (kind ``reproduce`` or
``experiment``), each experiment's ``summary.json`` and its PNG figures, and
writes ``DIR/report.html`` (temporary file + rename).  The page depends on
nothing else — no clock, no paths, no environment — so rendering the same
directory twice gives the same bytes.  Figures are embedded as base64 PNG; the
page loads no external resource.
"""

from __future__ import annotations

import base64
import html
import os
from pathlib import Path
from typing import Any

from condensation.errors import InputError
from condensation.experiments import SECTIONS
from condensation.report.schema import check_experiment, check_reproduce
from condensation.store.load_run import child, confined, read_bytes, read_json, shown
from condensation.store.rundir import (
    MARKER,
    SUMMARY,
    add_to_manifest,
    atomic_write_bytes,
    read_marker,
)

REPORT = "report.html"

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;max-width:1200px;margin:2em auto;
padding:0 1em;color:#222;line-height:1.45}
h1{font-size:1.6em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:2em}
h3{margin-top:1.5em}
.fig{margin:1em 0 1.6em}
.fig figure{margin:0;max-width:1100px}
.fig img{display:block;width:100%;max-width:1100px;height:auto;border:1px solid #eee}
.fig a.zoom{display:block;cursor:zoom-in}
.fig a.close{display:none}
.fig figure:target{position:fixed;inset:0;z-index:10;max-width:none;margin:0;display:flex;
align-items:center;justify-content:center;background:rgba(20,20,20,.88)}
.fig figure:target img{width:98vw;max-width:none;max-height:96vh;object-fit:contain;
background:#fff}
.fig figure:target figcaption{display:none}
.fig figure:target a.close{display:block;position:fixed;inset:0;cursor:zoom-out}
figcaption{font-size:.88em;color:#444;margin-top:.3em;max-width:1100px}
table{border-collapse:collapse;font-size:.85em}
td,th{border:1px solid #ddd;padding:.2em .5em;text-align:left;vertical-align:top}
td.num{font-family:ui-monospace,Menlo,Consolas,monospace;text-align:right;white-space:nowrap}
.nums{margin-top:.6em}
.story{max-width:900px}
.note{color:#555;font-size:.9em}
details{margin:.5em 0}
"""

_SETUP = """
<p class="story">Networks <code>f(x) = a<sup>T</sup> &sigma;(W &sigma;(B x))</code>
(three layers; two layers: <code>a<sup>T</sup> &sigma;(B x)</code>) with tanh activations
are trained by full-batch gradient descent on <code>R = (1/2n) &Sigma;<sub>i</sub>
(f(x<sub>i</sub>) &minus; y<sub>i</sub>)<sup>2</sup></code> from i.i.d.
<code>N(0, eps<sup>2</sup>)</code> weights with small <code>eps</code>. Time is
<code>t = step &times; lr</code>. The <em>teacher set</em> has <code>n</code> points
<code>x ~ U[-1, 1]<sup>d</sup></code>, <code>y = tanh(w*&middot;x) + 0.3 sin(3
x<sub>1</sub>)</code> (by default <code>n = 100</code>, <code>d = 5</code>); each
experiment names the data it used below its story, and the table of data lists them
all (an experiment without a data set draws its effective states itself). The target
direction is
<code>z = (1/n) &Sigma;<sub>i</sub> y<sub>i</sub> x<sub>i</sub></code>; while all weights
are small, training follows the <em>effective dynamics</em>, gradient ascent of
<code>E = a<sup>T</sup> W B z</code>, which grows exponentially for two layers and blows
up in finite time for three. The <em>escape time</em> is the first time the loss has
halved; a first-layer weight <code>b<sub>j</sub></code> is <em>condensed</em> when it is
aligned with <code>&plusmn;z</code>.</p>
<p class="note">The formulas follow docs/THEORY.md, a reconstruction of Chen &amp; Luo,
arXiv 2402.15958, derived from first principles; the paper's exact statements may
differ.</p>
"""


def _fmt(v: Any) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return f"{v:.6g}"
    if isinstance(v, list):
        return "[" + ", ".join(_fmt(x) for x in v) + "]"
    return str(v)


_CONTROL = {c: f"\\x{c:02x}" for c in (*range(0x20), 0x7F) if chr(c) not in "\t\n\r"}


def _esc(s: Any) -> str:
    """``s`` as HTML text: markup escaped, control characters (a NUL, an ANSI escape
    from a hand-edited summary) written as visible ``\\xNN``."""
    return html.escape(str(s), quote=True).translate(_CONTROL)


def _numbers_table(headline: dict, keys: list[str]) -> str:
    rows = "".join(
        f'<tr><td>{_esc(k)}</td><td class="num">{_esc(_fmt(headline.get(k)))}</td></tr>'
        for k in keys
    )
    return f"<table><tr><th>number</th><th>value</th></tr>{rows}</table>"


_FIX = "give a directory written by condensation reproduce or condensation run"
_PNG = b"\x89PNG\r\n\x1a\n"


def _read_summary(d: Path, shown_dir: str, what: str) -> Any:
    """The JSON of ``d/summary.json`` (which must lie inside ``d``)."""
    path = d / SUMMARY
    if not os.path.lexists(path):
        raise InputError("DIR", shown_dir, f"not a {what} directory ({SUMMARY} missing)", _FIX)
    return read_json(confined(d, SUMMARY, f"{shown(path)}"), shown(path))


def _load_experiment(d: Path, s: Any, where: str) -> dict:
    """The checked experiment summary with each figure's PNG bytes (``png``) read
    from inside ``d``."""
    s = check_experiment(s, where)
    for i, f in enumerate(s["figures"]):
        field = f"{where} figures[{i}].file"
        path = confined(d, f["file"], field)
        if not os.path.lexists(path):
            raise InputError(field, f["file"], "is missing", "re-run the experiment")
        data = read_bytes(path, field)
        if not data.startswith(_PNG):
            raise InputError(field, f["file"], "is not a PNG image", "re-run the experiment")
        f["png"] = data
    return s


def load_run(directory: str | Path) -> tuple[dict, list[tuple[Path, dict]]]:
    """The top summary and ``(experiment dir, experiment summary)`` pairs of a run,
    checked (:mod:`condensation.report.schema`): every file read lies inside
    ``directory``; each figure carries its PNG bytes as ``png``.

    Raises InputError (one line naming the file and key) when ``directory`` is not a
    reproduce or experiment run, or any of its summaries is malformed.
    """
    d = Path(directory)
    if not d.is_dir():
        raise InputError("DIR", shown(d), "is not a directory", _FIX)
    top = _read_summary(d, shown(d), "reproduce or experiment run")
    where = shown(d / SUMMARY)
    kind = top.get("kind") if isinstance(top, dict) else None
    if kind == "experiment":
        top = _load_experiment(d, top, where)
        exps = [(d, top)]
    elif kind == "reproduce":
        top = check_reproduce(top, where)
        exps = []
        for i, name in enumerate(top["experiments"]):
            field = f"{where} experiments[{i}]"
            sub = child(d, name, field)
            if not sub.is_dir():
                raise InputError(field, name, "is not an experiment run directory", _FIX)
            s = _read_summary(sub, shown(d / name), f"experiment run ({shown(name)})")
            exps.append((sub, _load_experiment(sub, s, shown(d / name / SUMMARY))))
    else:
        raise InputError(
            "DIR",
            shown(d),
            f"is not a reproduce or experiment run directory (its {SUMMARY} has kind "
            f"{_short(kind)})",
            _FIX,
        )
    return top, exps


def _short(v: Any) -> str:
    text = " ".join(repr(v).split())
    return text if len(text) <= 80 else text[:77] + "..."


def _count(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def data_text(s: dict) -> str:
    """The data an experiment used, in words, from its summary's ``data`` (see
    :func:`condensation.experiments.describe_data`): None is no data set; a summary
    without it (or with one the report cannot read) says so."""
    if "data" not in s:
        return "not recorded (a run from before summaries recorded their data)"
    d = s["data"]
    if d is None:
        return "none (this experiment trains on no data set)"
    ok = (
        isinstance(d, dict)
        and isinstance(d.get("name"), str)
        and _count(d.get("n"))
        and _count(d.get("d"))
        and isinstance(d.get("path"), (str, type(None)))
        and isinstance(d.get("teacher"), bool)
        and isinstance(d.get("default"), bool)
    )
    if not ok:
        return "not recorded (the summary's data entry is malformed)"
    if d["teacher"]:
        label = "the teacher set"
    elif d["path"] is not None:
        label = f"{d['name']} (data.path = {d['path']})"
    else:
        label = f"the built-in set {d['name']}"
    tail = (
        "this experiment's default data"
        if d["default"]
        else "given with data.* (the story describes the default data)"
    )
    return f"{label}, n = {d['n']}, d = {d['d']}; {tail}"


def _data_html(exps: list[tuple[Path, dict]]) -> str:
    rows = "".join(
        f"<tr><td>{_esc(s['name'])}</td><td>{_esc(data_text(s))}</td></tr>" for _, s in exps
    )
    return "<table><tr><th>experiment</th><th>data</th></tr>" + rows + "</table>" if exps else ""


def _experiment_html(exp_dir: Path, s: dict) -> str:
    """One experiment's section.  A click on a figure enlarges it to the window (the
    figure is the link's target, shown by CSS over the page; a second click closes
    it): no script, no file outside the page."""
    parts = [
        f'<h3 id="{_esc(s["name"])}">{_esc(s["title"])} '
        f'<span class="note">({_esc(s["name"])})</span></h3>',
        f'<p class="story">{_esc(s["story"])}</p>',
        f'<p class="note">Data: {_esc(data_text(s))}.</p>',
    ]
    head = s["headline"]
    for k, f in enumerate(s["figures"]):
        data = base64.b64encode(f["png"]).decode("ascii")
        fid = _esc(f"fig-{s['name']}-{k + 1}")
        nums = f["numbers"]
        table = f'<div class="nums">{_numbers_table(head, nums)}</div>' if nums else ""
        parts.append(
            f'<div class="fig"><figure id="{fid}">'
            f'<a class="zoom" href="#{fid}" title="click to enlarge">'
            f'<img alt="{_esc(f["file"])}" src="data:image/png;base64,{data}"></a>'
            '<a class="close" href="#_" title="click to close" aria-label="close"></a>'
            f"<figcaption>{_esc(f['caption'])}</figcaption></figure>{table}</div>"
        )
    other = s["other_numbers"]
    if other:
        parts.append(
            f"<details><summary>Other numbers of {_esc(s['name'])}</summary>"
            f"{_numbers_table(head, other)}</details>"
        )
    return "\n".join(parts)


def _params_html(exps: list[tuple[Path, dict]]) -> str:
    rows = []
    for _, s in exps:
        params = s["params"]
        cells = "; ".join(f"{_esc(k)} = {_esc(_fmt(params[k]))}" for k in sorted(params))
        rows.append(f"<tr><td>{_esc(s['name'])}</td><td>{cells}</td></tr>")
    return (
        "<details><summary>Parameters of every experiment</summary><table>"
        "<tr><th>experiment</th><th>parameters</th></tr>" + "".join(rows) + "</table></details>"
    )


def render_html(top: dict, exps: list[tuple[Path, dict]]) -> str:
    """The report page as a string (deterministic in its inputs)."""
    quick = bool(top.get("quick"))
    if top.get("kind") == "reproduce":
        title = "Chen & Luo (2024), three-layer networks: initial condensation — reproduction"
    else:
        title = f"{top['title']} ({top['name']})"
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{_esc(title)}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>{_esc(title)}</h1>",
    ]
    if quick:
        out.append(
            '<p class="note"><strong>Quick mode:</strong> reduced parameters for a fast '
            "check; the numbers are less accurate than those of a full run.</p>"
        )
    toc = "".join(f'<li><a href="#{_esc(s["name"])}">{_esc(s["title"])}</a></li>' for _, s in exps)
    out.append(f"<ul>{toc}</ul>")
    out.append(f'<h2 id="setup">{_esc(SECTIONS["setup"])}</h2>')
    out.append(_SETUP)
    out.append(_data_html(exps))
    out.append(_params_html(exps))
    for key, section_title in SECTIONS.items():
        members = [(d, s) for d, s in exps if s.get("section") == key]
        if not members:
            continue
        if key != "setup":
            out.append(f'<h2 id="section-{_esc(key)}">{_esc(section_title)}</h2>')
        out.extend(_experiment_html(d, s) for d, s in members)
    unknown = [(d, s) for d, s in exps if s.get("section") not in SECTIONS]
    if unknown:
        out.append('<h2 id="section-other">Other experiments</h2>')
        out.extend(_experiment_html(d, s) for d, s in unknown)
    out.append("<h2>Every headline number</h2>")
    rows = "".join(
        f'<tr><td>{_esc(s["name"])}</td><td>{_esc(k)}</td><td class="num">{_esc(_fmt(v))}</td></tr>'
        for _, s in exps
        for k, v in sorted(s["headline"].items())
    )
    out.append(f"<table><tr><th>experiment</th><th>number</th><th>value</th></tr>{rows}</table>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def _page(d: Path) -> bytes:
    top, exps = load_run(d)
    return render_html(top, exps).encode("utf-8")


def write_report(directory: str | Path) -> Path:
    """Write ``directory/report.html`` into a run directory this process is building
    (a staging directory, before its marker is written); returns its path.  To
    re-render a finished run, use :func:`render_report`."""
    d = Path(directory)
    page = _page(d)
    path = d / REPORT
    atomic_write_bytes(path, page)
    return path


def render_report(directory: str | Path) -> Path:
    """(Re-)write ``directory/report.html`` from the stored results; returns its path.

    Only in a run directory condensation wrote (its ``.condensation-run`` marker),
    and only over a ``report.html`` that is a regular file its manifest lists;
    anything else is refused (InputError) with nothing changed.  The new report is
    added to the manifest.
    """
    d = Path(directory)
    page = _page(d)  # every check of the stored files first: nothing written on a refusal
    fix = "re-render a directory written by condensation run or condensation reproduce"
    marker = None if os.path.islink(d / MARKER) else read_marker(d)
    if marker is None:
        raise InputError(
            "DIR",
            shown(d),
            f"was not written by condensation (no {MARKER} marker), so its {REPORT} is not "
            "ours to write; nothing was changed",
            fix,
        )
    path = d / REPORT
    listed = REPORT in marker["files"]
    if os.path.lexists(path) and not (path.is_file() and not path.is_symlink() and listed):
        raise InputError(
            "DIR",
            shown(d),
            f"holds a {REPORT} that condensation did not write (not a regular file listed "
            f"in its {MARKER} manifest); nothing was changed",
            f"move {shown(path)} away, then run condensation report again",
        )
    existed = os.path.lexists(path)
    try:
        atomic_write_bytes(path, page)
        if not listed:
            add_to_manifest(d, REPORT)  # a finished run's manifest then lists its new report
    except OSError as e:
        if not existed and not listed:
            path.unlink(missing_ok=True)  # the report this call wrote, unlisted: not kept
        raise InputError(
            "DIR", shown(d), f"cannot write {REPORT} ({e.strerror or e})", fix
        ) from None
    return path
