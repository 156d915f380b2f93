"""Query strategies on small hand-computable arrays."""

from __future__ import annotations

import numpy as np
import pytest

from autocoder.review.strategies import (
    ClassBalanced,
    Composite,
    ConformalSetSize,
    Diversity,
    Entropy,
    LeastConfidence,
    Margin,
    Random,
    make_strategy,
)

# rows: max p = 0.9, 0.5, 0.4, 0.6 ; margins 0.8, 0.0, 0.1, 0.3
PROBA = np.array(
    [
        [0.9, 0.1, 0.0],
        [0.5, 0.5, 0.0],
        [0.4, 0.3, 0.3],
        [0.6, 0.3, 0.1],
    ]
)


def test_least_confidence_orders_by_top_probability() -> None:
    s = LeastConfidence(0.5)
    assert s.query(PROBA, None, 4).tolist() == [2, 1, 3, 0]
    assert s.last_scores is not None
    np.testing.assert_allclose(s.last_scores, [0.1, 0.5, 0.6, 0.4])


def test_least_confidence_only_below_threshold() -> None:
    # 0.5 is not below 0.5: only row 2 qualifies
    assert LeastConfidence(0.5, only_below=True).query(PROBA, None, 3).tolist() == [2]
    assert LeastConfidence(0.55, only_below=True).query(PROBA, None, 3).tolist() == [2, 1]


def test_margin_and_entropy() -> None:
    m = Margin()
    assert m.query(PROBA, None, 2).tolist() == [1, 2]
    np.testing.assert_allclose(m.last_scores, [0.2, 1.0, 0.9, 0.7])
    e = Entropy()
    assert e.query(PROBA, None, 1).tolist() == [2]
    expected = -(0.4 * np.log(0.4) + 2 * 0.3 * np.log(0.3))
    assert e.last_scores[2] == pytest.approx(expected)
    assert e.last_scores[1] == pytest.approx(np.log(2))


def test_labeled_rows_are_never_returned() -> None:
    assert LeastConfidence().query(PROBA, None, 4, labeled=[2, 1]).tolist() == [3, 0]
    assert Random().query(PROBA, None, 4, labeled=[0]).tolist().count(0) == 0
    with pytest.raises(ValueError, match="labeled indices"):
        Margin().query(PROBA, None, 1, labeled=[9])


def test_conformal_set_size_with_qhat() -> None:
    # qhat 0.75: codes with p >= 0.25 -> sizes 1, 2, 3, 2
    s = ConformalSetSize(qhat=0.75)
    np.testing.assert_array_equal(s.set_sizes(PROBA), [1, 2, 3, 2])
    # row 1 and 3 both have 2 codes: the less confident (row 1, p=0.5) goes first
    assert s.query(PROBA, None, 3).tolist() == [2, 1, 3]


def test_conformal_set_size_uses_the_models_sets() -> None:
    from autocoder.coding.predictor import Capabilities

    class Model:
        capabilities = Capabilities(sets=True)  # declared; a name is not enough

        @property
        def classes_(self) -> np.ndarray:
            return np.asarray(["a", "b", "c"])

        def predict(self, X: object) -> np.ndarray:
            raise NotImplementedError

        def predict_proba(self, X: object) -> np.ndarray:
            raise NotImplementedError

        def predict_sets(self, X: object, *, proba: np.ndarray) -> list[list[str]]:
            return [["a"] * k for k in (3, 1, 1, 2)]

    assert ConformalSetSize(Model()).query(PROBA, None, 2).tolist() == [0, 3]

    class Undeclared(Model):
        capabilities = Capabilities()

    with pytest.raises(ValueError, match="qhat"):
        ConformalSetSize(Undeclared()).query(PROBA, None, 1)
    with pytest.raises(ValueError, match="qhat"):
        ConformalSetSize().query(PROBA, None, 1)


def test_diversity_is_k_center_greedy() -> None:
    emb = np.array([[0.0, 0.0], [1.0, 0.0], [10.0, 0.0], [0.0, 5.0], [9.0, 0.0]])
    proba = np.full((5, 2), 0.5)
    d = Diversity(normalize=False)
    # labeled row 0 is the first center: farthest is 2 (10), then 3 (5 from 0), then 1 or 4
    picked = d.query(proba, emb, 3, labeled=[0])
    assert picked.tolist() == [2, 3, 1]
    assert d.last_scores is not None
    assert d.last_scores[2] == pytest.approx(10.0)
    assert d.last_scores[3] == pytest.approx(5.0)
    assert d.last_scores[1] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="embeddings"):
        d.query(proba, None, 1)


def test_diversity_without_labeled_rows_starts_from_rng() -> None:
    emb = np.array([[0.0], [1.0], [2.0], [3.0]])
    picked = Diversity(normalize=False).query(np.ones((4, 1)), emb, 4, rng=np.random.default_rng(1))
    assert sorted(picked.tolist()) == [0, 1, 2, 3]
    # after the first center, the next is the farthest end
    first = picked[0]
    assert picked[1] == (3 if first < 2 else 0)


def test_class_balanced_round_robin() -> None:
    proba = np.array(
        [
            [0.9, 0.1],  # class 0, score 0.1
            [0.6, 0.4],  # class 0, score 0.4
            [0.55, 0.45],  # class 0, score 0.45
            [0.2, 0.8],  # class 1, score 0.2
        ]
    )
    # least confidence alone: 2, 1, 3, 0 ; balanced: best of class 0 (2), best of class 1 (3),
    # then class 0's next (1)
    assert ClassBalanced().query(proba, None, 3).tolist() == [2, 3, 1]


def test_random_is_reproducible() -> None:
    a = Random().query(PROBA, None, 2, rng=np.random.default_rng(5))
    b = Random().query(PROBA, None, 2, rng=np.random.default_rng(5))
    assert a.tolist() == b.tolist() and len(set(a.tolist())) == 2


def test_composite_prefilters_then_diversifies() -> None:
    # uncertain rows 1, 2 are near each other, row 3 is far away
    proba = np.array([[0.95, 0.05], [0.5, 0.5], [0.52, 0.48], [0.6, 0.4]])
    emb = np.array([[0.0, 1.0], [1.0, 0.0], [1.0, 0.01], [-1.0, 0.0]])
    plain = Margin().query(proba, emb, 2)
    assert plain.tolist() == [1, 2]
    comp = Composite(Margin(), Diversity(), factor=2)
    picked = comp.query(proba, emb, 2, labeled=None, rng=np.random.default_rng(0))
    # top-4 by margin are 1, 2, 3, 0; k-center among them picks two far-apart rows
    assert len(picked) == 2 and len(set(picked.tolist())) == 2
    assert not {1, 2} <= set(picked.tolist())
    assert comp.name == "Margin+Diversity"


def test_make_strategy_by_name() -> None:
    assert isinstance(make_strategy("least_confidence", threshold=0.3), LeastConfidence)
    assert make_strategy("lc", threshold=0.3).threshold == 0.3  # type: ignore[attr-defined]
    comp = make_strategy("entropy+diversity", factor=3, threshold=0.2)
    assert isinstance(comp, Composite) and comp.factor == 3
    assert isinstance(make_strategy("conformal", qhat=0.5), ConformalSetSize)
    with pytest.raises(ValueError, match="unknown strategy"):
        make_strategy("smartest")
    with pytest.raises(ValueError, match="at most two"):
        make_strategy("a+b+c")


def test_n_larger_than_rows_and_bad_input() -> None:
    assert len(Entropy().query(PROBA, None, 10)) == 4
    assert len(Entropy().query(PROBA, None, 0)) == 0
    with pytest.raises(ValueError, match="2-D"):
        Entropy().query(np.ones(3), None, 1)
    with pytest.raises(ValueError, match="n must be"):
        Entropy().query(PROBA, None, -1)


def test_per_answer_ranks_distinct_texts_by_frequency_times_uncertainty() -> None:
    texts = ["Cake decorator", "cake  decorator", "CAKE DECORATOR", "Night porter", "Welder",
             "welder"]  # fmt: skip
    proba = np.array(
        [[0.6, 0.4], [0.6, 0.4], [0.6, 0.4], [0.3, 0.7], [0.9, 0.1], [0.9, 0.1]]
    )  # uncertainty 0.4 x 3, 0.3 x 1, 0.1 x 2
    s = make_strategy("per_answer", threshold=0.95)
    assert s.needs_texts and not s.needs_embeddings
    idx = s.query(proba, None, 3, texts=texts)
    assert idx.tolist() == [0, 3, 4]  # one row per distinct text, most records settled first
    assert s.last_settled.tolist() == [3, 1, 2]  # type: ignore[attr-defined]
    assert s.settled_per_answer == pytest.approx(2.0)  # type: ignore[attr-defined]
    assert s.last_scores is not None and s.last_scores[1] == pytest.approx(1.2)
    # below the threshold first: the frequent confident title waits behind an uncertain one
    s = make_strategy("frequency", threshold=0.8)
    assert s.query(proba, None, 2, texts=texts).tolist() == [0, 3]
    # a labeled row's text is still reachable through its other rows
    assert s.query(proba, None, 1, texts=texts, labeled=[0]).tolist() == [1]
    with pytest.raises(ValueError, match="needs the rows' texts"):
        s.query(proba, None, 1)
    with pytest.raises(ValueError, match="one entry per row"):
        s.query(proba, None, 1, texts=texts[:2])


def test_needs_texts_is_declared() -> None:
    assert not make_strategy("diversity").needs_texts and not make_strategy("entropy").needs_texts
    both = make_strategy("per_answer+diversity")
    assert both.needs_texts and both.needs_embeddings


def test_strategies_declare_whether_they_need_embeddings() -> None:
    from autocoder.review.strategies import make_strategy

    needs = {
        name: make_strategy(name).needs_embeddings
        for name in ("least_confidence", "entropy", "diversity", "kcenter", "random",
                     "entropy+diversity", "diversity+margin", "margin+entropy")
    }  # fmt: skip
    assert needs == {
        "least_confidence": False, "entropy": False, "diversity": True, "kcenter": True,
        "random": False, "entropy+diversity": True, "diversity+margin": True,
        "margin+entropy": False,
    }  # fmt: skip
    from autocoder.review.strategies import ClassBalanced, Diversity

    assert ClassBalanced(Diversity()).needs_embeddings and not ClassBalanced().needs_embeddings
