"""Keep imported taxonomies in the workspace: ``taxonomies/<name>-<version>/`` + a current pointer."""

from __future__ import annotations

import re
from pathlib import Path

from autocoder.taxonomy.model import Taxonomy
from autocoder.workspace import Workspace


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "unknown"


def save_taxonomy(ws: Workspace, taxonomy: Taxonomy) -> Path:
    """Store ``taxonomy`` and make it the current release for its name."""
    target = ws.taxonomies / f"{_slug(taxonomy.name)}-{_slug(taxonomy.version)}"
    taxonomy.save(target)
    (ws.taxonomies / f"{_slug(taxonomy.name)}.current").write_text(target.name + "\n")
    return target


def taxonomy_dir(ws: Workspace, name: str) -> Path:
    pointer = ws.taxonomies / f"{_slug(name)}.current"
    if not pointer.exists():
        raise FileNotFoundError(
            f"taxonomy {name!r} has not been imported into {ws.root}; run "
            f"`autocoder taxonomy import {name} PATH` (or `autocoder taxonomy download {name}`)"
        )
    return ws.taxonomies / pointer.read_text().strip()


def load_taxonomy(ws: Workspace, name: str) -> Taxonomy:
    return Taxonomy.load(taxonomy_dir(ws, name))


def list_taxonomies(ws: Workspace) -> list[str]:
    return sorted(p.stem for p in ws.taxonomies.glob("*.current"))
