"""The house's shape, read from the source (issue 21 item 5): imports flow one way,
no private name crosses a module, no module is over ~400 lines."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "condensation"

# Layers, lowest first: a module may import its own layer and those below it.
LAYERS = {
    "errors": 0, "jax_setup": 0, "progress": 0, "engine": 0, "core": 0, "datasets": 0,
    "interrupts": 0,
    "config": 1, "data": 1, "models": 1,
    "training": 2, "effective": 2, "matrix": 2, "store": 2,
    "commands": 3,
    "experiments": 4, "sweep": 4,
    "report": 5, "reproduction": 5,
    "cli": 6, "runs": 6, "__init__": 7, "__main__": 7,
}  # fmt: skip
# Modules whose layer is not their folder's: the figure style every command and
# experiment draws with (matplotlib set-up, saving) sits below them.
LAYER_OF_MODULE = {"report.figures": 2}
# (importer, imported) pairs that run upward, each with the reason it stays
UPWARD_ALLOWED: dict[tuple[str, str], str] = {
    ("condensation.commands.matrix", "condensation.experiments.matrix_completion"): (
        "deprecation shim: the experiment's old names forward, with a warning, for one release"
    ),
}
MAX_LINES = 400
LONG_ALLOWED: dict[str, str] = {}


def _modules() -> list[Path]:
    return sorted(SRC.rglob("*.py"))


def _name(path: Path) -> str:
    rel = path.relative_to(SRC).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts = parts[:-1]
    return ".".join(["condensation", *parts])


def _layer(module: str) -> int:
    parts = module.split(".")[1:]
    for k in range(len(parts), 0, -1):
        if ".".join(parts[:k]) in LAYER_OF_MODULE:
            return LAYER_OF_MODULE[".".join(parts[:k])]
    return LAYERS[parts[0] if parts else "__init__"]


def _imports(path: Path) -> list[tuple[str, list[str], int]]:
    """(imported module, names imported from it, line) for every import of the package."""
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "condensation" or node.module.startswith("condensation."):
                out.append((node.module, [a.name for a in node.names], node.lineno))
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("condensation."):
                    out.append((a.name, [], node.lineno))
    return out


def _target(module: str, names: list[str]) -> list[str]:
    """The modules an import reaches: ``from condensation.x import y`` reaches
    ``condensation.x.y`` where that is a module, else ``condensation.x``."""
    reached = []
    for n in names or [""]:
        sub = f"{module}.{n}" if n else module
        rel = Path(*sub.split(".")[1:])
        is_module = (SRC / rel).with_suffix(".py").exists() or (SRC / rel / "__init__.py").exists()
        reached.append(sub if n and is_module else module)
    return sorted(set(reached))


def test_every_top_level_name_has_a_layer():
    tops = {p.relative_to(SRC).parts[0].removesuffix(".py") for p in _modules()}
    assert tops <= set(LAYERS), tops - set(LAYERS)


def test_imports_flow_one_way():
    bad = []
    for path in _modules():
        me = _name(path)
        for module, names, line in _imports(path):
            for target in _target(module, names):
                if target == "condensation":
                    continue  # the package itself (its lazy public API)
                if _layer(target) > _layer(me) and (me, target) not in UPWARD_ALLOWED:
                    bad.append(f"{me}:{line} imports {target}")
    assert not bad, "\n".join(bad)


def test_no_private_name_crosses_a_module():
    bad = []
    for path in _modules():
        me = _name(path)
        tree = ast.parse(path.read_text())
        aliases = {}  # local name -> module of the package it is bound to
        for module, names, line in _imports(path):
            for n in names:
                if n.startswith("_") and not n.startswith("__") and module != me:
                    bad.append(f"{me}:{line} imports {module}.{n}")
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                for a in node.names:
                    sub = f"{node.module}.{a.name}"
                    if sub in {_name(p) for p in _modules()}:
                        aliases[a.asname or a.name] = sub
            elif isinstance(node, ast.Import):
                for a in node.names:
                    if a.name.startswith("condensation.") and a.asname:
                        aliases[a.asname] = a.name
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in aliases
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
                and aliases[node.value.id] != me
            ):
                bad.append(f"{me}:{node.lineno} uses {aliases[node.value.id]}.{node.attr}")
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(SRC)))
def test_no_module_is_over_400_lines(path):
    rel = str(path.relative_to(SRC))
    n = len(path.read_text().splitlines())
    if rel in LONG_ALLOWED:
        pytest.skip(f"{rel}: {n} lines: {LONG_ALLOWED[rel]}")
    assert n <= MAX_LINES, f"{rel} has {n} lines"


def test_tests_mirror_the_packages():
    """Each folder of tests/ is a package of condensation (tests/training/ tests
    condensation.training ...); cross-cutting tests stay at the top of tests/."""
    tests = Path(__file__).resolve().parent
    folders = {p.name for p in tests.iterdir() if p.is_dir() and not p.name.startswith((".", "_"))}
    packages = {p.parent.name for p in SRC.glob("*/__init__.py")}
    assert folders, "tests are not grouped by package"
    assert folders <= packages, sorted(folders - packages)
    for folder in folders:
        assert list((tests / folder).glob("test_*.py")), f"tests/{folder} holds no tests"
