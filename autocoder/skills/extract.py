"""Skill extraction: rank ESCO skills for posting text.

Each text is split into sentences; each sentence gives candidates — the sentence itself and its
token n-gram spans. Candidates are matched to every ESCO skill two ways:

* embedding similarity (cosine) between candidate and skill preferred label, with the skill
  matcher (a bi-encoder fine-tuned on skill pairs) or any sentence-transformers model;
* character n-gram Jaccard on normalised text between a span and the skill's labels
  (preferred, alternate), kept when at least ``jaccard_threshold`` (0.66).

A skill's score is ``max(sentence similarity, span_weight * best span similarity)`` raised to
the Jaccard score when a span matches by Jaccard (``max`` of the two signals), so an exact
mention always ranks high. Across a record's sentences a skill keeps its best score.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from autocoder.skills.data import GoldSentence, SkillCatalog
from autocoder.skills.text import JaccardIndex, candidate_spans, split_sentences


@dataclass(frozen=True)
class SkillHit:
    uri: str
    label: str
    score: float
    span: str = ""  # the span that matched best ("" when the sentence itself did)


class SkillExtractor:
    """Rank ESCO skills for texts. ``fit(catalog)`` embeds the labels; ``rank`` scores texts.

    ``embedder`` is anything with ``encode(texts) -> (n, d)`` normalised vectors
    (:class:`autocoder.embed.Embedder`).
    """

    def __init__(
        self,
        embedder: Any,
        *,
        top_k: int = 10,
        max_ngram: int = 4,
        span_weight: float = 1.0,
        use_spans: bool = True,
        use_jaccard: bool = True,
        jaccard_threshold: float = 0.66,
        jaccard_weight: float = 1.0,
    ) -> None:
        self.embedder = embedder
        self.top_k = top_k
        self.max_ngram = max_ngram
        self.span_weight = span_weight
        self.use_spans = use_spans
        self.use_jaccard = use_jaccard
        self.jaccard_threshold = jaccard_threshold
        self.jaccard_weight = jaccard_weight

    def fit(self, catalog: SkillCatalog, *, show_progress: bool = False) -> SkillExtractor:
        if not len(catalog):
            raise ValueError("the skill catalogue is empty")
        self.catalog_ = catalog
        self.classes_ = np.asarray(catalog.uris, dtype=object)
        vecs = self.embedder.encode(list(catalog.labels), show_progress=show_progress)
        self.label_vectors_ = np.asarray(vecs, dtype=np.float32)
        if self.use_jaccard:
            texts, owners = [], []
            for i, label in enumerate(catalog.labels):
                for form in [label, *catalog.alt_labels[i]]:
                    texts.append(form)
                    owners.append(i)
            self.jaccard_ = JaccardIndex(threshold=self.jaccard_threshold).fit(texts, owners)
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "label_vectors_"):
            raise RuntimeError("SkillExtractor is not fitted; call fit(catalog) first")

    def score_sentences(self, sentences: Sequence[str]) -> tuple[np.ndarray, list[list[str]]]:
        """``(n_sentences, n_skills)`` scores and each sentence's candidate spans; the best
        span per (sentence, skill) is kept in ``best_span_`` (-1 = the sentence itself)."""
        self._check_fitted()
        spans = [
            candidate_spans(s, max_n=self.max_ngram) if self.use_spans else [] for s in sentences
        ]
        flat = [sp for group in spans for sp in group]
        texts = list(sentences) + flat
        vecs = np.asarray(self.embedder.encode(texts, is_query=True), dtype=np.float32)
        sims = vecs @ self.label_vectors_.T
        scores = sims[: len(sentences)].copy()
        span_sims = sims[len(sentences) :] * self.span_weight
        if self.use_jaccard and flat:
            for j, hits in enumerate(self.jaccard_.search(flat)):
                for skill, value in hits.items():
                    span_sims[j, skill] = max(span_sims[j, skill], self.jaccard_weight * value)
        self.best_span_ = np.full(scores.shape, -1, dtype=np.int32)
        offset = 0
        cols = np.arange(scores.shape[1])
        for i, group in enumerate(spans):
            if group:
                block = span_sims[offset : offset + len(group)]
                arg = block.argmax(axis=0)
                best = block[arg, cols]
                better = best > scores[i]
                scores[i] = np.where(better, best, scores[i])
                self.best_span_[i] = np.where(better, arg, -1)
                offset += len(group)
        return scores, spans

    def rank_sentences(
        self, sentences: Sequence[str], top_k: int | None = None
    ) -> list[list[SkillHit]]:
        """Top skills for each sentence (the benchmark unit)."""
        k = top_k or self.top_k
        if not len(sentences):
            return []
        scores, spans = self.score_sentences(sentences)
        out = []
        for i in range(len(sentences)):
            order = np.argsort(-scores[i])[:k]
            out.append(
                [
                    SkillHit(
                        self.catalog_.uris[j],
                        self.catalog_.labels[j],
                        float(scores[i, j]),
                        spans[i][self.best_span_[i, j]] if self.best_span_[i, j] >= 0 else "",
                    )
                    for j in order
                ]
            )
        return out

    def rank(self, texts: Sequence[str], top_k: int | None = None) -> list[list[SkillHit]]:
        """Top skills for each text (a posting): sentences scored, best score per skill kept.

        All sentences of all ``texts`` are encoded together (one pass per batch of texts)."""
        k = top_k or self.top_k
        per_text = [split_sentences(t) for t in texts]
        flat = [s for sentences in per_text for s in sentences]
        ranked = iter(self.rank_sentences(flat, top_k=k)) if flat else iter([])
        out: list[list[SkillHit]] = []
        for sentences in per_text:
            best: dict[str, SkillHit] = {}
            for _ in sentences:
                for hit in next(ranked):
                    if hit.uri not in best or hit.score > best[hit.uri].score:
                        best[hit.uri] = hit
            out.append(sorted(best.values(), key=lambda h: -h.score)[:k])
        return out


def r_precision_at_k(
    ranked: Sequence[Sequence[str]], gold: Sequence[Sequence[str]], k: int
) -> float:
    """Decorte et al. 2023 RP@K: mean over items with gold of |top-K ∩ gold| / min(K, |gold|)."""
    values = []
    for pred, truth in zip(ranked, gold, strict=True):
        truth_set = set(truth)
        if not truth_set:
            continue
        hit = len(set(pred[:k]) & truth_set)
        values.append(hit / min(k, len(truth_set)))
    return float(np.mean(values)) if values else float("nan")


def evaluate_extractor(
    extractor: SkillExtractor, gold: Sequence[GoldSentence], ks: Sequence[int] = (5, 10)
) -> dict[str, float]:
    """RP@K of ``extractor`` ranking each gold sentence; labels are ESCO preferred labels."""
    hits = extractor.rank_sentences([g.sentence for g in gold], top_k=max(ks))
    ranked = [[h.label for h in row] for row in hits]
    labels = [g.labels for g in gold]
    out = {f"rp@{k}": round(r_precision_at_k(ranked, labels, k), 4) for k in ks}
    out["sentences"] = len(gold)
    return out
