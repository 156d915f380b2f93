"""RetrievalCoder: its probabilities follow the index's aggregation of document hits."""

from __future__ import annotations

import numpy as np
import pytest

from autocoder.coding.retrieval import RetrievalCoder
from autocoder.index import SearchResult
from tests.fakes import HashingEmbedder

HITS = (["a", "b", "b", "b"], [0.90, 0.88, 0.87, 0.86])  # one best text against three good ones


class FixedHits:
    """An index that answers every query with the same document hits."""

    def __init__(self, method: str, temperature: float) -> None:
        self.method = method
        self.temperature = temperature

    def search(self, vectors: np.ndarray, k: int) -> SearchResult:
        out = SearchResult(codes=[], scores=[], evidence=[])
        for _ in vectors:
            out.add_hits(*HITS, [""] * 4, k=k, method=self.method, temperature=self.temperature)
        return out


def _coder(method: str, temperature: float = 0.05) -> RetrievalCoder:
    index = FixedHits(method, temperature)
    return RetrievalCoder(
        index,  # type: ignore[arg-type]
        HashingEmbedder(),
        classes=["a", "b", "c"],
        temperature=temperature,
    ).fit()


def test_soft_voting_probabilities_are_vote_shares() -> None:
    coder = _coder("softmax_sum")
    codes, probs, _ = coder.rank(["nurse"])
    votes = {"a": np.exp(0.90 / 0.05), "b": sum(np.exp(s / 0.05) for s in (0.88, 0.87, 0.86))}
    total = sum(votes.values())
    assert codes[0] == ["b", "a"]
    assert np.allclose(probs[0], [votes["b"] / total, votes["a"] / total], atol=1e-5)
    # the most probable code is the one ranked first (before, the probabilities came from
    # the best similarity and named "a" while the ranking named "b")
    assert coder.predict(["nurse"])[0] == "b"
    proba = coder.predict_proba(["nurse"])[0]
    assert proba[2] == 0.0 and proba.sum() == pytest.approx(1.0, abs=1e-5)


def test_max_aggregation_is_a_softmax_of_best_similarities() -> None:
    coder = _coder("max")
    codes, probs, _ = coder.rank(["nurse"])
    assert codes[0] == ["a", "b"]
    e = np.exp(np.array([0.90, 0.88]) / 0.05)
    assert np.allclose(probs[0], e / e.sum(), atol=1e-5)
    assert coder.predict(["nurse"])[0] == "a"
