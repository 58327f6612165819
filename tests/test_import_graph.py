"""The packages' modules import one another without a circle, deferred imports included.

A circle (models -> checkpoint -> finetune -> models, as it was) works only while every edge but one is deferred
into a function, and breaks at import time when someone moves an import to the top. The graph is read from the
source, every ``import`` statement at any depth, so a deferred import counts as an edge too.
"""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("boon_ext", "probconserv_ext", "_physics_constrained", "experiments")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, name: str, known: set) -> set:
    """The package modules ``path`` imports, at any depth; a package's ``__init__`` is not counted as a target
    (importing ``pkg.sub`` runs ``pkg/__init__``, which re-exports, and is no dependency of ``sub``'s code)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            candidates = [target] + [f"{target}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            candidates = [a.name for a in node.names]
        else:
            continue
        for c in candidates:
            if c in known and c != name and not (ROOT / c.replace(".", "/") / "__init__.py").exists():
                found.add(c)
    return found


def _graph():
    files = [p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")]
    names = {_module_name(p): p for p in files}
    return {n: _imports(p, n, set(names)) for n, p in names.items()}


def _cycle(graph):
    """One import circle as a list of modules, or None."""
    state, stack = {}, []

    def visit(n):
        state[n] = "open"
        stack.append(n)
        for m in sorted(graph.get(n, ())):
            if state.get(m) == "open":
                return stack[stack.index(m):] + [m]
            if m not in state:
                found = visit(m)
                if found:
                    return found
        stack.pop()
        state[n] = "done"
        return None

    for n in sorted(graph):
        if n not in state:
            found = visit(n)
            if found:
                return found
    return None


def test_no_import_circle_in_any_package():
    graph = _graph()
    assert "boon_ext.models" in graph and "boon_ext.checkpoint" in graph["boon_ext.models"]  # the graph is read
    cycle = _cycle(graph)
    assert cycle is None, "import circle: " + " -> ".join(cycle)


def test_the_cycle_finder_finds_a_circle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


@pytest.mark.parametrize("module", ["boon_ext.checkpoint", "boon_ext.finetune", "boon_ext.models",
                                    "boon_ext.untrained", "boon_ext.metadata"])
def test_each_module_of_the_former_circle_imports_first_in_a_fresh_interpreter(module):
    """Imported first in a new process, each module of the former circle loads (the order in which Python
    meets the modules is the one a circle breaks on)."""
    code = f"import importlib; importlib.import_module({module!r})"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
