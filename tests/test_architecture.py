"""The tree reads as the architecture (docs/ARCHITECTURE.md): files and functions short
enough to read at once, imports that flow cli -> ensemble -> workers -> manifests and never
back, and no import circle, not even one hidden inside a function."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parent.parent
LAYERS = {"manifests": 0, "workers": 1, "ensemble": 2, "cli": 3}
"""Lower layers never import higher ones."""
MAX_FILE_LINES = 400
MAX_FUNCTION_LINES = 60


def _project_files() -> list[Path]:
    files = [ROOT / "cli.py"]
    for package in ("ensemble", "workers", "manifests"):
        files += sorted((ROOT / package).rglob("*.py"))
    return files


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {_module_name(path): path for path in _project_files()}


def _imported_modules(path: Path) -> set[str]:
    """Every project module a file imports, at any depth (function-level imports included)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            # `from a.b import c` imports module a.b.c when c is one, else names in a.b
            names = [f"{node.module}.{alias.name}" if f"{node.module}.{alias.name}" in MODULES else node.module
                     for alias in node.names]  # fmt: skip
        else:
            continue
        found.update(name for name in names if name in MODULES)
    return found


GRAPH = {name: _imported_modules(path) for name, path in MODULES.items()}


def _layer(module: str) -> int:
    return LAYERS[module.split(".")[0]]


def test_no_file_is_longer_than_the_limit():
    files = [ROOT / "cli.py", *sorted(ROOT.glob("*/**/*.py"))]
    long = {str(p.relative_to(ROOT)): n for p in files if ".venv" not in p.parts
            and (n := len(p.read_text().splitlines())) > MAX_FILE_LINES}  # fmt: skip
    assert not long, f"files over {MAX_FILE_LINES} lines: {long}"


def test_no_function_is_longer_than_the_limit():
    long = []
    for path in [ROOT / "cli.py", *sorted(ROOT.glob("*/**/*.py"))]:
        if ".venv" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({length} lines)")
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines: {long}"


def test_imports_flow_down_the_layers():
    upward = [f"{module} imports {imported}" for module, imports in GRAPH.items() for imported in sorted(imports)
              if _layer(imported) > _layer(module)]  # fmt: skip
    assert not upward, upward


def test_no_import_circle():
    """Tarjan's strongly connected components over the module graph: any with two or more
    modules is a circle."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    circles: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        for imported in GRAPH[module]:
            if imported not in index:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in stack:
                low[module] = min(low[module], index[imported])
        if low[module] == index[module]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == module:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for module in sorted(GRAPH):
        if module not in index:
            visit(module)
    assert not circles, f"import circles: {circles}"


def test_every_package_says_what_it_holds():
    silent = [name for name, path in MODULES.items() if path.name == "__init__.py"
              and not ast.get_docstring(ast.parse(path.read_text()))]  # fmt: skip
    assert not silent, f"packages without a docstring: {silent}"


def test_the_checks_see_the_whole_tree():
    """The graph the checks above walk holds the known modules and their edges (a parse that
    found nothing would pass every check)."""
    assert {"cli", "ensemble", "workers", "manifests", "manifests.run_dir"} <= set(MODULES)
    assert "manifests.run_dir" in GRAPH["cli"] or any("manifests" in m for m in GRAPH["cli"])
    assert sum(len(imports) for imports in GRAPH.values()) > 100
