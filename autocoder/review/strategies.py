"""Query strategies: which records a person should review next.

Each strategy is a small class (small-text style) with one method,
``query(proba, embeddings, n, *, rng=None, labeled=None) -> indices``, that returns the ``n``
rows to review, best first, and leaves ``last_scores`` (one value per row, higher = more worth
a review) for the caller to store next to each task. ``proba`` is the model's ``(rows, codes)``
probability matrix, ``embeddings`` the rows' ``(rows, dim)`` embeddings (only ``Diversity``
needs them), ``labeled`` row indices that are already labeled: never returned, and the first
centers of ``Diversity``.

* ``LeastConfidence`` — lowest top-1 probability; records below ``threshold`` (config
  ``review.threshold``) come first, ``only_below=True`` never returns the others.
* ``Margin`` — smallest gap between the two most probable codes.
* ``Entropy`` — highest entropy of the distribution.
* ``ConformalSetSize`` — largest conformal prediction set (the model's ``predict_sets``, or a
  given LAC threshold ``qhat``), ties broken by least confidence.
* ``Diversity`` — k-center greedy (Sener & Savarese 2018) on the embeddings.
* ``ClassBalanced`` — round-robin over the predicted codes, each code's rows in the order of a
  base strategy (least confidence by default).
* ``PerAnswer`` — pays per answer: rows grouped by their normalised text, each distinct text
  scored ``frequency × (1 - max p)`` (records it would settle times how unsure the model is),
  one row per distinct text returned (texts below ``threshold`` first); ``last_settled`` says
  how many input records each chosen row stands for.
* ``Random`` — uniformly at random (the baseline).
* ``Composite`` — a pre-filter (e.g. entropy) keeps the top ``factor * n`` rows, a second
  strategy (e.g. diversity) picks ``n`` of them.

``make_strategy("entropy+diversity", threshold=0.5, model=clf)`` builds any of them by name.
What a strategy reads besides ``proba`` is declared (``needs_embeddings``, ``needs_texts``),
never guessed from its name: a caller passes ``embeddings`` / ``texts`` when it needs them.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from autocoder.coding.predictor import capabilities_of

__all__ = [
    "ClassBalanced",
    "Composite",
    "ConformalSetSize",
    "Diversity",
    "Entropy",
    "LeastConfidence",
    "Margin",
    "PerAnswer",
    "QueryStrategy",
    "Random",
    "STRATEGIES",
    "make_strategy",
]


def _check(proba: np.ndarray, n: int) -> np.ndarray:
    proba = np.asarray(proba, dtype=np.float64)
    if proba.ndim != 2:
        raise ValueError(f"proba must be a 2-D (rows, codes) array, got shape {proba.shape}")
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    return proba


def _available(rows: int, labeled: Any) -> np.ndarray:
    mask = np.ones(rows, dtype=bool)
    if labeled is not None:
        idx = np.asarray(labeled, dtype=np.int64)
        if idx.size and (idx.min() < 0 or idx.max() >= rows):
            raise ValueError(f"labeled indices must lie in [0, {rows})")
        mask[idx] = False
    return mask


def top_by_score(scores: np.ndarray, n: int, available: np.ndarray) -> np.ndarray:
    """Indices of the ``n`` highest ``scores`` among ``available`` rows; ties by row order."""
    candidates = np.flatnonzero(available)
    order = np.argsort(-scores[candidates], kind="stable")
    return candidates[order[:n]].astype(np.int64)


@dataclass
class _Query:
    """The arguments of one ``query`` call, ``proba`` checked and ``labeled`` rows masked."""

    proba: np.ndarray
    embeddings: np.ndarray | None
    n: int
    available: np.ndarray
    rng: np.random.Generator | None
    labeled: Any
    texts: Sequence[str] | None = None


class QueryStrategy:
    """Base class: subclasses implement ``scores``; ``query`` takes the top ``n``.

    ``needs_embeddings`` declares whether ``query`` reads the rows' embeddings (callers embed
    the records only then)."""

    last_scores: np.ndarray | None = None

    @property
    def needs_embeddings(self) -> bool:
        return False

    @property
    def needs_texts(self) -> bool:
        """Whether ``query`` reads the rows' texts (``texts=``)."""
        return False

    @property
    def name(self) -> str:
        return type(self).__name__

    def scores(self, proba: np.ndarray, embeddings: np.ndarray | None) -> np.ndarray:
        raise NotImplementedError

    def query(
        self,
        proba: np.ndarray,
        embeddings: np.ndarray | None,
        n: int,
        *,
        rng: np.random.Generator | None = None,
        labeled: Any = None,
        texts: Sequence[str] | None = None,
    ) -> np.ndarray:
        """The ``n`` rows to review, best first; leaves ``last_scores`` (template method:
        subclasses override ``scores`` or, for a selection other than top-n, ``_select``).
        ``texts``: each row's text, for a strategy that ``needs_texts``."""
        proba = _check(proba, n)
        if texts is not None and len(texts) != len(proba):
            raise ValueError(f"texts must have one entry per row ({len(proba)}), got {len(texts)}")
        available = _available(len(proba), labeled)
        query = _Query(proba, embeddings, n, available, rng, labeled, texts)
        chosen, self.last_scores = self._select(query)
        return chosen

    def _select(self, q: _Query) -> tuple[np.ndarray, np.ndarray]:
        """``(chosen rows, scores)``; by default the top ``n`` ``scores`` among ``available``."""
        scores = self.scores(q.proba, q.embeddings)
        return top_by_score(scores, q.n, q.available), scores

    def __repr__(self) -> str:
        params = inspect.signature(type(self).__init__).parameters
        shown = [f"{k}={getattr(self, k)!r}" for k in params if k != "self" and hasattr(self, k)]
        return f"{self.name}({', '.join(shown)})"


class LeastConfidence(QueryStrategy):
    """Score ``1 - max p``: the least confident first, so records below ``threshold`` lead."""

    def __init__(self, threshold: float | None = 0.5, *, only_below: bool = False) -> None:
        self.threshold = threshold
        self.only_below = only_below

    def scores(self, proba: np.ndarray, embeddings: np.ndarray | None) -> np.ndarray:
        return 1.0 - proba.max(axis=1) if proba.shape[1] else np.zeros(len(proba))

    def _select(self, q: _Query) -> tuple[np.ndarray, np.ndarray]:
        if self.only_below and self.threshold is not None:
            q.available &= q.proba.max(axis=1) < self.threshold
        return super()._select(q)


class Margin(QueryStrategy):
    """Score ``1 - (p1 - p2)``: the two most probable codes closest together first."""

    def scores(self, proba: np.ndarray, embeddings: np.ndarray | None) -> np.ndarray:
        if proba.shape[1] < 2:
            return 1.0 - proba.max(axis=1) if proba.shape[1] else np.zeros(len(proba))
        top2 = -np.partition(-proba, 1, axis=1)[:, :2]
        return 1.0 - (top2[:, 0] - top2[:, 1])


class Entropy(QueryStrategy):
    """Score ``-sum p log p`` (nats)."""

    def scores(self, proba: np.ndarray, embeddings: np.ndarray | None) -> np.ndarray:
        p = np.clip(proba, 0.0, 1.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            terms = np.where(p > 0, -p * np.log(p), 0.0)
        return terms.sum(axis=1)


class ConformalSetSize(QueryStrategy):
    """Score = conformal set size (+ a tie-break below 1 by least confidence).

    Sets come from ``model.predict_sets(None, proba=proba)`` when a fitted model that declares
    sets (``capabilities.sets``: a conformal threshold) is given, else from ``qhat`` with LAC: every code with
    ``p >= 1 - qhat`` (never empty: the top code is always in the set).
    """

    def __init__(self, model: Any = None, *, qhat: float | None = None) -> None:
        self.model = model
        self.qhat = qhat

    def set_sizes(self, proba: np.ndarray) -> np.ndarray:
        model = self.model
        if model is not None and capabilities_of(model).sets:
            return np.asarray([len(s) for s in model.predict_sets(None, proba=proba)])
        if self.qhat is None:
            raise ValueError(
                "ConformalSetSize needs a model fitted with a conformal threshold, or qhat"
            )
        return np.maximum((proba >= 1.0 - self.qhat).sum(axis=1), 1)

    def scores(self, proba: np.ndarray, embeddings: np.ndarray | None) -> np.ndarray:
        tie = 1.0 - proba.max(axis=1) if proba.shape[1] else np.zeros(len(proba))
        return self.set_sizes(proba).astype(np.float64) + 0.999 * tie


class Diversity(QueryStrategy):
    """k-center greedy: repeatedly take the row farthest from every chosen (or labeled) row.

    Distances are Euclidean on the embeddings (L2-normalised first when ``normalize``, i.e.
    cosine geometry). Without labeled rows the first center is drawn with ``rng``.
    ``last_scores`` holds each chosen row's distance when it was chosen, and for the others
    their distance to the nearest center at the end.
    """

    def __init__(self, *, normalize: bool = True) -> None:
        self.normalize = normalize

    @property
    def needs_embeddings(self) -> bool:
        return True

    def _points(self, embeddings: np.ndarray | None, rows: int) -> np.ndarray:
        if embeddings is None:
            raise ValueError("Diversity needs the records' embeddings")
        X = np.asarray(embeddings, dtype=np.float64)
        if X.ndim != 2 or len(X) != rows:
            raise ValueError(f"embeddings must have shape ({rows}, dim), got {X.shape}")
        if self.normalize:
            X = X / np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-12)
        return X

    def _select(self, q: _Query) -> tuple[np.ndarray, np.ndarray]:
        X, available, rng = self._points(q.embeddings, len(q.proba)), q.available, q.rng
        dist = np.full(len(X), np.inf)
        for c in np.flatnonzero(~available):
            dist = np.minimum(dist, np.linalg.norm(X - X[c], axis=1))
        chosen: list[int] = []
        at_choice: dict[int, float] = {}
        n = min(q.n, int(available.sum()))
        while len(chosen) < n:
            if not np.isfinite(dist[available]).any():
                gen = rng if rng is not None else np.random.default_rng(0)
                pick = int(gen.choice(np.flatnonzero(available)))
            else:
                pick = int(np.flatnonzero(available)[np.argmax(dist[available])])
            at_choice[pick] = float(dist[pick])
            chosen.append(pick)
            available[pick] = False
            dist = np.minimum(dist, np.linalg.norm(X - X[pick], axis=1))
        scores = np.where(np.isfinite(dist), dist, 0.0)
        for i, d in at_choice.items():
            scores[i] = d if np.isfinite(d) else float(np.nanmax(scores, initial=0.0)) + 1.0
        return np.asarray(chosen, dtype=np.int64), scores


class ClassBalanced(QueryStrategy):
    """Round-robin over the predicted (top-1) codes: each code's best row by ``base``, then
    each code's second best, and so on; codes whose best row scores highest go first."""

    def __init__(self, base: QueryStrategy | None = None) -> None:
        self.base = base

    @property
    def needs_embeddings(self) -> bool:
        return self.base is not None and self.base.needs_embeddings

    @property
    def needs_texts(self) -> bool:
        return self.base is not None and self.base.needs_texts

    def _select(self, q: _Query) -> tuple[np.ndarray, np.ndarray]:
        base = self.base if self.base is not None else LeastConfidence(None)
        proba, n = q.proba, q.n
        ranked = base.query(proba, q.embeddings, int(q.available.sum()), rng=q.rng,
                            labeled=q.labeled, texts=q.texts)  # fmt: skip
        scores = base.last_scores if base.last_scores is not None else np.zeros(len(proba))
        predicted = proba.argmax(axis=1) if proba.shape[1] else np.zeros(len(proba), np.int64)
        queues: dict[int, list[int]] = {}
        for i in ranked:  # best first, so each queue is best first and codes in order of best
            queues.setdefault(int(predicted[i]), []).append(int(i))
        chosen: list[int] = []
        depth = 0
        while len(chosen) < n and any(len(queue) > depth for queue in queues.values()):
            for queue in queues.values():
                if depth < len(queue) and len(chosen) < n:
                    chosen.append(queue[depth])
            depth += 1
        return np.asarray(chosen, dtype=np.int64), np.asarray(scores, dtype=np.float64)


class Random(QueryStrategy):
    """Uniformly random rows (``rng``, default seed 0); ``last_scores`` are the random keys."""

    def _select(self, q: _Query) -> tuple[np.ndarray, np.ndarray]:
        gen = q.rng if q.rng is not None else np.random.default_rng(0)
        scores = gen.random(len(q.proba))
        return top_by_score(scores, q.n, q.available), scores


class Composite(QueryStrategy):
    """``first`` keeps its top ``factor * n`` rows, ``then`` chooses ``n`` among them.

    ``last_scores`` are ``first``'s scores (the uncertainty a reviewer sees).
    """

    def __init__(self, first: QueryStrategy, then: QueryStrategy, *, factor: int = 5) -> None:
        self.first = first
        self.then = then
        self.factor = factor

    @property
    def name(self) -> str:
        return f"{self.first.name}+{self.then.name}"

    @property
    def needs_embeddings(self) -> bool:
        return self.first.needs_embeddings or self.then.needs_embeddings

    @property
    def needs_texts(self) -> bool:
        return self.first.needs_texts or self.then.needs_texts

    def _select(self, q: _Query) -> tuple[np.ndarray, np.ndarray]:
        if self.factor < 1:
            raise ValueError(f"Composite factor must be >= 1, got {self.factor}")
        keep = self.first.query(q.proba, q.embeddings, q.n * self.factor, rng=q.rng,
                                labeled=q.labeled, texts=q.texts)  # fmt: skip
        first_scores = self.first.last_scores
        if first_scores is None:  # a strategy whose query leaves no scores
            first_scores = np.zeros(len(q.proba))
        sub_emb = None if q.embeddings is None else np.asarray(q.embeddings)[keep]
        sub_texts = None if q.texts is None else [q.texts[int(i)] for i in keep]
        picked = self.then.query(q.proba[keep], sub_emb, q.n, rng=q.rng, texts=sub_texts)
        return keep[picked], first_scores


class PerAnswer(QueryStrategy):
    """One row per distinct (normalised) text, ranked by ``frequency × (1 - max p)``: an
    answer to a title that recurs settles every record with that title (the examples store
    codes them as answered from the next run), so frequent uncertain titles come first.

    Texts whose confidence is below ``threshold`` lead (the review queue's uncertain records);
    ``last_scores`` give every row its text's value, ``last_settled`` each chosen row's
    number of records (``settled_per_answer`` their mean).
    """

    def __init__(self, threshold: float | None = 0.5) -> None:
        self.threshold = threshold

    @property
    def needs_texts(self) -> bool:
        return True

    def _select(self, q: _Query) -> tuple[np.ndarray, np.ndarray]:
        if q.texts is None:
            raise ValueError("PerAnswer needs the rows' texts (query(..., texts=...))")
        from autocoder.records import normalize_text

        keys = [normalize_text(t, keep_punctuation=False) for t in q.texts]
        confidence = q.proba.max(axis=1) if q.proba.shape[1] else np.zeros(len(q.proba))
        first: dict[str, int] = {}
        count: dict[str, int] = {}
        for i, key in enumerate(keys):
            count[key] = count.get(key, 0) + 1
            if q.available[i] and key not in first:
                first[key] = i
        value = np.asarray([count[k] * (1.0 - confidence[i]) for i, k in enumerate(keys)])
        lead = value
        if self.threshold is not None:
            lead = value + (confidence < self.threshold) * (value.max(initial=0.0) + 1.0)
        heads = np.zeros(len(keys), dtype=bool)
        heads[list(first.values())] = True
        chosen = top_by_score(lead, q.n, heads)
        self.last_settled = np.asarray([count[keys[i]] for i in chosen], dtype=np.int64)
        return chosen, value

    @property
    def settled_per_answer(self) -> float:
        settled = getattr(self, "last_settled", None)
        return float(settled.mean()) if settled is not None and len(settled) else 0.0


STRATEGIES: dict[str, type[QueryStrategy]] = {
    "least_confidence": LeastConfidence,
    "margin": Margin,
    "entropy": Entropy,
    "conformal": ConformalSetSize,
    "diversity": Diversity,
    "class_balanced": ClassBalanced,
    "random": Random,
    "per_answer": PerAnswer,
}
_ALIASES = {
    "lc": "least_confidence",
    "conformal_set_size": "conformal",
    "kcenter": "diversity",
    "frequency": "per_answer",
}


def _one(name: str, kwargs: dict[str, Any]) -> QueryStrategy:
    key = name.strip().lower().replace("-", "_")
    key = _ALIASES.get(key, key)
    if key not in STRATEGIES:
        raise ValueError(
            f"unknown strategy {name!r}; choose from {sorted(STRATEGIES)} or combine two "
            "with '+', e.g. 'entropy+diversity'"
        )
    cls = STRATEGIES[key]
    accepted = set(inspect.signature(cls.__init__).parameters) - {"self"}
    return cls(**{k: v for k, v in kwargs.items() if k in accepted})


def make_strategy(name: str, **kwargs: Any) -> QueryStrategy:
    """A strategy by name; ``"a+b"`` is ``Composite(a, b)`` (``factor`` keyword, default 5).

    Keywords a strategy does not take are ignored, so one call site can pass ``threshold``
    (least confidence), ``model`` / ``qhat`` (conformal) and ``factor`` (composite) to any.
    """
    parts = [p for p in name.split("+") if p.strip()]
    if len(parts) == 1:
        return _one(parts[0], kwargs)
    if len(parts) == 2:
        return Composite(
            _one(parts[0], kwargs), _one(parts[1], kwargs), factor=int(kwargs.get("factor", 5))
        )
    raise ValueError(f"strategy {name!r}: combine at most two strategies with '+'")
