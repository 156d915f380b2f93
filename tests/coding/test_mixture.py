"""The classifier + retrieval mixture (autocoder.coding.mixture) and how `autocoder code` picks it."""

from __future__ import annotations

import numpy as np
import pytest

from autocoder.classify.model import EmbeddingClassifier
from autocoder.coding.mixture import CombinedPredictor
from autocoder.coding.predictor import SetPredictor
from autocoder.coding.retrieval import RetrievalCoder
from autocoder.index import MemoryIndex
from autocoder.records import JobRecord
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


def test_fit_mixture_picks_the_weight_that_helps_and_calibrates() -> None:
    from autocoder.coding.mixture import fit_mixture, mix

    rng = np.random.default_rng(0)
    n, c = 400, 6
    y = rng.integers(0, c, n)
    acceptable = np.zeros((n, c), dtype=bool)
    acceptable[np.arange(n), y] = True

    # the model is right 60 % of the time, retrieval 70 %, on different rows
    def noisy(p_right: float) -> np.ndarray:
        p = np.full((n, c), 0.1 / (c - 1))
        right = rng.random(n) < p_right
        top = np.where(right, y, (y + 1 + rng.integers(0, c - 1, n)) % c)
        p[np.arange(n), top] = 0.9
        return p / p.sum(axis=1, keepdims=True)

    p_model, p_ret = noisy(0.6), noisy(0.7)
    fitted = fit_mixture(p_model, p_ret, y, acceptable=acceptable, alpha=0.1)
    assert 0.0 < fitted["retrieval_weight"] <= 0.8 and fitted["n"] == n
    assert fitted["top1_by_weight"]["0.0"] < max(fitted["top1_by_weight"].values())
    calibrated = mix(p_model, p_ret, fitted["retrieval_weight"], fitted["temperature"])
    assert np.allclose(calibrated.sum(axis=1), 1.0)
    conf = calibrated.max(axis=1)
    correct = acceptable[np.arange(n), calibrated.argmax(axis=1)]
    assert abs(conf.mean() - correct.mean()) < 0.05  # calibrated on average
    assert fitted["conformal_threshold"] is not None


def test_fit_on_dev_cross_fits_the_dev_figures() -> None:
    import pandas as pd

    from autocoder.coding.mixture import fit_on_dev

    clf, retrieval = _parts()
    tax = mini_taxonomy()
    rows = [(c.title, c.code) for c in tax.leaves()] * 3
    dev = pd.DataFrame(
        {
            "id": [str(i) for i in range(len(rows))],
            "title": [t for t, _ in rows],
            "codes": [c for _, c in rows],
        }
    )
    params, figures = fit_on_dev(clf, retrieval, dev, alpha=0.2)
    assert 0.0 <= params["retrieval_weight"] <= 0.8 and params["temperature"] > 0
    assert params["n"] == 2 * len(dev)  # clean + noisy
    assert figures["n"] == len(dev) and set(figures) == {"n", "clean", "noisy"}
    assert 0.0 <= figures["clean"]["top1"] <= 1.0
