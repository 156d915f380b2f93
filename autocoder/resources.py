"""Locate the runtime folders that ship with the package: prompts, configs, labeling, training.

Lookup order: an explicit override (from config), the copy installed inside the package
(``autocoder/_data/<name>``, put there by ``setup.py``), then the source checkout next to the
package (editable installs). The current working directory is never consulted.
"""

from __future__ import annotations

import importlib.resources
from pathlib import Path

RESOURCE_NAMES = ("prompts", "configs", "labeling", "training")


def resource_dir(name: str, override: str | Path | None = None) -> Path:
    """Return the directory holding the runtime resource ``name``.

    Raises ``FileNotFoundError`` naming every place that was tried.
    """
    if name not in RESOURCE_NAMES:
        raise ValueError(f"unknown resource folder {name!r}; expected one of {RESOURCE_NAMES}")
    tried: list[str] = []
    if override is not None:
        path = Path(override).expanduser()
        if path.is_dir():
            return path
        tried.append(str(path))
    try:
        packaged = Path(str(importlib.resources.files("autocoder") / "_data" / name))
        if packaged.is_dir():
            return packaged
        tried.append(str(packaged))
    except (ModuleNotFoundError, TypeError):  # pragma: no cover - defensive
        pass
    source = Path(__file__).resolve().parent.parent / name
    if source.is_dir():
        return source
    tried.append(str(source))
    raise FileNotFoundError(f"resource folder {name!r} not found; tried: {', '.join(tried)}")
