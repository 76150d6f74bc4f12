"""The shape of the code, read from its syntax trees (fast): steps are asked, not switched on; the
core names no built-in and re-reads no settings (`mot_plugin/builtin/` does); imports flow one way,
without a cycle (imports only for typing included); every module is short."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

from mot_plugin.plugins import BUILTINS
from mot_plugin.registry import Registry

PACKAGE = Path(__file__).parents[1] / "mot_plugin"
BUILTIN = PACKAGE / "builtin"
MAX_LINES = 350
STEP_KINDS = ("prepare", "branch", "merge", "eval", "choose")
NOT_A_BUILTIN = {
    ("environment.py", "mergekit"): "a distribution whose version is recorded",
    ("environment.py", "transformers"): "a distribution whose version is recorded",
    ("card.py", "transformers"): "the model card's library_name",
    ("card.py", "mergekit"): "a hub tag every card carries (whichever executor merged)",
    ("warm.py", "transformers"): "a module the warm server imports",
}
"""(module, string) pairs where a built-in's name means something else."""


def _modules() -> dict[str, Path]:
    """Every module of mot_plugin, by dotted name."""
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


MODULES = _modules()
TREES = {name: ast.parse(path.read_text(), str(path)) for name, path in MODULES.items()}
CORE = {name: tree for name, tree in TREES.items() if BUILTIN not in MODULES[name].parents}


def _builtin_names() -> set[str]:
    registry = Registry()
    for name in BUILTINS:
        module = importlib.import_module(name)
        if hasattr(module, "mot_register"):
            module.mot_register(register=registry)
    return {name for entries in registry.entries.values() for name in entries}


def _docstrings(tree: ast.AST) -> set[int]:
    """ids of the string constants that are docstrings (of modules, classes, functions, attributes)."""
    out = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list):
            out |= {id(s.value) for s in body if isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant)}
    return out


def _where(name: str, node: ast.AST) -> str:
    return f"{MODULES[name].relative_to(PACKAGE.parent)}:{node.lineno}"


def _names_a_step_kind(node: ast.AST) -> bool:
    """A step kind's name (`"branch"`), or a tuple, list or set holding one."""
    if isinstance(node, ast.Constant):
        return node.value in STEP_KINDS
    return isinstance(node, (ast.Tuple, ast.List, ast.Set)) and any(map(_names_a_step_kind, node.elts))


def test_no_switch_on_a_steps_kind():
    """No `step.kind == "branch"`, `kind != "merge"`, `s.kind in ("eval", "choose")`: ask the step."""
    found = []
    for name, tree in TREES.items():
        for node in ast.walk(tree):
            if isinstance(node, ast.Compare) and any(isinstance(op, (ast.Eq, ast.NotEq, ast.In, ast.NotIn))
                                                     for op in node.ops):
                sides = [node.left, *node.comparators]
                kind = any(isinstance(s, ast.Attribute) and s.attr == "kind" or isinstance(s, ast.Name) and s.id == "kind"
                           for s in sides)
                if kind and any(map(_names_a_step_kind, sides)):
                    found.append(_where(name, node))
    assert not found, f"switches on a step's kind: {found}"


def test_the_core_names_no_builtin():
    builtins = _builtin_names()
    assert {"local", "mergekit", "single"} <= builtins
    found = []
    for name, tree in CORE.items():
        docs = _docstrings(tree)
        module = MODULES[name].name
        for node in ast.walk(tree):
            if (isinstance(node, ast.Constant) and node.value in builtins and id(node) not in docs
                    and (module, node.value) not in NOT_A_BUILTIN):
                found.append(f"{_where(name, node)} {node.value!r}")
    assert not found, f"built-ins named outside mot_plugin/builtin/: {found}"


def test_settings_are_passed_in_not_reread():
    found = [_where(name, node) for name, tree in CORE.items() for node in ast.walk(tree)
             if (isinstance(node, ast.Name) and node.id == "settings_of")
             or (isinstance(node, ast.Attribute) and node.attr == "settings_of")
             or (isinstance(node, ast.alias) and node.name == "settings_of")
             or (isinstance(node, ast.FunctionDef) and node.name == "settings_of")]
    assert not found, f"settings_of outside mot_plugin/builtin/: {found}"


def _imports(name: str, tree: ast.Module) -> set[str]:
    """The mot_plugin modules `name` imports outside functions (at import time, or for typing)."""
    out: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                continue
            if isinstance(child, ast.Import):
                out.update(a.name for a in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    package = name if MODULES[name].name == "__init__.py" else name.rpartition(".")[0]
                    base = ".".join(package.split(".")[:len(package.split(".")) - child.level + 1] + ([base] if base else []))
                out.update(f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in child.names)
            visit(child)

    visit(tree)
    return {m for m in out if m in MODULES and m != name}


def test_imports_have_no_cycle():
    graph = {name: _imports(name, tree) for name, tree in TREES.items()}
    cycles, state, stack = [], {}, []

    def visit(node: str) -> None:
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                cycles.append(" -> ".join(stack[stack.index(nxt):] + [nxt]))
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node)
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_every_module_is_short():
    long = {str(path.relative_to(PACKAGE.parent)): n for path in MODULES.values()
            if (n := len(path.read_text().splitlines())) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines: {long}"
