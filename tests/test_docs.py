"""The documentation site (mkdocs.yml, docs/) and the README as its front page.

The default run checks, without building anything: the README's size and its two
set-up commands, every link from the README into the site, that every page is in
the site's navigation, and that every public name is documented and on the API
page (a public name without a docstring fails here).  The slow run builds the site
strictly (``make docs`` does the same in CI): every example executed, any broken
link, failed example or griffe warning an error.  The commands the pages show are
run by tests/test_readme.py.
"""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import condensation as C

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
README = ROOT / "README.md"
sys.path.insert(0, str(DOCS / "_scripts"))
import runnable  # noqa: E402

# Public names and members of public classes that have no docstring of their own
# today (a dataclass's generated signature is not one; they are to be written in the
# modules that define them: remove a name here once it has one).  Any other public
# name or member without a docstring fails the test.
UNDOCUMENTED: set[str] = set()  # public names allowed without a docstring: none


def _nav_pages(node) -> list[str]:
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        return [p for v in node.values() for p in _nav_pages(v)]
    return [p for item in node for p in _nav_pages(item)]


def _nav() -> list[str]:
    text = (ROOT / "mkdocs.yml").read_text()
    nav = text.split("\nnav:\n", 1)[1].split("\n\n", 1)[0]
    return re.findall(r":\s*(\S+\.md)\s*$", nav, re.M)


def test_readme_is_a_front_page_with_the_two_commands():
    text = README.read_text()
    assert len(text.splitlines()) < 150
    first = next(body for lang, _, body in runnable.code_blocks(text) if lang == "bash")
    lines = [ln.split("#")[0].strip() for ln in first.splitlines() if ln.strip()]
    assert lines == ["make demo", "make test"]
    make = (ROOT / "Makefile").read_text()
    assert "condensation reproduce" in make.split("\ndemo:", 1)[1].split("\n\n")[0]
    for target in ("docs", "docs-serve"):
        assert re.search(rf"^{target}: ", make, re.M), target


def test_readme_links_into_the_site_resolve():
    links = re.findall(r"\]\((docs/[^)#\s]*)", README.read_text())
    assert len(links) >= 20  # every section of the site is linked
    missing = [link for link in links if not (ROOT / link).exists()]
    assert not missing
    in_site = {f"docs/{p}" for p in _nav()}
    pages = {link for link in links if link.endswith(".md")}
    assert pages <= in_site, pages - in_site


def test_every_page_is_in_the_navigation_and_exists():
    nav = _nav()
    assert len(nav) == len(set(nav)) >= 20
    assert all((DOCS / p).is_file() for p in nav), [p for p in nav if not (DOCS / p).is_file()]
    on_disk = {
        p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md") if "_scripts" not in p.parts
    }
    assert on_disk == set(nav), on_disk ^ set(nav)


def _definition(module: str, name: str) -> ast.ClassDef | ast.FunctionDef:
    """The top-level ``def`` or ``class`` of ``name`` in ``module``'s source (read, not
    imported: the lazy part of the API stays unimported)."""
    base = ROOT / "src" / Path(*module.split("."))
    path = base / "__init__.py" if base.is_dir() else base.with_suffix(".py")
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, (ast.ClassDef, ast.FunctionDef)) and node.name == name:
            return node
    raise AssertionError(f"{name} is not defined in {module}")


def test_every_public_name_is_documented_and_on_the_api_page():
    api = (DOCS / "reference" / "api.md").read_text()
    listed = re.findall(r"^::: ([\w.]+)$", api, re.M)
    assert len(listed) == len(set(listed))
    where = {path.rsplit(".", 1)[1]: path.rsplit(".", 1)[0] for path in listed}
    assert set(where) == set(C.__all__), set(where) ^ set(C.__all__)
    missing = set()
    for name in C.__all__:
        lazy = C._LAZY.get(name)
        home = lazy if lazy else vars(C)[name].__module__
        assert where[name] == home or where[name].startswith(home + "."), (name, home)
        node = _definition(where[name], name)
        if not ast.get_docstring(node):
            missing.add(name)
        if isinstance(node, ast.ClassDef):
            for member in node.body:
                if isinstance(member, ast.FunctionDef) and not member.name.startswith("_"):
                    if not ast.get_docstring(member):
                        missing.add(f"{name}.{member.name}")
    assert missing <= UNDOCUMENTED, f"no docstring: {sorted(missing - UNDOCUMENTED)}"


def test_every_command_of_the_cli_has_help_and_is_in_its_reference():
    import typer

    from condensation.cli import app

    group = typer.main.get_command(app)
    assert set(group.commands) >= {"train", "effective", "run", "reproduce", "report", "matrix"}
    for name, command in group.commands.items():
        assert (command.help or "").strip(), f"`condensation {name}` has no help text"
    cli = (DOCS / "reference" / "cli.md").read_text()
    assert "::: mkdocs-click" in cli and ":module: cli_reference" in cli


def test_examples_write_outside_the_repository():
    """Every executed Python example writes relative paths (the build runs them in a
    scratch folder), and every ``runs/`` name is used by one session only."""
    owners: dict[str, str] = {}
    for page in runnable.pages():
        for lang, attrs, body in runnable.code_blocks(page.read_text()):
            if lang != "python" or "exec=" not in attrs:
                continue
            assert "/work/" not in body and str(ROOT) not in body
            session = re.search(r'session="([^"]+)"', attrs)
            who = f"{page.name}:{session[1] if session else '?'}"
            for out in re.findall(r'"(runs/[\w.-]+)"', body):
                assert owners.setdefault(out, who) == who, (out, owners[out], who)
    assert owners  # the pages do run examples


@pytest.mark.slow
def test_the_site_builds_strictly_with_every_example(tmp_path):
    """``mkdocs build --strict``: every page, every executed example (the commands in
    their quick variants, the Python blocks as written), the API and CLI references."""
    pytest.importorskip("mkdocs", reason="the docs extra: pip install -e '.[docs]'")
    mkdocs = shutil.which("mkdocs", path=str(Path(sys.executable).parent))
    assert mkdocs
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    site = tmp_path / "site"
    r = subprocess.run(
        [mkdocs, "build", "--strict", "-d", str(site)],
        cwd=ROOT, capture_output=True, text=True, env=env, timeout=1200,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-4000:]
    for page in ["getting-started", "how-to/dataframes", "reference/api", "reference/cli"]:
        html = (site / page / "index.html").read_text()
        assert "Traceback" not in html, page
    assert "<img" in (site / "getting-started" / "index.html").read_text()
    assert "load_run" in (site / "reference" / "api" / "index.html").read_text()
    assert "--compare-gd" in (site / "reference" / "cli" / "index.html").read_text()


def test_a_failing_example_fails_the_build(monkeypatch):
    """The build's hook runs each command of a page's bash blocks and turns a
    non-zero exit into a build error; a passing one gets its output box."""
    pytest.importorskip("mkdocs", reason="the docs extra: pip install -e '.[docs]'")
    import hooks
    from mkdocs.exceptions import PluginError

    class Page:
        class file:  # noqa: N801
            src_uri = "x.md"

    monkeypatch.chdir(ROOT)
    hooks.on_pre_build(None)
    try:
        bad = "```bash\n.venv/bin/condensation train configs/no-such.toml --out runs/x\n```\n"
        with pytest.raises(PluginError, match="no-such.toml"):
            hooks.on_page_markdown(bad, Page, None, None)
        ok = "```bash\n.venv/bin/condensation train --help\n```\n"
        assert "ran when this page was built" in hooks.on_page_markdown(ok, Page, None, None)
    finally:
        hooks.on_post_build(None)
    assert Path.cwd() == ROOT
