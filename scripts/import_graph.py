"""The package's import graph, read from the source (``ast``, nothing is imported).

``python scripts/import_graph.py`` prints the dependency diagram of
``docs/architecture.md`` (Mermaid, one node per top-level module or subpackage) and fails when
any module imports, directly or through others, itself: an import circle. Imports inside
functions count too (they are the same dependency, only later); ``if TYPE_CHECKING:`` imports
do not (they are for the type checker).
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

PACKAGE = "autocoder"


def package_root() -> Path:
    return Path(__file__).resolve().parent.parent / PACKAGE


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _type_checking_only(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST, module: str, is_package: bool) -> Iterator[str]:
    """Absolute names of the autocoder modules ``tree`` imports (TYPE_CHECKING ones skipped)."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _type_checking_only(node):
            stack.extend(node.orelse)
            continue
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names if a.name.split(".")[0] == PACKAGE)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")[: len(module.split(".")) - node.level + is_package]
                base = ".".join([*anchor, *([base] if base else [])])
            if base.split(".")[0] == PACKAGE:
                yield base
                yield from (f"{base}.{a.name}" for a in node.names)
        stack.extend(ast.iter_child_nodes(node))


def import_graph(root: Path | None = None) -> dict[str, set[str]]:
    """module -> the autocoder modules it imports (names that are not modules are dropped)."""
    root = root or package_root()
    files = {module_name(p, root): p for p in sorted(root.rglob("*.py"))}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        targets = set(_imports(tree, name, path.name == "__init__.py"))
        graph[name] = {t for t in targets if t in files and t != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
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

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10 * len(graph) + 100))
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(found)


#: Subpackages and modules drawn as their own node; every other top-level module (settings,
#: workspace, tables, records, titles, embedder, index, ...) is drawn as ``core``.
NODES = {"api", "labeler", "procs"}


def group(module: str) -> str:
    """The diagram node of a module: its subpackage, ``cli``, one of ``NODES``, or ``core``."""
    parts = module.split(".")
    if len(parts) == 1:
        return PACKAGE
    top = parts[1]
    if top.startswith("cli"):
        return "cli"
    if len(parts) > 2 or top in NODES or (package_root() / top).is_dir():
        return top
    return "core"


def mermaid(graph: dict[str, set[str]]) -> str:
    """``graph TD`` with one edge per pair of nodes where a module of one imports the other's."""
    edges = sorted(
        {(group(a), group(b)) for a, targets in graph.items() for b in targets if group(b) != PACKAGE}
    )
    lines = ["graph TD"]
    lines += [f"    {a} --> {b}" for a, b in edges if a != b]
    return "\n".join(lines)


def main() -> int:
    graph = import_graph()
    found = cycles(graph)
    print(mermaid(graph))
    for component in found:
        print("import circle: " + " <-> ".join(component), file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    raise SystemExit(main())
