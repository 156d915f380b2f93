"""CodeIndex: every code's texts embedded and stored in Chroma; top-k codes for any query.

One document per code text (title, each alternate title, description, each task) with the code
and the text kind as metadata. Embeddings are always computed by our ``Embedder`` and passed in
(Chroma's own embedding function would try to download a model). Document hits are aggregated
per code, so ``search`` returns codes, not documents.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np
from tqdm.auto import tqdm

from autocoder.config import Settings
from autocoder.embed import Embedder
from autocoder.records import normalize_text
from autocoder.redact import redact
from autocoder.taxonomy.model import TEXT_KINDS, Taxonomy
from autocoder.workspace import Workspace, file_lock

if TYPE_CHECKING:
    from chromadb.api import ClientAPI
    from chromadb.api.models.Collection import Collection


#: Documents fetched by id per request (under SQLite's limit on variables in one statement).
GET_CHUNK = 500


class IndexNotBuiltError(RuntimeError):
    """The collection for this taxonomy and embedder does not exist yet."""


class IndexConnectionError(RuntimeError):
    """The Chroma store or server cannot be reached."""


@dataclass
class Document:
    id: str
    code: str
    kind: str
    text: str


@dataclass
class SearchResult:
    """Per query: codes best first, each code's best similarity (``scores``), its best matching
    text and its vote (``votes``: the log of its share of the soft vote times the temperature
    for ``softmax_sum``, the best similarity for ``max``; a softmax of the votes at the index
    temperature is retrieval's distribution)."""

    codes: list[list[str]]
    scores: list[np.ndarray]
    evidence: list[list[str]] = field(default_factory=list)
    votes: list[np.ndarray] = field(default_factory=list)

    def add_hits(
        self,
        doc_codes: Sequence[str],
        similarities: Sequence[float],
        doc_texts: Sequence[str],
        *,
        k: int,
        method: str,
        temperature: float,
    ) -> None:
        """Aggregate one query's document hits to codes and append them."""
        codes, scores, evidence, votes = aggregate(
            doc_codes, similarities, doc_texts, k=k, method=method, temperature=temperature
        )
        self.codes.append(codes)
        self.scores.append(scores)
        self.evidence.append(evidence)
        self.votes.append(votes)


def code_documents(taxonomy: Taxonomy, kinds: Sequence[str] = TEXT_KINDS) -> list[Document]:
    """The documents of every leaf code; duplicate texts within a code are kept once."""
    docs: list[Document] = []
    for code in taxonomy.leaf_codes():
        seen: set[str] = set()
        for i, (kind, text) in enumerate(taxonomy.texts(code, tuple(kinds))):
            key = normalize_text(text)
            if not key or key in seen:
                continue
            seen.add(key)
            docs.append(Document(id=f"{code}::{kind}::{i}", code=code, kind=kind, text=text))
    return docs


def aggregate(
    doc_codes: Sequence[str],
    similarities: Sequence[float],
    doc_texts: Sequence[str],
    *,
    k: int,
    method: str = "max",
    temperature: float = 0.05,
) -> tuple[list[str], np.ndarray, list[str], np.ndarray]:
    """Aggregate document similarities to codes: ``max`` (a code is as good as its best text)
    or ``softmax_sum`` (soft voting: every retrieved text of a code adds ``exp(sim / T)``).
    Returns the top ``k`` codes, best first (codes of equal score ordered by code), each code's
    best similarity and text, and its vote: ``T * log(sum of exp(sim / T))`` for
    ``softmax_sum`` (so a softmax at ``T`` is each code's share of the vote), the best
    similarity for ``max``."""
    if method == "max" and _best_first(similarities) and _no_ties(similarities):
        codes, best_sims, texts = _first_codes(doc_codes, similarities, doc_texts, k)
        return codes, best_sims, texts, best_sims.copy()
    best: dict[str, float] = {}
    text_of: dict[str, str] = {}
    members: dict[str, list[float]] = {}
    for code, sim, text in zip(doc_codes, similarities, doc_texts, strict=True):
        sim = float(sim)
        if code not in best or sim > best[code]:
            best[code] = sim
            text_of[code] = text
        members.setdefault(code, []).append(sim)
    if method == "max":  # a total order: score, then code
        vote = best
    elif method == "softmax_sum":
        vote = {
            c: best[c]
            + temperature * float(np.log(np.exp((np.asarray(v) - best[c]) / temperature).sum()))
            for c, v in members.items()
        }
    else:
        raise ValueError(f"unknown aggregation {method!r}; use 'max' or 'softmax_sum'")
    ranked = sorted(vote, key=lambda c: (-vote[c], c))[:k]
    return (
        ranked,
        np.asarray([best[c] for c in ranked], dtype=np.float32),
        [text_of[c] for c in ranked],
        np.asarray([vote[c] for c in ranked], dtype=np.float32),
    )


def _best_first(similarities: Sequence[float]) -> bool:
    """Are the similarities in non-increasing order (no NaN)?"""
    sims = np.asarray(similarities, dtype=np.float64)
    return bool(np.all(sims[:-1] >= sims[1:]))


def _no_ties(similarities: Sequence[float]) -> bool:
    """No two similarities are equal (so the hit order alone is a total order)."""
    sims = np.asarray(similarities, dtype=np.float64)
    return bool(np.all(sims[:-1] != sims[1:]))


def _first_codes(
    doc_codes: Sequence[str], similarities: Sequence[float], doc_texts: Sequence[str], k: int
) -> tuple[list[str], np.ndarray, list[str]]:
    """``max`` aggregation of hits sorted best first (as Chroma returns them): each code's best
    hit is its first one, and the first ``k`` codes met are the top ``k`` (ties in hit order)."""
    best: dict[str, float] = {}
    text_of: dict[str, str] = {}
    for code, sim, text in zip(doc_codes, similarities, doc_texts, strict=True):
        if len(best) == k:
            break
        if code not in best:
            best[code] = float(sim)
            text_of[code] = text
    ranked = list(best)
    return ranked, np.asarray(list(best.values()), dtype=np.float32), [text_of[c] for c in ranked]


class CodeIndex(Protocol):
    #: How document hits become code scores (``aggregate``) and its softmax temperature.
    aggregation: str
    temperature: float

    def build(
        self,
        taxonomy: Taxonomy,
        embedder: Embedder,
        *,
        show_progress: bool = ...,
        version: int = ...,
    ) -> int: ...

    def version(self) -> int: ...

    def search(self, vectors: np.ndarray, k: int) -> SearchResult: ...

    def count(self) -> int: ...


def _collection_name(prefix: str, taxonomy_name: str, version: str, model_id: str) -> str:
    digest = hashlib.sha1(f"{version}|{model_id}".encode()).hexdigest()[:10]
    raw = f"{prefix}-{taxonomy_name}-{digest}"
    name = re.sub(r"[^A-Za-z0-9._-]", "-", raw)[:60].strip("-._")
    return name


def _batches(n: int, size: int) -> Iterator[slice]:
    for start in range(0, n, size):
        yield slice(start, min(start + size, n))


def chroma_location(path: str | Path | None, host: str | None, port: int) -> str:
    """Where a Chroma store lives, for messages: the server's host:port or the store's path."""
    return f"Chroma server {host}:{port}" if host is not None else f"Chroma store {path}"


def _check_server(host: str, port: int, connect_timeout: float) -> None:
    """One quick request with ``connect_timeout``: an unreachable or silent server fails here
    with a clear message instead of hanging (chromadb's client has no timeout)."""
    import httpx

    try:
        httpx.get(f"http://{host}:{port}/api/v2/heartbeat", timeout=connect_timeout)
    except httpx.HTTPError as exc:
        raise IndexConnectionError(
            f"cannot reach the {chroma_location(None, host, port)} within {connect_timeout:g}s "
            f"(index.connect_timeout): {type(exc).__name__}: {redact(exc) or 'no answer'}"
        ) from exc


def _set_timeout(client: ClientAPI, timeout: float, connect_timeout: float) -> None:
    import httpx

    session = getattr(getattr(client, "_server", None), "_session", None)
    if isinstance(session, httpx.Client):
        session.timeout = httpx.Timeout(timeout, connect=connect_timeout)


def open_chroma(
    *,
    path: str | Path | None,
    host: str | None,
    port: int,
    connect_timeout: float,
    timeout: float,
) -> ClientAPI:
    """A Chroma client: the server at ``host:port`` (checked with ``connect_timeout``, requests
    bounded by ``timeout``) when a host is set, else the embedded store at ``path``; any failure
    is an ``IndexConnectionError`` with a redacted message. The code index and the examples'
    collection both open their store here."""
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    settings = ChromaSettings(anonymized_telemetry=False)
    try:
        if host is not None:
            _check_server(host, port, connect_timeout)
            client = chromadb.HttpClient(host=host, port=port, settings=settings)
            _set_timeout(client, timeout, connect_timeout)
            return client
        assert path is not None
        Path(path).mkdir(parents=True, exist_ok=True)
        return chromadb.PersistentClient(path=str(path), settings=settings)
    except (ValueError, OSError) as exc:  # HttpClient raises ValueError when unreachable
        raise IndexConnectionError(
            f"cannot open the {chroma_location(path, host, port)}: {redact(exc)}"
        ) from exc


class ChromaConnection:
    """A Chroma store or server (``path`` or ``host``/``port``) and a client opened on first use.

    The base of the code-text index and the examples' index; subclasses set the attributes.
    """

    path: str | Path | None
    host: str | None
    port: int
    connect_timeout: float
    timeout: float

    @property
    def location(self) -> str:
        """Where the store lives, for messages: the server's host:port or the store's path."""
        return chroma_location(self.path, self.host, self.port)

    @functools.cached_property
    def client(self) -> ClientAPI:
        return open_chroma(
            path=self.path,
            host=self.host,
            port=self.port,
            connect_timeout=self.connect_timeout,
            timeout=self.timeout,
        )


class ChromaIndex(ChromaConnection):
    """Code index in Chroma: embedded ``PersistentClient`` by default, ``HttpClient`` with a host."""

    def __init__(
        self,
        *,
        taxonomy_name: str,
        taxonomy_version: str,
        model_id: str,
        path: str | Path | None = None,
        host: str | None = None,
        port: int = 8000,
        prefix: str = "autocoder",
        kinds: Sequence[str] = TEXT_KINDS,
        candidates: int = 100,
        aggregation: str = "max",
        temperature: float = 0.05,
        hnsw: dict[str, int] | None = None,
        connect_timeout: float = 5.0,
        timeout: float = 120.0,
        search: str = "exact",
    ) -> None:
        if path is None and host is None:
            raise ValueError("ChromaIndex needs a path (embedded store) or a host (server)")
        self.taxonomy_name = taxonomy_name
        self.taxonomy_version = taxonomy_version
        self.model_id = model_id
        self.path = path
        self.host = host
        self.port = port
        self.prefix = prefix
        self.kinds = tuple(kinds)
        self.candidates = candidates
        self.aggregation = aggregation
        self.temperature = temperature
        self.hnsw = hnsw
        self.connect_timeout = connect_timeout
        self.timeout = timeout
        self.search_mode = search
        self._docs: dict[str, Document] = {}
        self._docs_of = ""
        self._vectors: dict[str, np.ndarray] = {}  # doc id -> unit vector (float64)
        self._matrix: tuple[list[str], np.ndarray] | None = None  # every doc, ids sorted

    @property
    def collection_name(self) -> str:
        return _collection_name(
            self.prefix, self.taxonomy_name, self.taxonomy_version, self.model_id
        )

    def _collection(self) -> Collection:
        import httpx
        from chromadb.errors import NotFoundError

        try:
            return self.client.get_collection(self.collection_name)
        except NotFoundError as exc:
            raise IndexNotBuiltError(
                f"no index for taxonomy {self.taxonomy_name} {self.taxonomy_version} with embedder "
                f"{self.model_id} in the {self.location}; run `autocoder index build` first"
            ) from exc
        except (httpx.TransportError, OSError) as exc:
            raise IndexConnectionError(
                f"cannot reach the {self.location}: {type(exc).__name__}: {redact(exc)}"
            ) from exc

    def version(self) -> int:
        """The build number of the collection (``index_version`` metadata; 0 if unrecorded)."""
        metadata = self._collection().metadata or {}
        return int(metadata.get("index_version", 0))

    def build(
        self,
        taxonomy: Taxonomy,
        embedder: Embedder,
        *,
        show_progress: bool = True,
        version: int = 0,
    ) -> int:
        """(Re)build the collection from scratch as build number ``version``; returns the
        number of documents."""
        docs = code_documents(taxonomy, self.kinds)
        if not docs:
            raise ValueError(f"taxonomy {taxonomy.name} has no texts of kinds {self.kinds}")
        from chromadb.errors import NotFoundError

        name = self.collection_name
        try:
            self.client.delete_collection(name)
        except NotFoundError:  # absent collection: nothing to delete
            pass
        collection = self.client.create_collection(
            name,
            metadata={
                "hnsw:space": "cosine",
                **{f"hnsw:{key}": value for key, value in (self.hnsw or {}).items()},
                "taxonomy": taxonomy.name,
                "taxonomy_version": taxonomy.version,
                "embedder": self.model_id,
                "index_version": version,
            },
        )
        max_batch = int(self.client.get_max_batch_size())
        step = max(1, min(max_batch, 4096))
        bar = tqdm(total=len(docs), desc="index", unit="doc", disable=not show_progress)
        for part in _batches(len(docs), step):
            chunk = docs[part]
            vectors = embedder.encode([d.text for d in chunk])
            collection.add(
                ids=[d.id for d in chunk],
                embeddings=vectors.tolist(),
                documents=[d.text for d in chunk],
                metadatas=[{"code": d.code, "kind": d.kind} for d in chunk],
            )
            bar.update(len(chunk))
        bar.close()
        return len(docs)

    def count(self) -> int:
        return int(self._collection().count())

    def _hit_documents(self, collection: Collection, ids: list[list[str]]) -> dict[str, Document]:
        """The documents behind the hit ``ids``, fetched once per collection and kept (a query
        that returns only ids and distances costs Chroma half as much as one with metadata)."""
        self._cache_for(collection)
        wanted = list(dict.fromkeys(i for row in ids for i in row if i not in self._docs))
        for part in _batches(len(wanted), GET_CHUNK):
            got = collection.get(ids=wanted[part], include=["metadatas", "documents"])
            metadatas, documents = got["metadatas"], got["documents"]
            assert metadatas is not None and documents is not None
            for doc_id, meta, text in zip(got["ids"], metadatas, documents, strict=True):
                self._docs[doc_id] = Document(doc_id, str(meta["code"]), str(meta["kind"]), text)
        return self._docs

    def _cache_for(self, collection: Collection) -> None:
        if self._docs_of != str(collection.id):
            self._docs, self._docs_of = {}, str(collection.id)
            self._vectors, self._matrix = {}, None

    def _fetch_vectors(self, collection: Collection, ids: list[str]) -> None:
        """Keep the stored embeddings of ``ids`` (unit length, float64) for exact scoring."""
        wanted = list(dict.fromkeys(i for i in ids if i not in self._vectors))
        for part in _batches(len(wanted), GET_CHUNK):
            got = collection.get(ids=wanted[part], include=["embeddings"])
            embeddings = got["embeddings"]
            assert embeddings is not None
            for doc_id, vector in zip(got["ids"], embeddings, strict=True):
                self._vectors[doc_id] = _unit(np.asarray(vector, dtype=np.float64))

    def _all_vectors(self, collection: Collection) -> tuple[list[str], np.ndarray]:
        """Every document's id (sorted) and unit embedding: the matrix of exact search."""
        if self._matrix is None:
            ids = sorted(collection.get(include=[])["ids"])
            self._fetch_vectors(collection, ids)
            self._matrix = (ids, np.vstack([self._vectors[i] for i in ids]))
        return self._matrix

    def _hits(
        self, collection: Collection, vectors: np.ndarray, n: int
    ) -> tuple[list[list[str]], list[np.ndarray]]:
        """The ``n`` best documents of each query, scored exactly (cosine of the stored
        embeddings, float64) and ordered by score then id: a result that does not depend on
        the run. ``exact``: over every document; ``hnsw``: over Chroma's approximate top
        ``2n``, re-scored."""
        queries = np.vstack([_unit(v) for v in np.asarray(vectors, dtype=np.float64)])
        if self.search_mode == "exact":
            ids, matrix = self._all_vectors(collection)
            pools = [(ids, matrix)] * len(queries)
        else:
            res = collection.query(
                query_embeddings=np.asarray(vectors, dtype=np.float32).tolist(),
                n_results=min(2 * n, collection.count()),
                include=[],
            )
            self._fetch_vectors(collection, [i for row in res["ids"] for i in row])
            pools = [
                (sorted(row), np.vstack([self._vectors[i] for i in sorted(row)]))
                for row in res["ids"]
            ]
        out_ids, out_sims = [], []
        for q, (ids, matrix) in zip(queries, pools, strict=True):
            sims = matrix @ q  # one query at a time: the same bits whatever the batch
            top = np.argpartition(-sims, min(n, len(sims)) - 1)[:n]
            top = top[np.lexsort((top, -sims[top]))]  # score, then id (ids are sorted)
            out_ids.append([ids[i] for i in top])
            out_sims.append(sims[top])
        return out_ids, out_sims

    def search(self, vectors: np.ndarray, k: int) -> SearchResult:
        collection = self._collection()
        result = SearchResult(codes=[], scores=[], evidence=[])
        if len(vectors) == 0:
            return result
        import httpx

        try:
            self._cache_for(collection)
            n = min(self.candidates, collection.count())
            hit_ids, sims = self._hits(collection, vectors, n)
            docs = self._hit_documents(collection, hit_ids)
        except (httpx.TransportError, OSError) as exc:
            raise IndexConnectionError(
                f"lost the {self.location}: {type(exc).__name__}: {redact(exc)}"
            ) from exc
        for ids, row in zip(hit_ids, sims, strict=True):
            hits = [docs[i] for i in ids]
            result.add_hits(
                [d.code for d in hits],
                row.tolist(),
                [d.text for d in hits],
                k=k,
                method=self.aggregation,
                temperature=self.temperature,
            )
        return result


def _unit(vector: np.ndarray) -> np.ndarray:
    norm = float(np.sqrt((vector * vector).sum()))
    return vector / norm if norm > 0 else vector


class MemoryIndex:
    """Brute-force numpy index with the same interface (experiments and unit tests)."""

    def __init__(
        self,
        *,
        kinds: Sequence[str] = TEXT_KINDS,
        candidates: int = 100,
        aggregation: str = "max",
        temperature: float = 0.05,
    ) -> None:
        self.kinds = tuple(kinds)
        self.candidates = candidates
        self.aggregation = aggregation
        self.temperature = temperature
        self._docs: list[Document] = []
        self._matrix: np.ndarray | None = None

    def version(self) -> int:
        return 0

    def build(
        self,
        taxonomy: Taxonomy,
        embedder: Embedder,
        *,
        show_progress: bool = False,
        version: int = 0,
    ) -> int:
        self._docs = code_documents(taxonomy, self.kinds)
        self._matrix = embedder.encode([d.text for d in self._docs], show_progress=show_progress)
        return len(self._docs)

    def count(self) -> int:
        return len(self._docs)

    def search(self, vectors: np.ndarray, k: int) -> SearchResult:
        if self._matrix is None:
            raise RuntimeError("MemoryIndex.search called before build")
        sims = np.asarray(vectors, dtype=np.float32) @ self._matrix.T
        n = min(self.candidates, sims.shape[1])
        result = SearchResult(codes=[], scores=[], evidence=[])
        for row in sims:
            top = np.argpartition(-row, n - 1)[:n]
            top = top[np.argsort(-row[top])]
            result.add_hits(
                [self._docs[i].code for i in top],
                row[top],
                [self._docs[i].text for i in top],
                k=k,
                method=self.aggregation,
                temperature=self.temperature,
            )
        return result


def make_index(
    settings: Settings, workspace: Workspace, taxonomy: Taxonomy, embedder: Embedder
) -> CodeIndex:
    """Build the configured index object (not its contents) for a taxonomy and embedder."""
    cfg = settings.index
    if cfg.backend == "memory":
        return MemoryIndex(
            kinds=cfg.kinds,
            candidates=cfg.candidates_per_query,
            aggregation=cfg.aggregation,
            temperature=cfg.temperature,
        )
    return ChromaIndex(
        taxonomy_name=taxonomy.name,
        taxonomy_version=taxonomy.version,
        model_id=embedder.model_id,
        path=None if cfg.host else workspace.chroma,
        host=cfg.host,
        port=cfg.port,
        prefix=cfg.collection_prefix,
        kinds=cfg.kinds,
        candidates=cfg.candidates_per_query,
        aggregation=cfg.aggregation,
        temperature=cfg.temperature,
        hnsw={
            "construction_ef": cfg.hnsw_construction_ef,
            "search_ef": cfg.hnsw_search_ef,
            "M": cfg.hnsw_m,
            "num_threads": 1,  # the graph is built the same way every time
        },
        connect_timeout=cfg.connect_timeout,
        timeout=cfg.timeout,
        search=cfg.search,
    )


def index_name(index: CodeIndex) -> str:
    """The collection name (Chroma) or ``memory``: the key of the build counter."""
    return str(getattr(index, "collection_name", "memory"))


def next_version(ws: Workspace, index: CodeIndex) -> int:
    """The next build number of ``index`` (the workspace's counter; call under the lock)."""
    path = ws.index_versions
    counters = json.loads(path.read_text()) if path.is_file() else {}
    return int(counters.get(index_name(index), 0)) + 1


def record_version(ws: Workspace, index: CodeIndex, version: int) -> None:
    path = ws.index_versions
    counters = json.loads(path.read_text()) if path.is_file() else {}
    counters[index_name(index)] = version
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(counters, indent=2))
    tmp.replace(path)


@contextlib.contextmanager
def index_in_use(ws: Workspace) -> Iterator[None]:
    """A shared lock on the workspace's index: jobs reading it run together, a rebuild waits
    for none of them and fails clearly instead (``LockedError``)."""
    with file_lock(
        ws.index_lock,
        exclusive=False,
        busy="the index is being rebuilt (autocoder index build); run this again when it is done",
    ):
        yield


def build_locked(
    ws: Workspace, index: CodeIndex, taxonomy: Taxonomy, embedder: Embedder, *, show_progress: bool
) -> int:
    """Rebuild ``index`` under the workspace's exclusive index lock as its next version."""
    with file_lock(
        ws.index_lock,
        exclusive=True,
        busy="the index is in use by a running job or another build; try again when it is done",
    ):
        version = next_version(ws, index)
        n = index.build(taxonomy, embedder, show_progress=show_progress, version=version)
        record_version(ws, index, version)
    return n
