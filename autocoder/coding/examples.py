"""Coded examples in the loaded coder: the configured example index, and the predictor
wrapped so the taxonomy's coded examples vote (``[examples]`` settings, ``load_coder``).

The vote settings are ``[examples]``'s, or those ``autocoder examples fit`` chose for this
coder (``vote_config``). The wrapped predictor's id names the store's content hash and the vote
settings, so a coding job resumed after ``examples add``/``remove``, ``review pull`` or
``examples fit`` is a new job (its key changes) instead of one that mixes output from before
and after.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import numpy as np

from autocoder.coding.predictor import Capabilities, capabilities_of
from autocoder.config import ExamplesConfig, Settings
from autocoder.embed import Embedder
from autocoder.examples.fit import fit_count, load_fit
from autocoder.examples.index import ChromaExampleIndex, MemoryExampleIndex
from autocoder.examples.store import ExampleStore
from autocoder.examples.vote import ExampleIndex, ExampleVoter, blend
from autocoder.records import JobRecord, RecordsLike, as_records
from autocoder.taxonomy.model import Taxonomy
from autocoder.workspace import Workspace

log = logging.getLogger(__name__)


class WithExamples:
    """A ``Predictor`` (and ``SetPredictor`` when ``base`` is one) whose probabilities are
    ``base``'s blended with the examples' votes (``blend``); columns follow ``base.classes_``."""

    def __init__(
        self,
        base: Any,
        voter: ExampleVoter,
        *,
        weight: float = 0.5,
        exact_trust: float = 0.95,
        temperature: float = 1.0,
    ) -> None:
        self.base = base
        self.voter = voter
        self.weight = weight
        self.exact_trust = exact_trust
        self.temperature = temperature

    def fit(self, X: Any = None, y: Any = None) -> WithExamples:
        base_codes = [str(c) for c in self.base.classes_]
        pos = {str(c): j for j, c in enumerate(self.voter.classes_)}
        if set(base_codes) != set(pos):
            raise ValueError("the examples' taxonomy and the predictor's codes differ")
        self._columns = np.asarray([pos[c] for c in base_codes])
        self.classes_ = np.asarray(self.base.classes_)
        return self

    def predict_proba(self, X: RecordsLike) -> np.ndarray:
        records = as_records(X)
        p_base = np.asarray(self.base.predict_proba(records), np.float64)
        return self.blend_into(p_base, records).astype(np.float32)

    def blend_into(self, p_base: np.ndarray, records: list[JobRecord]) -> np.ndarray:
        """``p_base`` (rows of ``records``, columns ``classes_``) blended with the examples'
        votes: the same mixture as :meth:`predict_proba`, over another scoring of the base
        (the calibrated path scores title segments)."""
        dists, exact = self.voter.distributions(records)
        p_ex = self.voter.dense(dists)[:, self._columns]
        return blend(p_base, p_ex, exact, weight=self.weight, exact_trust=self.exact_trust,
                     temperature=self.temperature)  # fmt: skip

    def exact_confidence(
        self, records: list[JobRecord], *, trust: float | None = None
    ) -> tuple[list[str], np.ndarray]:
        """Per record the code of its exact-title examples and the confidence the office's
        own coding gives it: ``exact_trust`` x the share of those examples that agree (0 and
        ``""`` without an exact match). ``trust`` (fitted by a calibration on the office's
        history) replaces ``exact_trust`` except for titles a reviewer answered: one answered
        title is trusted as answered; examples that disagree are not near-certain."""
        codes, share = self.voter.exact_agreement(records)
        if trust is None:
            return codes, self.exact_trust * share
        per_row = np.where(self.voter.reviewed(records), self.exact_trust, trust)
        return codes, per_row * share

    def predict(self, X: RecordsLike) -> np.ndarray:
        return np.asarray(self.classes_)[self.predict_proba(X).argmax(axis=1)]

    @property
    def capabilities(self) -> Capabilities:
        """The base's embeddings; no conformal sets (the blend is not what they were fitted on)."""
        return Capabilities(sets=False, embeddings=capabilities_of(self.base).embeddings)

    def embed(self, X: RecordsLike) -> np.ndarray:
        return np.asarray(self.base.embed(X), dtype=np.float32)


def make_example_index(
    settings: Settings, ws: Workspace, taxonomy: Taxonomy, embedder: Embedder
) -> ExampleIndex:
    """The examples' index beside the code texts: same backend, store or server."""
    cfg, index = settings.examples, settings.index
    if index.backend == "memory":
        return MemoryExampleIndex(candidates=cfg.candidates)
    return ChromaExampleIndex(
        taxonomy_name=taxonomy.name,
        model_id=embedder.model_id,
        path=None if index.host else ws.chroma,
        host=index.host,
        port=index.port,
        prefix=index.collection_prefix,
        candidates=cfg.candidates,
        connect_timeout=index.connect_timeout,
        timeout=index.timeout,
        hnsw={
            "construction_ef": index.hnsw_construction_ef,
            "search_ef": index.hnsw_search_ef,
            "M": index.hnsw_m,
        },
    )


#: The ``[examples]`` settings the vote and blend use (in the order the predictor id has them).
VOTE_SETTINGS = ("neighbours", "temperature", "exact_weight", "min_similarity", "weight",
                 "exact_trust", "blend_temperature")  # fmt: skip


def examples_tag(cfg: ExamplesConfig, store: ExampleStore) -> str:
    """What the examples add to a predictor id: store hash and vote settings ("" = none)."""
    content = store.content_hash()
    if not cfg.enabled or not content:
        return ""
    params = tuple(getattr(cfg, k) for k in VOTE_SETTINGS)
    return f"+examples:{content}:{':'.join(str(v) for v in params)}"


def store_drift(store: ExampleStore, content_hash: str, size: int | None) -> str:
    """``""`` when ``store`` holds what a fit or calibration recorded (``content_hash``,
    ``size`` examples when it recorded one), else what changed since, for a warning."""
    if content_hash == store.content_hash():
        return ""
    then = f"{size} examples" if size is not None else f"store {content_hash[:12]}"
    return f"fitted on {then}; the store has changed since and holds {len(store)}"


def warn_calibration_drift(
    calibration: Mapping[str, Any] | None, predictor: Any, store: ExampleStore
) -> None:
    """Log a warning when ``calibration`` was fitted with the examples voting
    (``calibrate --with-examples``) and they now vote from another store, or not at all: its
    confidence then describes another coder."""
    recorded = (calibration or {}).get("fitted_on", {}).get("examples")
    if not recorded:
        return
    if not isinstance(predictor, WithExamples):
        log.warning(
            "the calibration was fitted with the coded examples voting (calibrate "
            "--with-examples), but they do not vote now (examples.enabled false or the store "
            "%s empty): its confidence describes another coder; calibrate again",
            store.directory,
        )  # fmt: skip
        return
    drift = store_drift(store, str(recorded.get("store", "")), recorded.get("size"))
    if drift:
        log.warning(
            "the calibration was fitted with the coded examples voting: %s. Run `autocoder "
            "calibrate --with-examples` again after large additions", drift,
        )  # fmt: skip


def vote_config(cfg: ExamplesConfig, store: ExampleStore, predictor_id: str) -> ExamplesConfig:
    """The ``[examples]`` settings coding votes with: those ``autocoder examples fit`` chose
    for this coder when there is such a fit and ``use_fit`` is on, else ``cfg`` as it is."""
    if not cfg.use_fit:
        return cfg
    fit = load_fit(store, predictor_id)
    if fit is None:
        if fit_count(store):
            log.warning(
                "no examples fit in %s for this coder (there are fits for others); voting with "
                "the [examples] settings: run `autocoder examples fit` for it", store.directory,
            )  # fmt: skip
        return cfg
    drift = store_drift(store, str(fit.get("store", "")), fit.get("store_size"))
    if drift:
        log.warning(
            "examples fit in %s %s. Run `autocoder examples fit` again after large changes",
            store.directory, drift,
        )  # fmt: skip
    return cfg.model_copy(update=fit["settings"])


def with_examples(
    settings: Settings,
    ws: Workspace,
    taxonomy: Taxonomy,
    predictor: Any,
    predictor_id: str,
    embedder: Embedder,
) -> tuple[Any, str]:
    """``predictor`` with the taxonomy's coded examples voting, and its id; unchanged when
    examples are off or there are none."""
    store = ExampleStore.of(ws, taxonomy.name)
    cfg = vote_config(settings.examples, store, predictor_id)
    tag = examples_tag(cfg, store)
    if not tag:
        return predictor, predictor_id
    voter = ExampleVoter(
        make_example_index(settings, ws, taxonomy, embedder),
        embedder,
        classes=[str(c) for c in predictor.classes_],
        neighbours=cfg.neighbours,
        temperature=cfg.temperature,
        exact_weight=cfg.exact_weight,
        min_similarity=cfg.min_similarity,
    ).fit(store.table(), store.content_hash())
    model = WithExamples(
        predictor, voter, weight=cfg.weight, exact_trust=cfg.exact_trust,
        temperature=cfg.blend_temperature,
    ).fit()  # fmt: skip
    return model, predictor_id + tag
