"""The package's architecture, checked from its source: no import circles, the torch-free rooms, one
backend registry, the schema at the bottom.

Imports are read with ``ast`` from every module of ``src/kneurons``, function-level (lazy) imports
included and ``if TYPE_CHECKING:`` blocks excluded (those never run): a lazy import that closes a
circle is a circle all the same, only one that fails later.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from kneurons.model.backends import BACKENDS

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "kneurons"


def module_name(path: Path) -> str:
    """``src/kneurons/a/b.py`` -> ``kneurons.a.b``; a package's ``__init__.py`` -> the package."""
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _type_checking_block(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def imported_modules(path: Path) -> set[str]:
    """The project modules ``path`` imports anywhere (module level or inside functions), resolved to
    modules of ``MODULES`` (``from pkg import mod`` names the module ``pkg.mod``)."""
    tree = ast.parse(path.read_text())
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if _type_checking_block(node):
            return
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return {m for m in found if m in MODULES and m != module_name(path)}


GRAPH = {name: imported_modules(path) for name, path in MODULES.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = iter(range(10**9))

    def strong(v: str) -> None:
        index[v] = low[v] = next(counter)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                strong(w)
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
                out.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for v in graph:
        if v not in index:
            strong(v)
    return out


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_circles():
    """No two modules of the package import each other, directly or through others (lazy imports too)."""
    assert cycles(GRAPH) == []


def _reachable(start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        m = todo.pop()
        if m not in seen:
            seen.add(m)
            todo.extend(GRAPH[m])
    return seen


def test_schema_imports_nothing_of_the_project():
    assert GRAPH["kneurons.schema"] == set()


@pytest.mark.parametrize(
    "module",
    [
        "kneurons.schema",
        "kneurons.config",
        "kneurons.ranking",
        "kneurons.model.backends",
        "kneurons.model.architectures",
        "kneurons.model.backends.snapshot",
        "kneurons.model.backends.fair_esm.checkpoint_shape",
        "kneurons.data.labels",
        "kneurons.data.external",
        "kneurons.settings",
        "kneurons.tables",
        "kneurons.stats.claims",
        "kneurons.plan",
        "kneurons.concepts.results",
        "kneurons.concepts.knowledge",
        "kneurons.figures.concepts",
        # explain: what it reads of a run, the user's proteins, its tables and page, the command
        "kneurons.explain.run",
        "kneurons.explain.proteins",
        "kneurons.explain.report",
        "kneurons.explain.cli",
    ],
)
def test_torch_free_rooms_import_without_torch(module):
    """Configuration, ranking, the backend registry, data, settings, tables and statistics run in
    environments without torch (the plots and data conda envs): importing them never imports it."""
    code = f"import sys, {module}; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False", f"{module} imports torch"


def _names_a_backend(node: ast.Compare) -> bool:
    """``x == "hf"``-style comparisons (``==``, ``!=``, ``in``) of something named like a backend."""
    sides = [node.left, *node.comparators]
    consts = {s.value for s in sides if isinstance(s, ast.Constant) and isinstance(s.value, str)}
    for s in sides:
        if isinstance(s, ast.Tuple | ast.List | ast.Set):
            consts |= {e.value for e in s.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)}
    subject = " ".join(ast.unparse(s) for s in sides if not isinstance(s, ast.Constant))
    return bool(consts & set(BACKENDS)) and "backend" in subject


def test_backends_are_chosen_only_in_the_registry():
    """No ``if backend == "hf"`` outside ``kneurons.model.backends`` (the registry's ``__init__``):
    every other place asks the registry (``backend_class``, ``BACKENDS[...]``)."""
    offenders = []
    for name, path in MODULES.items():
        if name == "kneurons.model.backends":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Compare) and _names_a_backend(node):
                offenders.append(f"{path.relative_to(SRC)}:{node.lineno}: {ast.unparse(node)}")
    assert offenders == []


def test_the_backend_check_sees_a_chain():
    chain = ast.parse('if spec.backend == "hf":\n    pass\nelif backend in ("esmc", "x"):\n    pass')
    found = [n for n in ast.walk(chain) if isinstance(n, ast.Compare) and _names_a_backend(n)]
    assert len(found) == 2


def test_every_backend_in_the_registry_answers_the_registrys_questions():
    """Each registered class accepts, builds, loads and finds its weights (the registry's protocol)."""
    for info in BACKENDS.values():
        cls = info.backend_class()
        for method in ("accepts", "build", "load", "weights_path"):
            assert callable(getattr(cls, method, None)), f"{info.name} lacks {method}"
        assert cls.name == info.name
