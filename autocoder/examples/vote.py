"""Coded examples vote: a soft-vote kNN over the examples, an exact-match lookup, and the
mixture of both with another predictor (retrieval over code texts, or a trained model).

For a record, its ``neighbours`` nearest examples at least ``min_similarity`` close each give
their code a vote ``weight * exp((sim - best_sim) / temperature)`` (similarity-weighted soft
voting; examples farther away say nothing); the votes,
normalised, are ``p_knn``. When examples with the record's very normalised title exist, their
weighted votes, normalised, are ``p_exact`` and replace ``p_knn`` in proportion ``exact_weight``.
The record's distribution is then

    p = (1 - a) * p_base + a * p_examples,   a = exact_trust (exact match) or weight (else)

sharpened or flattened by ``blend_temperature`` (``p ** (1 / T)``, renormalised, on rows where
only neighbours vote): a mixture of two calibrated distributions is not calibrated itself.
``autocoder examples fit`` (:mod:`autocoder.examples.fit`) chooses these settings and ``T`` on
examples held out of the store.

so examples that agree on the very title make the code near-certain (``exact_trust`` = 0.95
gives at least 0.95), examples that disagree split that mass by their votes, and neighbours
that are only similar move the base ranking by ``weight``. Nothing is trained: a store that
changed is read on the next job.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Protocol

import numpy as np
import pandas as pd

from autocoder.embed import Embedder
from autocoder.examples.index import Neighbours
from autocoder.examples.store import REVIEW_PREFIX, example_key
from autocoder.records import JobRecord, RecordsLike, as_records

#: Records embedded and searched per request.
QUERY_CHUNK = 200


class ExampleIndex(Protocol):
    def ensure(self, table: pd.DataFrame, content_hash: str, embedder: Embedder) -> int: ...

    def neighbours(self, vectors: np.ndarray) -> Neighbours: ...


def exact_votes(table: pd.DataFrame) -> dict[str, dict[str, float]]:
    """``{normalised title: {code: summed weight}}`` over the stored examples."""
    votes: dict[str, dict[str, float]] = defaultdict(dict)
    for key, code, weight in zip(table["key"], table["code"], table["weight"], strict=True):
        votes[str(key)][str(code)] = votes[str(key)].get(str(code), 0.0) + float(weight)
    return dict(votes)


def knn_votes(
    codes: list[str],
    sims: np.ndarray,
    weights: np.ndarray,
    *,
    k: int,
    temperature: float,
    min_similarity: float = 0.0,
) -> dict[str, float]:
    """Soft votes of the first ``k`` neighbours (best first) at least ``min_similarity``
    close, normalised to sum to 1 (``{}`` when none is that close: far examples say nothing)."""
    sims, weights = np.asarray(sims[:k], np.float64), np.asarray(weights[:k], np.float64)
    near = sims >= min_similarity
    if not near.any():
        return {}
    sims, weights = sims[near], weights[near]
    votes = weights * np.exp((sims - sims.max()) / temperature)
    out: dict[str, float] = {}
    for code, v in zip([c for c, n in zip(codes[:k], near, strict=True) if n], votes, strict=True):
        out[code] = out.get(code, 0.0) + float(v)
    total = sum(out.values())
    return {c: v / total for c, v in out.items()} if total > 0 else {}


def example_distribution(
    knn: dict[str, float], exact: dict[str, float] | None, exact_weight: float
) -> dict[str, float]:
    """``p_knn`` blended with the normalised exact-title votes (when there are any)."""
    if not exact:
        return knn
    total = sum(exact.values())
    out = {c: (1.0 - exact_weight) * p for c, p in knn.items()} if knn else {}
    share = exact_weight if knn else 1.0
    for code, v in exact.items():
        out[code] = out.get(code, 0.0) + share * v / total
    return out


class ExampleVoter:
    """``Predictor`` over the coded examples alone (scikit-learn contract); ``fit`` embeds the
    examples into ``index`` (once per store content) and notes the exact-title votes."""

    def __init__(
        self,
        index: ExampleIndex,
        embedder: Embedder,
        *,
        classes: list[str],
        neighbours: int = 10,
        temperature: float = 0.05,
        exact_weight: float = 0.9,
        min_similarity: float = 0.5,
    ) -> None:
        self.index = index
        self.embedder = embedder
        self.classes = classes
        self.neighbours = neighbours
        self.temperature = temperature
        self.exact_weight = exact_weight
        self.min_similarity = min_similarity

    def fit(self, table: pd.DataFrame, content_hash: str) -> ExampleVoter:
        self.classes_ = np.asarray(sorted(self.classes))
        self._pos = {c: i for i, c in enumerate(self.classes_)}
        known = table["code"].isin(set(self.classes_))
        self.n_examples_ = self.index.ensure(table[known], content_hash, self.embedder)
        self.exact_ = exact_votes(table[known])
        sources = table.loc[known, "source"].astype(str)
        self.reviewed_ = set(table.loc[known, "key"][sources.str.startswith(REVIEW_PREFIX)])
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "classes_"):
            raise RuntimeError("ExampleVoter is not fitted; call fit() first")

    def evidence(
        self, records: list[JobRecord]
    ) -> tuple[Neighbours, list[dict[str, float] | None]]:
        """Per record its nearest examples (best first) and its exact-title votes (None
        without an exact match): what ``distributions`` turns into votes."""
        self._check_fitted()
        found = Neighbours([], [], [], [])
        exact = [self.exact_votes_of(rec) for rec in records]
        if not self.n_examples_:
            return found, exact
        for start in range(0, len(records), QUERY_CHUNK):
            part = records[start : start + QUERY_CHUNK]
            vectors = self.embedder.encode([r.query() for r in part], is_query=True)
            got = self.index.neighbours(vectors)
            found.codes += got.codes
            found.sims += got.sims
            found.weights += got.weights
            found.keys += got.keys
        return found, exact

    def distributions(self, records: list[JobRecord]) -> tuple[list[dict[str, float]], np.ndarray]:
        """Per record its examples' distribution (``{}`` when there are no examples) and
        whether its normalised title matched examples exactly."""
        found, votes = self.evidence(records)
        exact = np.asarray([bool(v) for v in votes], dtype=bool)
        if not self.n_examples_:
            return [{} for _ in records], np.zeros(len(records), dtype=bool)
        out = [
            example_distribution(
                knn_votes(codes, sims, weights, k=self.neighbours, temperature=self.temperature,
                          min_similarity=self.min_similarity),
                v,
                self.exact_weight,
            )
            for codes, sims, weights, v in zip(
                found.codes, found.sims, found.weights, votes, strict=True
            )
        ]  # fmt: skip
        return out, exact

    def exact_key_of(self, record: JobRecord) -> str:
        """The normalised title whose examples are ``record``'s exact matches: its title as
        written when examples hold it, else its (cleaned) title."""
        if record.written:
            key = example_key(record.written)
            if self.exact_.get(key):
                return key
        return example_key(record.title)

    def exact_votes_of(self, record: JobRecord) -> dict[str, float] | None:
        """The exact-title votes for ``record`` (of :meth:`exact_key_of`)."""
        return self.exact_.get(self.exact_key_of(record))

    def reviewed(self, records: list[JobRecord]) -> np.ndarray:
        """Per record whether its exact-title examples (:meth:`exact_key_of`) include a
        reviewer's answer (source ``review:<project>``)."""
        self._check_fitted()
        return np.asarray([self.exact_key_of(r) in self.reviewed_ for r in records], dtype=bool)

    def exact_agreement(self, records: list[JobRecord]) -> tuple[list[str], np.ndarray]:
        """Per record the code its exact-title examples vote for most (``""`` without an exact
        match) and that code's share of their summed weight (0 without one): 1.0 when every
        example of the very title agrees."""
        self._check_fitted()
        codes, share = [], np.zeros(len(records))
        for i, rec in enumerate(records):
            votes = self.exact_votes_of(rec) or {}
            total = sum(votes.values())
            if not votes or total <= 0:
                codes.append("")
                continue
            code = max(sorted(votes), key=lambda c: votes[c])
            codes.append(code)
            share[i] = votes[code] / total
        return codes, share

    def dense(self, dists: list[dict[str, float]]) -> np.ndarray:
        out = np.zeros((len(dists), len(self.classes_)), dtype=np.float64)
        for i, dist in enumerate(dists):
            for code, p in dist.items():
                out[i, self._pos[code]] = p
        return out

    def predict_proba(self, X: RecordsLike) -> np.ndarray:
        dists, _ = self.distributions(as_records(X))
        return self.dense(dists).astype(np.float32)

    def predict(self, X: RecordsLike) -> np.ndarray:
        return self.classes_[self.predict_proba(X).argmax(axis=1)]


def blend(
    p_base: np.ndarray, p_examples: np.ndarray, exact: np.ndarray, *, weight: float,
    exact_trust: float, temperature: float = 1.0,
) -> np.ndarray:  # fmt: skip
    """``(1 - a) p_base + a p_examples`` per row, ``a`` = ``exact_trust`` where the title
    matched examples exactly, ``weight`` where examples are only neighbours, 0 without any;
    then, on the rows where only neighbours vote, ``p ** (1 / temperature)`` renormalised
    (``temperature`` = 1 leaves them as they are). Rows without examples keep ``p_base`` (it is
    calibrated on its own) and exact-title rows keep the blend (their confidence is the
    ``exact_trust`` rule), whatever the temperature."""
    p_examples = np.asarray(p_examples, np.float64)
    has = p_examples.sum(axis=1) > 0
    a = np.where(exact, exact_trust, weight) * has
    p = (1.0 - a)[:, None] * np.asarray(p_base, np.float64) + a[:, None] * p_examples
    near = has & ~np.asarray(exact, dtype=bool)
    if temperature != 1.0 and near.any():
        q = np.power(np.clip(p[near], 1e-12, None), 1.0 / temperature)
        p[near] = q / q.sum(axis=1, keepdims=True)
    return p
