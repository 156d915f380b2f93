"""Text helpers for skill matching: normalisation, sentences, n-gram spans, char n-gram Jaccard.

The Jaccard matcher follows the Randstad skills graph (de Groot et al.): two texts match when the
Jaccard similarity of their character n-gram sets, on normalised text, is at least 0.66.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from autocoder.records import fold_text

_TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9+#./-]*[A-Za-z0-9+#]|[A-Za-z0-9]")
_SENTENCE_END = re.compile(r"(?<=[.!?;])\s+|\n+|\s*[•·▪●]\s*")
STOPWORDS = frozenset(
    "a an and are as at be by can for from has have in is it its of on or our the their this "
    "to we will with you your who what which all any must should would able etc e.g i.e per "
    "such other using use well good strong excellent ability experience years year knowledge "
    "skills skill plus".split()
)


def split_sentences(text: str, *, max_tokens: int = 40) -> list[str]:
    """Split a posting into sentences (and bullet items); cut long ones into chunks."""
    out: list[str] = []
    for part in _SENTENCE_END.split(str(text)):
        words = part.split()
        for start in range(0, len(words), max_tokens):
            chunk = " ".join(words[start : start + max_tokens]).strip()
            if chunk:
                out.append(chunk)
    return out


def candidate_spans(sentence: str, *, max_n: int = 4) -> list[str]:
    """Token n-grams (1..max_n) that neither start nor end with a stop word, in order."""
    tokens = _TOKEN.findall(sentence)
    spans: list[str] = []
    seen: set[str] = set()
    for n in range(1, max_n + 1):
        for i in range(len(tokens) - n + 1):
            gram = tokens[i : i + n]
            first, last = gram[0].lower(), gram[-1].lower()
            if first in STOPWORDS or last in STOPWORDS or gram[0].isdigit():
                continue
            span = " ".join(gram)
            if len(span) < 2 or span.lower() in seen:
                continue
            seen.add(span.lower())
            spans.append(span)
    return spans


def char_ngrams(text: str, n: int = 3) -> set[str]:
    padded = f" {fold_text(text)} "
    if len(padded.strip()) == 0:
        return set()
    return {padded[i : i + n] for i in range(max(1, len(padded) - n + 1))}


def jaccard(a: str, b: str, n: int = 3) -> float:
    sa, sb = char_ngrams(a, n), char_ngrams(b, n)
    if not sa or not sb:
        return 0.0
    return len(sa & sb) / len(sa | sb)


@dataclass
class JaccardIndex:
    """Char n-gram Jaccard search over many labels, each owned by an item (a skill index).

    ``search(texts)`` returns, per text, ``{owner: best Jaccard}`` for every label at or above
    ``threshold``. Sparse matrix products keep it fast for ~100k labels.
    """

    n: int = 3
    threshold: float = 0.66

    def fit(self, labels: Sequence[str], owners: Sequence[int]) -> JaccardIndex:
        from sklearn.feature_extraction.text import CountVectorizer

        self.vectorizer_ = CountVectorizer(
            analyzer=self._grams, binary=True, lowercase=False, dtype=np.float32
        )
        self.matrix_ = self.vectorizer_.fit_transform(list(labels)).tocsr()
        self.sizes_ = np.asarray(self.matrix_.sum(axis=1)).ravel()
        self.owners_ = np.asarray(owners, dtype=np.int64)
        # n-gram rarity rank (rarest first) for the prefix filter
        df = np.asarray(self.matrix_.sum(axis=0)).ravel()
        self.rarity_ = np.argsort(np.argsort(df, kind="stable"), kind="stable")
        self.prefix_t_ = self._prefix(self.matrix_).T.tocsr()
        return self

    def _grams(self, text: str) -> list[str]:
        return sorted(char_ngrams(text, self.n))

    def _prefix(self, q: Any, full_sizes: np.ndarray | None = None) -> Any:
        """Keep each row's ``|A| - ceil(t|A|) + 1`` rarest n-grams. Two sets with Jaccard ≥ t
        share an n-gram of their prefixes (prefix filtering), and rare n-grams match few rows."""
        q = q.tocsr(copy=True)
        for r in range(q.shape[0]):
            lo, hi = q.indptr[r], q.indptr[r + 1]
            size = hi - lo
            if size == 0:
                continue
            full = int(full_sizes[r]) if full_sizes is not None else size
            # n-grams unknown to the index are the rarest of all: they use up prefix slots
            keep = full - int(np.ceil(self.threshold * full - 1e-9)) + 1 - (full - size)
            cols = q.indices[lo:hi]
            drop = np.argsort(self.rarity_[cols], kind="stable")[max(keep, 0) :]
            q.data[lo + drop] = 0.0
        q.eliminate_zeros()
        return q

    def search(self, texts: Sequence[str]) -> list[dict[int, float]]:
        """Per text, ``{owner: best Jaccard}`` over labels at or above the threshold."""
        unique = list(dict.fromkeys(texts))
        if len(unique) < len(texts):
            found = dict(zip(unique, self._search(unique), strict=True))
            return [dict(found[t]) for t in texts]
        return self._search(texts)

    def _search(self, texts: Sequence[str]) -> list[dict[int, float]]:
        out: list[dict[int, float]] = [{} for _ in texts]
        if not len(texts):
            return out
        q = self.vectorizer_.transform(list(texts)).tocsr()
        q_sizes = np.array([len(char_ngrams(t, self.n)) for t in texts], dtype=np.float32)
        cand = (self._prefix(q, q_sizes) @ self.prefix_t_).tocoo()
        if not cand.nnz:
            return out
        rows, cols = cand.row, cand.col
        # size filter: Jaccard ≥ t needs t·|B| ≤ |A| ≤ |B| / t
        ok = (q_sizes[rows] >= self.threshold * self.sizes_[cols]) & (
            self.threshold * q_sizes[rows] <= self.sizes_[cols]
        )
        rows, cols = rows[ok], cols[ok]
        inter = np.asarray(q[rows].multiply(self.matrix_[cols]).sum(axis=1)).ravel()
        union = q_sizes[rows] + self.sizes_[cols] - inter
        score = inter / np.maximum(union, 1e-9)
        keep = score >= self.threshold
        for r, c, v in zip(rows[keep], cols[keep], score[keep], strict=True):
            owner = int(self.owners_[c])
            if v > out[r].get(owner, 0.0):
                out[r][owner] = float(v)
        return out
