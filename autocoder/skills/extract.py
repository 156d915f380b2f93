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

The default path is built for batches: distinct texts are encoded once (and remembered across
batches), label vectors are cached on disk, texts meet labels in blocked matrix products that
keep each text's top skills, and only the union of a sentence's candidates is rescored exactly —
the same ranking as ``exhaustive=True``, which scores every pair.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import chain, islice
from pathlib import Path
from typing import Any, Generic, Literal, TypeVar

import numpy as np
from threadpoolctl import threadpool_limits

from autocoder.skills.data import GoldSentence, SkillCatalog
from autocoder.skills.text import JaccardIndex, candidate_spans, split_sentences


@dataclass(frozen=True)
class SkillHit:
    uri: str
    label: str
    score: float
    span: str = ""  # the span that matched best ("" when the sentence itself did)


V = TypeVar("V")

#: Extra skills kept per text when the fast path preselects in float32 (it rescores them in
#: float64, so a rounding difference between the two cannot push a true top skill out).
MARGIN = 8
#: Floats of one similarity block (rows of texts x label keys): about 64 MB.
BLOCK_FLOATS = 16_000_000


@dataclass
class SentenceScores:
    """One sentence's top skills: catalogue indices, scores and the winning text (-1 = the
    sentence itself, else an index into its candidate spans)."""

    skills: np.ndarray
    scores: np.ndarray
    best: np.ndarray
    spans: list[str]


class Memo(Generic[V]):
    """A bounded ``text -> value`` memory; the oldest entries go first (``size`` 0: none)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.data: dict[str, V] = {}

    def get_many(self, texts: list[str], compute: Callable[[list[str]], Sequence[V]]) -> list[V]:
        """The values of distinct ``texts``; ``compute`` is called once, on those not kept."""
        missing = [t for t in texts if t not in self.data]
        fresh = dict(zip(missing, compute(missing), strict=True)) if missing else {}
        out = [fresh[t] if t in fresh else self.data[t] for t in texts]
        if self.size > 0:
            self.data.update(fresh)
            for old in list(islice(self.data, max(0, len(self.data) - self.size))):
                del self.data[old]
        return out


class SkillExtractor:
    """Rank ESCO skills for texts. ``fit(catalog)`` embeds the labels; ``rank`` scores texts.

    ``embedder`` is anything with ``encode(texts) -> (n, d)`` normalised vectors
    (:class:`autocoder.embed.Embedder`). ``label_keys="all"`` embeds the alternate labels too,
    each an extra key of its skill (a skill scores its best key). ``cache_dir`` keeps the label
    vectors on disk, keyed by the embedder's ``model_id`` and the keys (an embedder without a
    ``model_id`` is not cached). ``exhaustive=True`` scores every (text, skill) pair in one
    matrix — the reference the default path (blocks, per-text top skills, exact rescoring of the
    union) must reproduce. The vectors and Jaccard matches of the last ``memo_size`` distinct
    texts are kept in memory across batches (postings repeat their phrases).
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
        label_keys: Literal["preferred", "all"] = "preferred",
        cache_dir: str | Path | None = None,
        exhaustive: bool = False,
        memo_size: int = 100_000,
    ) -> None:
        self.embedder = embedder
        self.top_k = top_k
        self.max_ngram = max_ngram
        self.span_weight = span_weight
        self.use_spans = use_spans
        self.use_jaccard = use_jaccard
        self.jaccard_threshold = jaccard_threshold
        self.jaccard_weight = jaccard_weight
        self.label_keys = label_keys
        self.cache_dir = cache_dir
        self.exhaustive = exhaustive
        self.memo_size = memo_size

    def fit(self, catalog: SkillCatalog, *, show_progress: bool = False) -> SkillExtractor:
        if not len(catalog):
            raise ValueError("the skill catalogue is empty")
        if self.span_weight <= 0:
            raise ValueError(f"span_weight must be > 0, not {self.span_weight}")
        self.catalog_ = catalog
        self.classes_ = np.asarray(catalog.uris, dtype=object)
        keys, owners = label_keys(catalog, self.label_keys)
        self.key_owner_ = np.asarray(owners, dtype=np.int64)
        self.key_starts_ = np.searchsorted(self.key_owner_, np.arange(len(catalog)))
        self.label_vectors_ = label_vectors(
            self.embedder, keys, self.cache_dir, show_progress=show_progress
        )
        self.vectors_memo_: Memo[np.ndarray] = Memo(self.memo_size)
        self.jaccard_memo_: Memo[dict[int, float]] = Memo(self.memo_size)
        if self.use_jaccard:
            texts, forms_of = [], []
            for i, label in enumerate(catalog.labels):
                for form in [label, *catalog.alt_labels[i]]:
                    texts.append(form)
                    forms_of.append(i)
            self.jaccard_ = JaccardIndex(threshold=self.jaccard_threshold).fit(texts, forms_of)
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "label_vectors_"):
            raise RuntimeError("SkillExtractor is not fitted; call fit(catalog) first")

    def _per_skill(self, sims: np.ndarray) -> np.ndarray:
        """Key similarities ``(rows, keys)`` -> skill similarities (best key per skill)."""
        if len(self.key_owner_) == len(self.catalog_):
            return sims
        return np.maximum.reduceat(sims, self.key_starts_, axis=1)

    def _encode(self, sentences: Sequence[str]) -> tuple[list[list[str]], dict[str, int], Any]:
        """Candidate spans per sentence, each distinct text's row and the rows' vectors: a
        text met twice (as a sentence or a span, in this batch or a recent one) is encoded
        once."""
        spans = [
            candidate_spans(s, max_n=self.max_ngram) if self.use_spans else [] for s in sentences
        ]
        row = {t: i for i, t in enumerate(dict.fromkeys([*sentences, *chain(*spans)]))}

        def encode(texts: list[str]) -> list[np.ndarray]:
            return list(np.asarray(self.embedder.encode(texts, is_query=True), dtype=np.float32))

        vecs = np.vstack(self.vectors_memo_.get_many(list(row), encode))
        return spans, row, vecs

    def _jaccard(self, spans: list[list[str]]) -> dict[str, dict[int, float]]:
        if not self.use_jaccard:
            return {}
        distinct = list(dict.fromkeys(chain(*spans)))
        found = self.jaccard_memo_.get_many(distinct, self.jaccard_.search)
        return dict(zip(distinct, found, strict=True))

    def _finish(
        self, sims: np.ndarray, group: list[str], jac: dict[str, dict[int, float]], k: int,
        skills: np.ndarray,
    ) -> SentenceScores:  # fmt: skip
        """Combine one sentence's similarities ``(1 + spans, len(skills))`` (float64) into
        its top ``k`` of ``skills`` (ascending catalogue indices): spans weighted, Jaccard
        raised, each skill's best text; ties go to the lower catalogue index."""
        sims[1:] *= self.span_weight
        if jac:
            column = {int(s): c for c, s in enumerate(skills)}
            for j, span in enumerate(group, 1):
                for skill, value in jac.get(span, {}).items():
                    if skill in column:
                        c = column[skill]
                        sims[j, c] = max(sims[j, c], self.jaccard_weight * value)
        best = sims.argmax(axis=0)  # first maximum: the sentence wins ties, then earlier spans
        scores = sims[best, np.arange(sims.shape[1])]
        order = np.argsort(-scores, kind="stable")[:k]
        return SentenceScores(skills[order], scores[order], best[order] - 1, group)

    def score_exhaustive(self, sentences: Sequence[str], k: int) -> list[SentenceScores]:
        """The reference: every text against every skill in one float64 matrix."""
        spans, row, vecs = self._encode(sentences)
        jac = self._jaccard(spans)
        sims = self._per_skill(vecs.astype(np.float64) @ self.label_vectors_.T.astype(np.float64))
        every = np.arange(len(self.catalog_))
        out = []
        for sentence, group in zip(sentences, spans, strict=True):
            rows = [row[sentence], *(row[s] for s in group)]
            out.append(self._finish(sims[rows], group, jac, k, every))
        return out

    def _top_rows(self, vecs: np.ndarray, m: int) -> np.ndarray:
        """Each text's ``m`` most similar skills (unordered), in blocks of texts."""
        n_keys = self.label_vectors_.shape[0]
        m = min(m, len(self.catalog_))
        step = max(1, BLOCK_FLOATS // max(n_keys, 1))
        out = np.zeros((len(vecs), m), dtype=np.int64)
        for start in range(0, len(vecs), step):
            sims = self._per_skill(vecs[start : start + step] @ self.label_vectors_.T)
            out[start : start + step] = np.argpartition(-sims, m - 1, axis=1)[:, :m]
        return out

    def score_fast(self, sentences: Sequence[str], k: int) -> list[SentenceScores]:
        """Same result as :meth:`score_exhaustive`: a skill in a sentence's top ``k`` is in
        the top ``k`` of the text (sentence or span) it scores by, or a Jaccard match; so only
        that union is rescored, exactly."""
        spans, row, vecs = self._encode(sentences)
        jac = self._jaccard(spans)
        top = self._top_rows(vecs, k + MARGIN)
        out = []
        with threadpool_limits(1, user_api="blas"):  # small products: threads only cost here
            for sentence, group in zip(sentences, spans, strict=True):
                out.append(self._rescore(vecs, [row[sentence], *(row[s] for s in group)],
                                         group, jac, top, k))  # fmt: skip
        return out

    def _rescore(
        self, vecs: np.ndarray, rows: list[int], group: list[str],
        jac: dict[str, dict[int, float]], top: np.ndarray, k: int,
    ) -> SentenceScores:  # fmt: skip
        """One sentence: the union of its texts' top skills and Jaccard matches, exactly."""
        cand = set(top[rows].ravel().tolist())
        for span in group:
            cand.update(jac.get(span, {}))
        skills = np.asarray(sorted(cand), dtype=np.int64)
        keys = self._keys_of(skills)
        sub = vecs[rows].astype(np.float64) @ self.label_vectors_[keys].T.astype(np.float64)
        if len(keys) != len(skills):
            starts = np.searchsorted(self.key_owner_[keys], skills)
            sub = np.maximum.reduceat(sub, starts, axis=1)
        return self._finish(sub, group, jac, k, skills)

    def _keys_of(self, skills: np.ndarray) -> np.ndarray:
        """The label keys of ``skills`` (ascending), in key order."""
        if len(self.key_owner_) == len(self.catalog_):
            return skills
        ends = np.append(self.key_starts_[1:], len(self.key_owner_))
        return np.concatenate([np.arange(self.key_starts_[s], ends[s]) for s in skills])

    def rank_sentences(
        self, sentences: Sequence[str], top_k: int | None = None
    ) -> list[list[SkillHit]]:
        """Top skills for each sentence (the benchmark unit)."""
        self._check_fitted()
        k = top_k or self.top_k
        if not len(sentences):
            return []
        score = self.score_exhaustive if self.exhaustive else self.score_fast
        return [
            [
                SkillHit(
                    self.catalog_.uris[j],
                    self.catalog_.labels[j],
                    float(v),
                    r.spans[b] if b >= 0 else "",
                )
                for j, v, b in zip(r.skills, r.scores, r.best, strict=True)
            ]
            for r in score(sentences, k)
        ]

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


def label_keys(
    catalog: SkillCatalog, which: Literal["preferred", "all"]
) -> tuple[list[str], list[int]]:
    """The texts skills are matched by and the skill of each (ascending): the preferred
    label, and with ``"all"`` the distinct alternate labels after it."""
    if which not in ("preferred", "all"):
        raise ValueError(f"label_keys must be 'preferred' or 'all', not {which!r}")
    texts: list[str] = []
    owners: list[int] = []
    for i, label in enumerate(catalog.labels):
        forms = [label, *catalog.alt_labels[i]] if which == "all" else [label]
        for form in dict.fromkeys(f for f in forms if f):
            texts.append(form)
            owners.append(i)
    return texts, owners


def label_vectors(
    embedder: Any, keys: list[str], cache_dir: str | Path | None, *, show_progress: bool = False
) -> np.ndarray:
    """The embeddings of ``keys``, kept in ``cache_dir/skill-labels/<model+keys>.npy`` when
    the embedder declares a ``label_model_id`` or ``model_id`` (computed once per model and
    label set; a matcher whose labels are the base encoder's declares the base's id)."""
    model_id = getattr(embedder, "label_model_id", getattr(embedder, "model_id", None))
    path = None
    if cache_dir is not None and isinstance(model_id, str):
        digest = hashlib.sha1(model_id.encode())
        for key in keys:
            digest.update(key.encode() + b"\x00")
        path = Path(cache_dir) / "skill-labels" / f"{digest.hexdigest()[:20]}.npy"
        if path.is_file():
            cached = np.load(path)
            if cached.shape[0] == len(keys):
                return np.asarray(cached, dtype=np.float32)
    vecs = np.asarray(embedder.encode(keys, show_progress=show_progress), dtype=np.float32)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.npy")
        np.save(tmp, vecs)
        tmp.replace(path)
    return vecs


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
