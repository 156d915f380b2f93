"""The workspace: where taxonomy stores, the index, models, caches and runs live.

Resolved from config ``workspace.home``, else ``$AUTOCODER_HOME``, else the per-user data
directory. Environment variables are read when a Workspace is created, never at import time.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import platformdirs


@dataclass(frozen=True)
class Workspace:
    root: Path

    @classmethod
    def resolve(cls, home: str | Path | None = None) -> Workspace:
        if home is None:
            home = os.environ.get("AUTOCODER_HOME") or platformdirs.user_data_dir("autocoder")
        root = Path(home).expanduser().resolve()
        root.mkdir(parents=True, exist_ok=True)
        return cls(root)

    def _dir(self, *parts: str) -> Path:
        path = self.root.joinpath(*parts)
        path.mkdir(parents=True, exist_ok=True)
        return path

    @property
    def taxonomies(self) -> Path:
        return self._dir("taxonomies")

    @property
    def chroma(self) -> Path:
        return self._dir("index", "chroma")

    @property
    def embedding_cache(self) -> Path:
        return self._dir("cache", "embeddings")

    @property
    def llm_cache(self) -> Path:
        return self._dir("cache", "llm")

    @property
    def models(self) -> Path:
        return self._dir("models")

    @property
    def datasets(self) -> Path:
        return self._dir("datasets")

    @property
    def runs(self) -> Path:
        return self._dir("runs")

    @property
    def downloads(self) -> Path:
        return self._dir("downloads")
