"""The import graph: no module imports itself through others, and docs/architecture.md shows
the graph the code has (scripts/import_graph.py)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[1]


def _tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "import_graph", REPO / "scripts" / "import_graph.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_no_import_circle() -> None:
    tool = _tool()
    graph = tool.import_graph()
    assert "autocoder.coding.loaded" in graph["autocoder.api"]
    assert tool.cycles(graph) == []
    circle = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert tool.cycles(circle) == [["a", "b", "c"]]  # the check finds a circle when there is one


def test_the_diagram_in_the_docs_matches_the_code() -> None:
    tool = _tool()
    diagram = tool.mermaid(tool.import_graph())
    text = (REPO / "docs" / "architecture.md").read_text()
    assert f"```mermaid\n{diagram}\n```" in text, "run: python scripts/import_graph.py"
