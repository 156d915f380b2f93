"""What every coder is to its callers: the ``Predictor`` protocol (and ``top_n`` over it).

The retrieval coder (``autocoder.retrieval.RetrievalCoder``), the trained classifier
(``autocoder.classify.model.EmbeddingClassifier``) and the LLM labeler
(``autocoder.labeler.RAGLabeler``) all satisfy ``Predictor``; the batch coder, evaluation and
review take a ``Predictor`` and never ask which one they hold. Two optional capabilities have
their own protocols: ``SetPredictor`` (conformal prediction sets) and ``Retriever`` (the top-k
candidate codes with the matched evidence, what the labeler and the synthesiser need).

``X`` is anything :func:`autocoder.records.as_records` reads.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from autocoder.records import RecordsLike


@runtime_checkable
class Predictor(Protocol):
    """A fitted scikit-learn style classifier over occupation codes."""

    @property
    def classes_(self) -> np.ndarray:
        """The codes, one per column of ``predict_proba``."""
        ...

    def predict(self, X: RecordsLike) -> np.ndarray:
        """The most probable code per record, shape ``(n,)``."""
        ...

    def predict_proba(self, X: RecordsLike) -> np.ndarray:
        """Probabilities, shape ``(n, len(classes_))``; rows sum to at most 1."""
        ...


@runtime_checkable
class SetPredictor(Predictor, Protocol):
    """A predictor that also returns conformal prediction sets (most probable code first)."""

    def predict_sets(
        self, X: RecordsLike, *, proba: np.ndarray | None = None
    ) -> list[list[str]]: ...


@runtime_checkable
class Retriever(Protocol):
    """Ranks candidate codes: per record the codes best first, their probabilities and the
    code text that matched (``RetrievalCoder.rank``)."""

    def rank(self, X: RecordsLike) -> tuple[list[list[str]], list[np.ndarray], list[list[str]]]: ...


def top_n(proba: np.ndarray, classes: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``n`` most probable codes per row and their probabilities, best first.

    Returns ``(codes, scores)``, both of shape ``(rows, min(n, len(classes)))``.
    """
    proba = np.asarray(proba)
    k = min(n, proba.shape[1]) if proba.ndim == 2 else 0
    if k == 0 or len(proba) == 0:
        return np.empty((len(proba), k), dtype=object), np.empty((len(proba), k))
    order = np.argsort(-proba, axis=1)[:, :k]
    codes = np.asarray(classes, dtype=object)[order]
    return codes, np.take_along_axis(proba, order, axis=1)
