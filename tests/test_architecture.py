"""The package's shape (docs/architecture.md): no import circle among nnp
modules, torch only where training needs it, no module too long to read.

The import graph is read from the sources (module-level imports, i.e. those
that run when a module is imported; imports inside functions and under
`if TYPE_CHECKING:` do not count), so these tests need no build.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "python" / "nnp"
MAX_LINES = 600
# Importing these must not import torch: a user who reads data, evaluates or
# runs a potential has no need of it (the training modules under them may).
TORCH_FREE = ("nnp", "nnp.data", "nnp.io", "nnp.descriptors", "nnp.calculator")


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}
# Compiled modules (nnp._core): leaves of the graph, not the package that holds them.
COMPILED = {_module_name(p.with_name(p.name.split(".")[0] + ".py")) for p in PACKAGE.rglob("*.so")}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _module_level_imports(tree: ast.Module):
    """Import statements that run at import time: outside function bodies
    and `if TYPE_CHECKING:` blocks (class bodies, try and if blocks count)."""
    stack = list(tree.body)
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        elif isinstance(node, ast.If) and _is_type_checking(node):
            stack.extend(node.orelse)
        else:
            stack.extend(n for n in ast.iter_child_nodes(node) if isinstance(n, ast.stmt))


def _imports(name: str) -> tuple[set[str], set[str]]:
    """(nnp modules, other top-level packages) that module `name` imports at module level."""
    path = MODULES[name]
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    ours, others = set(), set()
    for node in _module_level_imports(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        else:
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            # `from pkg import mod` imports the module pkg.mod when there is one.
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES.keys() | COMPILED else base for a in node.names]
        for target in targets:
            if target.split(".")[0] != "nnp":
                others.add(target.split(".")[0])
                continue
            if target in COMPILED:
                continue
            # `import nnp.a.b` names nnp.a.b; a name inside a module names the module.
            while target not in MODULES and "." in target:
                target = target.rpartition(".")[0]
            if target in MODULES and target != name:
                ours.add(target)
    return ours, others


GRAPH = {name: _imports(name) for name in MODULES}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

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
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_circle():
    graph = {name: ours for name, (ours, _) in GRAPH.items()}
    cycles = _cycles(graph)
    shown = ["  " + " <-> ".join(c) + ": " + "; ".join(f"{a} imports {', '.join(sorted(graph[a] & set(c)))}"
                                                      for a in c) for c in cycles]
    assert not cycles, "import circles among nnp modules:\n" + "\n".join(shown)


def test_torch_only_where_training_needs_it():
    """No module that nnp, nnp.data, nnp.io, nnp.descriptors or
    nnp.calculator reach by module-level imports imports torch."""
    bad = []
    for root in TORCH_FREE:
        seen, todo, parent = {root}, [root], {root: None}
        while todo:
            m = todo.pop()
            if "torch" in GRAPH[m][1]:
                chain = [m]
                while parent[chain[-1]] is not None:
                    chain.append(parent[chain[-1]])
                bad.append(" -> ".join(reversed(chain)) + " -> torch")
                break
            for n in GRAPH[m][0] - seen:
                seen.add(n)
                parent[n] = m
                todo.append(n)
    assert not bad, "torch imported at module level from:\n  " + "\n  ".join(bad)


def test_importing_the_torch_free_modules_loads_no_torch():
    pytest.importorskip("nnp._core")
    code = f"import sys; import {', '.join(TORCH_FREE)}; print(sorted(m for m in sys.modules if m == 'torch'))"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "[]", f"importing {', '.join(TORCH_FREE)} imports torch"


def test_no_module_over_600_lines():
    long = {name: n for name, path in MODULES.items()
            if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines: " + ", ".join(f"{m} ({n})" for m, n in sorted(long.items()))
