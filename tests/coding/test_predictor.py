"""The Predictor protocol: every coder satisfies it, and top_n / softmax behave."""

from __future__ import annotations

import numpy as np
import pytest

from autocoder.classify.model import EmbeddingClassifier
from autocoder.coding.predictor import Predictor, Retriever, SetPredictor, top_n
from autocoder.coding.retrieval import RetrievalCoder
from autocoder.index import MemoryIndex
from autocoder.labeler import RAGLabeler
from autocoder.mathx import softmax
from autocoder.records import JobRecord
from tests.fakes import HashingEmbedder, mini_taxonomy


@pytest.fixture
def retrieval() -> RetrievalCoder:
    tax, embedder = mini_taxonomy(), HashingEmbedder()
    index = MemoryIndex()
    index.build(tax, embedder)
    return RetrievalCoder(index, embedder, classes=tax.leaf_codes(), top_k=5).fit()


def test_every_coder_is_a_predictor(retrieval: RetrievalCoder) -> None:
    assert isinstance(retrieval, Predictor) and isinstance(retrieval, Retriever)
    assert not isinstance(retrieval, SetPredictor)  # no conformal sets
    labeler = RAGLabeler(lambda **_: {}, retrieval, mini_taxonomy()).fit()
    assert isinstance(labeler, Predictor)
    X = [JobRecord("staff nurse", "care for patients on the ward")] * 20
    X += [JobRecord("software developer", "write and test program code")] * 20
    clf = EmbeddingClassifier(HashingEmbedder(64), hidden=8, epochs=2, val_fraction=0.5, seed=0)
    clf.fit(X, ["29-1141.00"] * 20 + ["15-1252.00"] * 20)
    assert isinstance(clf, SetPredictor)
    assert not isinstance(object(), Predictor)


def test_top_n_orders_codes_by_probability() -> None:
    proba = np.array([[0.1, 0.7, 0.2], [0.5, 0.2, 0.3]])
    codes, scores = top_n(proba, np.array(["a", "b", "c"]), 2)
    assert codes.tolist() == [["b", "c"], ["a", "c"]]
    np.testing.assert_allclose(scores, [[0.7, 0.2], [0.5, 0.3]])
    codes, scores = top_n(proba, np.array(["a", "b", "c"]), 10)  # n beyond the classes
    assert codes.shape == scores.shape == (2, 3)
    assert top_n(np.zeros((0, 3)), np.array(["a", "b", "c"]), 2)[0].shape == (0, 2)


def test_softmax_rows_any_axis_and_temperature() -> None:
    x = np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])
    p = softmax(x)
    np.testing.assert_allclose(p.sum(axis=1), 1.0)
    np.testing.assert_allclose(p[1], 1 / 3)
    assert softmax(x, 0.01)[0].argmax() == 2 and softmax(x, 0.01)[0, 2] > 0.99
    np.testing.assert_allclose(softmax(x, axis=0).sum(axis=0), 1.0)
    np.testing.assert_allclose(softmax(np.array([1000.0, 1000.0])), [0.5, 0.5])  # no overflow
    assert softmax(np.array([])).shape == (0,)
    with pytest.raises(ValueError, match="temperature"):
        softmax(x, 0.0)
