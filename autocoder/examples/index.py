"""The coded examples embedded in their own Chroma collection, beside the code texts.

One document per stored example (its title; the description after a colon when there is one,
as a record's query is written), with the code, the normalised title and the weight as
metadata. The collection is named after the taxonomy, the embedder and the store's content
hash, so a store that changed is a different collection: ``ensure`` builds it the first time a
job needs it (no separate build step, no retraining) and drops the stale ones of the same store.
``MemoryExampleIndex`` is the in-memory twin (``index.backend = "memory"``, tests).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from autocoder.embed import Embedder
from autocoder.index import GET_CHUNK, ChromaConnection

if TYPE_CHECKING:
    from chromadb.api.models.Collection import Collection

#: Examples embedded and added per request.
ADD_CHUNK = 2048


@dataclass
class Neighbours:
    """Per query, the nearest examples best first: their codes, similarities, weights, keys."""

    codes: list[list[str]]
    sims: list[np.ndarray]
    weights: list[np.ndarray]
    keys: list[list[str]]


def example_text(title: str, description: str) -> str:
    return f"{title}: {description}" if description else title


def collection_name(prefix: str, taxonomy_name: str, model_id: str, content_hash: str) -> str:
    """``<prefix>-ex-<taxonomy>-<digest of embedder>-<store hash>``, Chroma-safe."""
    digest = hashlib.sha1(model_id.encode()).hexdigest()[:8]
    raw = f"{prefix}-ex-{taxonomy_name}-{digest}-{content_hash[:12]}"
    return re.sub(r"[^A-Za-z0-9._-]", "-", raw)[:60].strip("-._")


class MemoryExampleIndex:
    """Brute-force numpy neighbours over the examples (same interface as the Chroma one)."""

    def __init__(self, *, candidates: int = 50) -> None:
        self.candidates = candidates
        self._table: pd.DataFrame | None = None
        self._matrix: np.ndarray | None = None

    def ensure(self, table: pd.DataFrame, content_hash: str, embedder: Embedder) -> int:
        self._table = table.reset_index(drop=True)
        texts = [
            example_text(t, d) for t, d in zip(table["title"], table["description"], strict=True)
        ]
        self._matrix = embedder.encode(texts) if texts else np.zeros((0, 1), np.float32)
        return len(texts)

    def neighbours(self, vectors: np.ndarray) -> Neighbours:
        if self._table is None or self._matrix is None:
            raise RuntimeError("MemoryExampleIndex.neighbours called before ensure")
        out = Neighbours([], [], [], [])
        n = min(self.candidates, len(self._table))
        codes = self._table["code"].to_numpy()
        weights = self._table["weight"].to_numpy(np.float64)
        keys = self._table["key"].to_numpy()
        for row in np.asarray(vectors, np.float32) @ self._matrix.T if n else vectors[:, :0]:
            top = np.argpartition(-row, n - 1)[:n] if n else np.zeros(0, int)
            top = top[np.argsort(-row[top], kind="stable")]
            out.codes.append([str(c) for c in codes[top]])
            out.sims.append(row[top].astype(np.float64))
            out.weights.append(weights[top])
            out.keys.append([str(k) for k in keys[top]])
        return out


class ChromaExampleIndex(ChromaConnection):
    """The examples' collection in the workspace's Chroma store, or on a Chroma server."""

    def __init__(
        self,
        *,
        taxonomy_name: str,
        model_id: str,
        path: str | Path | None = None,
        host: str | None = None,
        port: int = 8000,
        prefix: str = "autocoder",
        candidates: int = 50,
        hnsw: dict[str, int] | None = None,
        connect_timeout: float = 5.0,
        timeout: float = 120.0,
    ) -> None:
        if path is None and host is None:
            raise ValueError("ChromaExampleIndex needs a path (embedded store) or a host (server)")
        self.taxonomy_name = taxonomy_name
        self.model_id = model_id
        self.path = path
        self.host = host
        self.port = port
        self.prefix = prefix
        self.candidates = candidates
        self.hnsw = hnsw
        self.connect_timeout = connect_timeout
        self.timeout = timeout
        self._name = ""
        self._meta: dict[str, tuple[str, float, str]] = {}

    def _stale(self, name: str) -> list[str]:
        base = name.rsplit("-", 1)[0] + "-"
        names = [getattr(c, "name", c) for c in self.client.list_collections()]
        return [str(n) for n in names if str(n).startswith(base) and n != name]

    def ensure(self, table: pd.DataFrame, content_hash: str, embedder: Embedder) -> int:
        """Build the collection of ``table`` unless it exists; returns its size."""
        from chromadb.errors import NotFoundError

        name = collection_name(self.prefix, self.taxonomy_name, self.model_id, content_hash)
        self._name = name
        try:
            collection = self.client.get_collection(name)
            if collection.count() == len(table):
                return len(table)
            self.client.delete_collection(name)  # a build that stopped half-way
        except NotFoundError:
            pass
        for stale in self._stale(name):
            self.client.delete_collection(stale)
        return self._build(name, table, embedder)

    def _build(self, name: str, table: pd.DataFrame, embedder: Embedder) -> int:
        hnsw = {f"hnsw:{k}": v for k, v in (self.hnsw or {}).items()}
        collection = self.client.create_collection(
            name, metadata={"hnsw:space": "cosine", **hnsw, "taxonomy": self.taxonomy_name}
        )
        table = table.reset_index(drop=True)
        bar = tqdm(total=len(table), desc="examples index", unit="ex", disable=len(table) < 5000)
        for start in range(0, len(table), ADD_CHUNK):
            part = table.iloc[start : start + ADD_CHUNK]
            texts = [
                example_text(t, d) for t, d in zip(part["title"], part["description"], strict=True)
            ]
            collection.add(
                ids=[f"ex{start + i}" for i in range(len(part))],
                embeddings=embedder.encode(texts).tolist(),
                documents=texts,
                metadatas=[
                    {"code": str(c), "weight": float(w), "key": str(k)}
                    for c, w, k in zip(part["code"], part["weight"], part["key"], strict=True)
                ],
            )
            bar.update(len(part))
        bar.close()
        return len(table)

    def _collection(self) -> Collection:
        if not self._name:
            raise RuntimeError("ChromaExampleIndex.neighbours called before ensure")
        return self.client.get_collection(self._name)

    def _metadata(self, collection: Collection, ids: list[list[str]]) -> None:
        wanted = list(dict.fromkeys(i for row in ids for i in row if i not in self._meta))
        for start in range(0, len(wanted), GET_CHUNK):
            got = collection.get(ids=wanted[start : start + GET_CHUNK], include=["metadatas"])
            metas: list[Any] = list(got["metadatas"] or [])
            for doc_id, meta in zip(got["ids"], metas, strict=True):
                self._meta[doc_id] = (str(meta["code"]), float(meta["weight"]), str(meta["key"]))

    def neighbours(self, vectors: np.ndarray) -> Neighbours:
        collection = self._collection()
        out = Neighbours([], [], [], [])
        n = min(self.candidates, collection.count())
        if len(vectors) == 0 or n == 0:
            m = len(vectors)
            return Neighbours([[]] * m, [np.zeros(0)] * m, [np.zeros(0)] * m, [[]] * m)
        res = collection.query(
            query_embeddings=np.asarray(vectors, np.float32).tolist(),
            n_results=n,
            include=["distances"],
        )
        self._metadata(collection, res["ids"])
        for ids, dists in zip(res["ids"], res["distances"] or [], strict=True):
            meta = [self._meta[i] for i in ids]
            out.codes.append([m[0] for m in meta])
            out.sims.append(1.0 - np.asarray(dists, np.float64))
            out.weights.append(np.asarray([m[1] for m in meta], np.float64))
            out.keys.append([m[2] for m in meta])
        return out
