"""No import circles inside pe_toolkit.

The graph is read from the source with ``ast``: one node per module, an
edge for every import at module level (``if TYPE_CHECKING:`` blocks
included: a type two modules share belongs in a module below both);
imports inside functions are deferred on purpose and not counted. An edge
goes to the module named (``from pkg import mod`` to ``pkg.mod``, ``from
pkg import name`` to ``pkg``), not to the packages above it. A strongly
connected component of more than one module is a circle.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "pe_toolkit"

# Circles known and left for the work that removes them. Each entry is the
# set of modules a circle may span; a circle outside every entry fails.
# None today: keep it that way.
KNOWN: dict[frozenset[str], str] = {}


def modules(root: Path) -> dict[str, tuple[Path, bool]]:
    """Dotted name -> (file, is a package)."""
    found = {}
    for path in root.rglob("*.py"):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        package = parts[-1] == "__init__"
        if package:
            parts.pop()
        found[".".join(parts)] = (path, package)
    return found


def module_level_imports(body: list[ast.stmt]) -> Iterator[ast.Import | ast.ImportFrom]:
    for node in body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            continue  # a function's imports run when it is called; a class body's are not used here
        else:  # if / try / with blocks at module level run on import
            for field in ("body", "orelse", "finalbody"):
                yield from module_level_imports(getattr(node, field, None) or [])
            for handler in getattr(node, "handlers", None) or []:
                yield from module_level_imports(handler.body)


def import_graph(root: Path) -> dict[str, set[str]]:
    known = modules(root)
    graph: dict[str, set[str]] = {}
    for name, (path, package) in known.items():
        here = name if package else name.rpartition(".")[0]
        edges: set[str] = set()
        for node in module_level_imports(ast.parse(path.read_text(encoding="utf-8"), str(path)).body):
            if isinstance(node, ast.Import):
                edges.update(alias.name for alias in node.names if alias.name in known)
                continue
            if node.level:
                parts = here.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            for alias in node.names:
                if f"{base}.{alias.name}" in known:
                    edges.add(f"{base}.{alias.name}")
                elif base in known:
                    edges.add(base)
        edges.discard(name)
        graph[name] = edges
    return graph


def strongly_connected(graph: dict[str, set[str]]) -> list[set[str]]:
    """Tarjan's algorithm, iterative (the package is deeper than a default
    recursion limit would like)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[set[str]] = []
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, edges = work[-1]
            for nxt in edges:
                if nxt not in index:
                    index[nxt] = low[nxt] = len(index)
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(graph[nxt]))))
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = set()
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.add(member)
                        if member == node:
                            break
                    found.append(component)
    return found


def circles(graph: dict[str, set[str]]) -> list[set[str]]:
    return [c for c in strongly_connected(graph) if len(c) > 1]


def test_pe_toolkit_has_no_import_circle() -> None:
    graph = import_graph(PACKAGE)
    assert len(graph) > 100 and "pe_toolkit.store.core" in graph["pe_toolkit.store.annotations"]
    unknown = [sorted(c) for c in circles(graph) if not any(c <= allowed for allowed in KNOWN)]
    assert unknown == [], "import circles (move the shared type into a module below both users):\n" + "\n".join(
        " <-> ".join(c) for c in unknown
    )


def test_the_three_former_circles_stay_open() -> None:
    """The shared types of issue 18's circles live below both users."""
    graph = import_graph(PACKAGE)
    for user, shared in (
        ("pe_toolkit.apisync.bulk", "pe_toolkit.apisync.context"),
        ("pe_toolkit.apisync.incremental", "pe_toolkit.apisync.context"),
        ("pe_toolkit.synth.build", "pe_toolkit.synth.config"),
        ("pe_toolkit.server.routes._common", "pe_toolkit.server.mirror"),
    ):
        assert shared in graph[user]
    assert "pe_toolkit.apisync.run" not in graph["pe_toolkit.apisync.bulk"] | graph["pe_toolkit.apisync.incremental"]
    assert "pe_toolkit.synth.generator" not in graph["pe_toolkit.synth.build"]
    assert "pe_toolkit.server.app" not in graph["pe_toolkit.server.routes._common"]


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        # a <-> b through a TYPE_CHECKING import, c alone
        (
            {
                "__init__.py": "",
                "a.py": "from . import b\n",
                "b.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .a import Thing\n",
                "c.py": "import pkg.a\n",
            },
            [{"pkg.a", "pkg.b"}],
        ),
        # the import back is inside a function: deferred, no circle
        ({"__init__.py": "", "a.py": "from .b import f\n", "b.py": "def f():\n    from .a import g\n"}, []),
        # a circle through a subpackage, with a two-level relative import
        (
            {"__init__.py": "", "top.py": "from .sub.low import x\n", "sub/__init__.py": "", "sub/low.py": "from ..top import y\n"},
            [{"pkg.top", "pkg.sub.low"}],
        ),
    ],
)
def test_the_detector_finds_circles_and_only_circles(tmp_path: Path, files: dict[str, str], expected: list[set[str]]) -> None:
    root = tmp_path / "pkg"
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    assert sorted(map(sorted, circles(import_graph(root)))) == sorted(map(sorted, expected))


def test_importers_generator_and_sync_are_layered() -> None:
    """ingest/ (file importers) sits below apisync/ (which imports files when offline); the
    generator imports neither, so each of the three folders can be read on its own."""
    graph = import_graph(PACKAGE)

    def reaches(prefix: str, target: str) -> list[str]:
        return sorted(
            f"{user} -> {dep}"
            for user, deps in graph.items()
            if user.startswith(prefix)
            for dep in deps
            if dep.startswith(target)
        )

    assert reaches("pe_toolkit.ingest", "pe_toolkit.apisync") == []
    assert reaches("pe_toolkit.ingest", "pe_toolkit.synth") == []
    assert reaches("pe_toolkit.synth", "pe_toolkit.ingest") + reaches("pe_toolkit.synth", "pe_toolkit.apisync") == []
    assert "pe_toolkit.ingest.prefetch" in graph["pe_toolkit.apisync.bulk"]
