"""MkDocs hooks of the site (``hooks:`` in mkdocs.yml): every example runs while the
site builds.

* Before the pages are built the working directory becomes a scratch folder whose
  ``configs`` links to the repository's, so that the pages' examples (markdown-exec
  ``exec="on"`` Python blocks and the commands below) read ``configs/...`` as shown
  and write ``runs/...`` there, never into the repository; it is removed after the
  build.
* Every ``condensation`` command of a page's plain ``bash`` blocks is run in its
  quick variant (``runnable.quick_variant``: a few steps, ``--quick``, outputs in
  the scratch folder) in this process, and its console output is shown under the
  block in a folded box.  A command that fails fails the build.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from mkdocs.exceptions import PluginError

HERE = str(Path(__file__).resolve().parent)
sys.path.insert(0, HERE)  # for the import below (mkdocs restores sys.path after it)
import runnable  # noqa: E402

_state: dict = {}


def on_config(config, **kwargs):
    if HERE not in sys.path:  # mkdocs-click imports cli_reference from here
        sys.path.insert(0, HERE)
    return config


def on_pre_build(config, **kwargs) -> None:
    scratch = Path(tempfile.mkdtemp(prefix="condensation-docs-"))
    (scratch / "configs").symlink_to(runnable.ROOT / "configs")
    _state.update(scratch=scratch, home=os.getcwd(), seen={}, started=time.time())
    os.environ.setdefault("MPLBACKEND", "Agg")
    os.chdir(scratch)


def _finish() -> None:
    if "home" in _state:
        os.chdir(_state.pop("home"))
    scratch = _state.pop("scratch", None)
    if scratch is not None:
        shutil.rmtree(scratch, ignore_errors=True)


def on_post_build(config, **kwargs) -> None:
    took = time.time() - _state.get("started", time.time())
    _finish()
    print(f"INFO    -  every example ran ({took:.0f} s since the build started)")


def on_build_error(error, **kwargs) -> None:
    _finish()


def _run(argv: list[str]) -> tuple[int, str, float]:
    """One command in its quick variant, in this process: (exit status, output, s)."""
    from condensation.cli import main

    args = runnable.quick_variant(argv, Path("cli"))  # cli/runs/... in the scratch folder
    only = [a for name in runnable.REPRODUCE_DEFAULT_ONLY for a in ("--only", name)]
    if argv[0] == "reproduce":
        args += only
    if argv[0] == "report" and not (Path(args[1]) / "summary.json").is_file():
        made = _run(["reproduce", "--quick", "--out", args[1]])  # what it re-renders
        if made[0] != 0:
            return made
    out = io.StringIO()
    old = sys.argv
    sys.argv = ["condensation", *args]
    start = time.time()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            try:
                main()
                code = 0
            except SystemExit as e:
                code = e.code if isinstance(e.code, int) else 1
    finally:
        sys.argv = old
    return code, out.getvalue(), time.time() - start


def _box(argv: list[str], output: str, took: float) -> str:
    """A folded box under the block: the command, how it was made quick, its output."""
    added = list(runnable.QUICK.get(argv[0], []))
    if argv[0] == "reproduce":
        added += [a for name in runnable.REPRODUCE_DEFAULT_ONLY for a in ("--only", name)]
    extra = " ".join(added)
    cmd = "condensation " + " ".join(argv)
    title = f"{cmd} — ran when this page was built ({took:.1f} s)".replace('"', "'")
    how = f"Quick variant: `{extra}` appended" if extra else "As shown"
    if "--scheduler" in argv:
        how += ", `--scheduler` dropped (the sweep runs in this process)"
    how += "; outputs in a scratch folder."
    lines = output.strip().splitlines()[-25:] or ["(no output)"]
    body = "\n".join("        " + ln for ln in lines)
    return f'??? success "{title}"\n    {how}\n\n    ```text\n{body}\n    ```\n'


def on_page_markdown(markdown: str, page, config, files) -> str:
    pieces, last = [], 0
    for m in runnable.FENCE.finditer(markdown):
        lang, attrs = m[1], m[2].strip()
        if lang not in ("bash", "sh") or attrs:
            continue
        boxes = []
        for argv in runnable.commands_in(m[0]):
            key = tuple(argv)
            if key in _state["seen"]:
                cmd = "condensation " + " ".join(argv)
                where = _state["seen"][key]
                boxes.append(f'!!! note "{cmd} — ran earlier in this build (on {where})"\n')
                continue
            code, output, took = _run(argv)
            if code != 0:
                raise PluginError(
                    f"{page.file.src_uri}: `condensation {' '.join(argv)}` (quick variant) "
                    f"exited {code}:\n{output[-3000:]}"
                )
            _state["seen"][key] = page.file.src_uri
            boxes.append(_box(argv, output, took))
        if boxes:
            pieces += [markdown[last : m.end()], "\n\n", "\n".join(boxes)]
            last = m.end()
    pieces.append(markdown[last:])
    return "".join(pieces)
