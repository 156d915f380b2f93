"""RetrievalCoder: the baseline predictor — nearest code texts in the CodeIndex.

Follows the scikit-learn contract: ``fit`` (records the classes), ``predict_proba`` over
``classes_`` and ``predict``. Probabilities are a softmax over the retrieved codes' votes (the
index's aggregation: best similarity, or soft voting; codes not retrieved get 0); the top-1
probability is the confidence. It is a ``Predictor``, an ``EmbeddingPredictor`` (``embed``:
the index's query embeddings) and a ``Retriever`` (``rank``), see
:mod:`autocoder.coding.predictor`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from autocoder.coding.predictor import Capabilities
from autocoder.embed import Embedder
from autocoder.index import CodeIndex, SearchResult
from autocoder.mathx import softmax
from autocoder.records import RecordsLike, as_records

#: Queries per index search: Chroma looks up every hit's metadata in one SQL statement, which
#: fails past SQLite's variable limit for thousands of queries at once.
QUERY_CHUNK = 200


class RetrievalCoder:
    #: No conformal sets; embeddings are the index embedder's query vectors.
    capabilities = Capabilities(sets=False, embeddings=True)

    def __init__(
        self,
        index: CodeIndex,
        embedder: Embedder,
        *,
        classes: list[str] | None = None,
        top_k: int = 20,
        temperature: float = 0.05,
    ) -> None:
        self.index = index
        self.embedder = embedder
        self.classes = classes
        self.top_k = top_k
        self.temperature = temperature

    def fit(self, X: Any = None, y: Any = None) -> RetrievalCoder:
        """Nothing to learn: records the code list (``classes`` or the labels ``y``)."""
        if self.classes is not None:
            labels = list(self.classes)
        elif y is not None:
            labels = sorted({str(v) for v in y})
        else:
            raise ValueError("RetrievalCoder.fit needs classes= (the taxonomy's leaf codes) or y")
        self.classes_ = np.asarray(sorted(labels))
        self._pos = {c: i for i, c in enumerate(self.classes_)}
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "classes_"):
            raise RuntimeError("RetrievalCoder is not fitted; call fit() first")

    def describe(self) -> dict[str, Any]:
        """What shapes its probabilities (stored with a mixture fitted on them): the index's
        aggregation and the softmax temperature."""
        return {"aggregation": self.index.aggregation, "temperature": float(self.temperature)}

    def embed(self, X: RecordsLike) -> np.ndarray:
        """The records' query embeddings, as the index is searched with them."""
        queries = [r.query() for r in as_records(X)]
        return np.asarray(self.embedder.encode(queries, is_query=True), dtype=np.float32)

    def search(self, X: RecordsLike) -> SearchResult:
        """The index's top ``top_k`` codes of every record (searched ``QUERY_CHUNK`` at a time)."""
        vectors = self.embed(X)
        out = SearchResult(codes=[], scores=[], evidence=[])
        for start in range(0, len(vectors), QUERY_CHUNK):  # results do not depend on the chunk
            res = self.index.search(vectors[start : start + QUERY_CHUNK], self.top_k)
            out.codes += res.codes
            out.scores += res.scores
            out.evidence += res.evidence
            out.votes += res.votes
        return out

    def probabilities(self, votes: np.ndarray) -> np.ndarray:
        """Retrieval's distribution over one record's retrieved codes, from their votes."""
        return softmax(votes, self.temperature)

    def rank(self, X: RecordsLike) -> tuple[list[list[str]], list[np.ndarray], list[list[str]]]:
        """Top ``top_k`` codes per record with their probabilities and matched evidence text."""
        self._check_fitted()
        res = self.search(X)
        return res.codes, [self.probabilities(v) for v in res.votes], res.evidence

    def predict_proba(self, X: RecordsLike) -> np.ndarray:
        codes, probs, _ = self.rank(X)
        out = np.zeros((len(codes), len(self.classes_)), dtype=np.float32)
        for i, (row_codes, row_probs) in enumerate(zip(codes, probs, strict=True)):
            for code, p in zip(row_codes, row_probs, strict=True):
                j = self._pos.get(code)
                if j is not None:
                    out[i, j] = p
        return out

    def predict(self, X: RecordsLike) -> np.ndarray:
        proba = self.predict_proba(X)
        return self.classes_[proba.argmax(axis=1)]
