"""What every coder is to its callers: the ``Predictor`` protocol (and ``top_n`` over it).

The retrieval coder (``autocoder.coding.retrieval.RetrievalCoder``), the trained classifier
(``autocoder.classify.model.EmbeddingClassifier``), their mixture
(``autocoder.coding.mixture.CombinedPredictor``) and the LLM labeler
(``autocoder.labeler.RAGLabeler``) all satisfy ``Predictor``; the batch coder, evaluation and
review take a ``Predictor`` and never ask which one they hold. Optional capabilities are
declared, never guessed: a predictor class states them in its ``capabilities`` attribute
(``Capabilities``: conformal ``sets``, record ``embeddings``) and implements the matching
protocol (``SetPredictor``, ``EmbeddingPredictor``); ``capabilities_of`` reads the declaration
(a predictor that declares nothing has no optional capability). ``Retriever`` (the top-k
candidate codes with the matched evidence) is what the labeler and the synthesiser need.

``X`` is anything :func:`autocoder.records.as_records` reads.
"""

from __future__ import annotations

from dataclasses import dataclass
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
class EmbeddingPredictor(Predictor, Protocol):
    """A predictor that embeds records with its own embedder (what diversity sampling and the
    emerging-occupation clusters read)."""

    def embed(self, X: RecordsLike) -> np.ndarray:
        """One float32 vector per record, shape ``(n, dim)``."""
        ...


@dataclass(frozen=True)
class Capabilities:
    """What a predictor can do beyond ``predict_proba``, as its class declares it."""

    sets: bool = False  #: conformal prediction sets (``SetPredictor.predict_sets``)
    embeddings: bool = False  #: record embeddings (``EmbeddingPredictor.embed``)


@runtime_checkable
class DeclaresCapabilities(Protocol):
    """A predictor stating its optional capabilities."""

    @property
    def capabilities(self) -> Capabilities: ...


def capabilities_of(predictor: Predictor) -> Capabilities:
    """The capabilities ``predictor`` declares; each one declared must come with its protocol."""
    if not isinstance(predictor, DeclaresCapabilities):
        return Capabilities()
    caps = predictor.capabilities
    if caps.sets and not isinstance(predictor, SetPredictor):
        raise TypeError(f"{type(predictor).__name__} declares sets but has no predict_sets")
    if caps.embeddings and not isinstance(predictor, EmbeddingPredictor):
        raise TypeError(f"{type(predictor).__name__} declares embeddings but has no embed")
    return caps


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
