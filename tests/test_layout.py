"""The package's layout: imports run one way (no module imports, even lazily, one that
imports it back) and no module takes a `_private` name from another package."""

from __future__ import annotations

import ast
from pathlib import Path

import factscope

SRC = Path(factscope.__file__).parent.parent


def _modules() -> dict[str, Path]:
    modules = {}
    for path in sorted((SRC / "factscope").rglob("*.py")):
        parts = path.relative_to(SRC).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def _package(module: str, path: Path) -> str:
    return module if path.name == "__init__.py" else module.rpartition(".")[0]


def _imports(module: str, path: Path) -> list[tuple[str, str | None]]:
    """(module imported from, name imported or None) for every factscope import in the
    file, at any depth (a lazy import inside a function counts)."""
    found: list[tuple[str, str | None]] = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = _package(module, path).split(".")
                parts = parts[: len(parts) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            if base.split(".")[0] == "factscope":
                found += [(base, alias.name) for alias in node.names]
        elif isinstance(node, ast.Import):
            found += [(a.name, None) for a in node.names if a.name.split(".")[0] == "factscope"]
    return found


def import_graph() -> dict[str, set[str]]:
    """module -> the factscope modules it imports (`from pkg import module` included)."""
    modules = _modules()

    def resolve(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {m: set() for m in modules}
    for module, path in modules.items():
        for base, name in _imports(module, path):
            target = f"{base}.{name}" if name and f"{base}.{name}" in modules else base
            resolved = resolve(target)
            if resolved is not None and resolved != module:
                graph[module].add(resolved)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[frozenset[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(frozenset(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_graph_sees_the_imports() -> None:
    graph = import_graph()
    assert "factscope.locate.corruption" in graph["factscope.locate.attribution"]
    assert "factscope.locate.attribution" in graph["factscope.locate.trace"]
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [frozenset("abc")]


def test_no_import_circle() -> None:
    assert [sorted(c) for c in cycles(import_graph())] == []


def test_no_private_name_across_packages() -> None:
    crossings = []
    for module, path in _modules().items():
        package = _package(module, path)
        for base, name in _imports(module, path):
            private = name is not None and name.startswith("_") and not name.startswith("__")
            if private and base != package and base.rpartition(".")[0] != package:
                crossings.append(f"{module}: from {base} import {name}")
    assert crossings == []


def test_every_progress_bar_comes_from_progress_py() -> None:
    """One progress convention (progress.py): no other module imports tqdm itself."""
    importers = []
    for module, path in _modules().items():
        for node in ast.walk(ast.parse(path.read_text())):
            names = (
                [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else []
            )
            if any(name.split(".")[0] == "tqdm" for name in names):
                importers.append(module)
    assert sorted(set(importers)) == ["factscope.progress"]


def test_the_default_model_is_named_once() -> None:
    """`registry.DEFAULT_MODEL` is the one place that says which model a command loads
    when none is named: no other code spells that name (docstrings may, and a table of
    per-model settings may key on it)."""
    from factscope.registry import DEFAULT_MODEL

    spelled: list[str] = []
    for module, path in _modules().items():
        tree = ast.parse(path.read_text())
        allowed = {id(node.value) for node in ast.walk(tree) if isinstance(node, ast.Expr)} | {
            id(key) for node in ast.walk(tree) if isinstance(node, ast.Dict) for key in node.keys
        }
        spelled += [
            module
            for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and node.value == DEFAULT_MODEL
            if id(node) not in allowed
        ]
    assert set(spelled) == {"factscope.registry"}  # DEFAULT_MODEL and its registry entry


def test_no_public_name_defined_twice_outside_the_cli() -> None:
    """A class or function name means one thing in the library: no two modules outside
    cli/ (whose commands are named after the functions they call) define the same one."""
    where: dict[str, list[str]] = {}
    for module, path in _modules().items():
        if module.startswith("factscope.cli"):
            continue
        for node in ast.parse(path.read_text()).body:
            named = isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
            if named and not node.name.startswith("_"):
                where.setdefault(node.name, []).append(module)
    assert {name: m for name, m in where.items() if len(m) > 1} == {}
