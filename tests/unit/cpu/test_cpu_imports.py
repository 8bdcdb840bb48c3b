"""The cpu layer's modules import each other in one direction only, at module level."""

from __future__ import annotations

import ast
from pathlib import Path

import armvisor.cpu

CPU = Path(armvisor.cpu.__file__).parent
PACKAGE = "armvisor.cpu"


def _cpu_imports(path: Path):
    """(module-level imports, imports inside functions) of armvisor.cpu modules, as names."""
    tree = ast.parse(path.read_text())
    top, nested = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        mods = {n.split(".")[2] for n in names
                if n.startswith(PACKAGE + ".") and (CPU / (n.split(".")[2] + ".py")).exists()}
        (top if node in tree.body or _under_module_if(tree, node) else nested).update(mods)
    return top, nested


def _under_module_if(tree: ast.Module, node: ast.AST) -> bool:
    """An import in a module-level `if` (e.g. TYPE_CHECKING) counts as module level."""
    return any(isinstance(stmt, ast.If) and node in ast.walk(stmt) for stmt in tree.body)


def _graph():
    graph, nested = {}, {}
    for path in CPU.glob("*.py"):
        graph[path.stem], nested[path.stem] = _cpu_imports(path)
    return graph, nested


def test_no_imports_inside_functions():
    _, nested = _graph()
    assert {mod: deps for mod, deps in nested.items() if deps} == {}


def test_no_import_cycles():
    graph, _ = _graph()
    order, state = [], {}

    def visit(mod, stack):
        if state.get(mod) == "done":
            return
        assert state.get(mod) != "open", "import cycle: " + " -> ".join(stack + [mod])
        state[mod] = "open"
        for dep in sorted(graph.get(mod, ())):
            if dep != mod:
                visit(dep, stack + [mod])
        state[mod] = "done"
        order.append(mod)

    for mod in sorted(graph):
        visit(mod, [])


def test_entry_and_traps_do_not_depend_on_core():
    graph, _ = _graph()
    assert "core" not in graph["entry"] and "core" not in graph["traps"]


def test_core_still_exports_the_shared_names():
    from armvisor.cpu import core, host
    assert core.Stop is host.Stop and core.CoreHost is host.CoreHost
    assert core.MmioRegion is host.MmioRegion
