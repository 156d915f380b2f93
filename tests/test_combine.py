"""The classifier + retrieval mixture (autocoder.combine) and how `autocoder code` picks it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from autocoder import api
from autocoder.classify.model import EmbeddingClassifier
from autocoder.combine import CombinedPredictor
from autocoder.config import load_settings
from autocoder.index import MemoryIndex
from autocoder.predictor import SetPredictor
from autocoder.records import JobRecord
from autocoder.retrieval import RetrievalCoder
from autocoder.taxonomy.store import save_taxonomy
from autocoder.workspace import Workspace
from tests.fakes import HashingEmbedder, mini_taxonomy


def _parts() -> tuple[EmbeddingClassifier, RetrievalCoder]:
    tax, embedder = mini_taxonomy(), HashingEmbedder(64)
    index = MemoryIndex()
    index.build(tax, embedder)
    codes = tax.leaf_codes()
    retrieval = RetrievalCoder(index, embedder, classes=codes, top_k=5).fit()
    X = [JobRecord(t) for c in tax.leaves() for t in [c.title, *c.alt_titles] for _ in range(3)]
    y = [c.code for c in tax.leaves() for t in [c.title, *c.alt_titles] for _ in range(3)]
    clf = EmbeddingClassifier(
        embedder, classes=codes, hidden=16, epochs=5, val_fraction=0.3, seed=0
    ).fit(X, y)
    return clf, retrieval


def test_mixture_is_the_weighted_sum_of_both_distributions() -> None:
    clf, retrieval = _parts()
    X = [JobRecord("staff nurse"), JobRecord("software developer")]
    for w in (0.0, 0.3, 1.0):
        combined = CombinedPredictor(clf, retrieval, retrieval_weight=w).fit()
        cols = [list(retrieval.classes_).index(c) for c in clf.classes_]  # model's order
        expected = (1 - w) * clf.predict_proba(X) + w * retrieval.predict_proba(X)[:, cols]
        np.testing.assert_allclose(combined.predict_proba(X), expected, atol=1e-6)
        assert list(combined.classes_) == list(clf.classes_)
    assert isinstance(combined, SetPredictor)
    sets = combined.predict_sets(X)
    assert all(s and s[0] == p for s, p in zip(sets, combined.predict(X), strict=True))


def test_mixture_refuses_mismatched_codes_and_bad_weights() -> None:
    clf, retrieval = _parts()
    with pytest.raises(ValueError, match="retrieval_weight"):
        CombinedPredictor(clf, retrieval, retrieval_weight=1.5).fit()
    other = RetrievalCoder(retrieval.index, retrieval.embedder, classes=["x", "y"]).fit()
    with pytest.raises(ValueError, match="rebuild the index"):
        CombinedPredictor(clf, other, retrieval_weight=0.5).fit()
    with pytest.raises(RuntimeError, match="not fitted"):
        CombinedPredictor(clf, retrieval, retrieval_weight=0.5).predict_proba(["x"])


def test_load_predictor_mixes_in_retrieval_as_the_model_says(tmp_path: Path) -> None:
    clf, _ = _parts()
    ws = Workspace.resolve(tmp_path / "home")
    tax = mini_taxonomy()
    save_taxonomy(ws, tax)
    clf.metadata_ = {"recipe": {"combine": {"retrieval_weight": 0.4}}}
    model_dir = clf.save(tmp_path / "model")
    settings = load_settings(overrides=['index.backend="memory"', "embedder.cache=false"])
    predictor, pid = api.load_predictor(settings, ws, tax, model_dir)
    assert isinstance(predictor, CombinedPredictor) and predictor.retrieval_weight == 0.4
    assert "+retrieval:0.4" in pid
    off = load_settings(overrides=['index.backend="memory"', "coder.retrieval_weight=0"])
    alone, _ = api.load_predictor(off, ws, tax, model_dir)
    assert isinstance(alone, EmbeddingClassifier)
