from __future__ import annotations

import numpy as np
import pytest

from autocoder.classify.calibrate import (
    DEFAULT_CONFORMAL_METHOD,
    conformal_threshold,
    coverage,
    fit_temperature,
    prediction_set_indices,
)
from autocoder.classify.model import EmbeddingClassifier
from autocoder.mathx import softmax
from autocoder.metrics import expected_calibration_error

from .conftest import blobs


def _overconfident(n: int, k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Logits from a calibrated model (T=1), then multiplied by 4: overconfident."""
    rng = np.random.default_rng(seed)
    true_logits = rng.normal(size=(n, k)) * 1.5
    p = softmax(true_logits)
    y = np.array([rng.choice(k, p=row) for row in p])
    return true_logits * 4.0, y


def test_temperature_recovers_scale() -> None:
    logits, y = _overconfident(4000, 5, seed=1)
    t = fit_temperature(logits, y)
    assert t == pytest.approx(4.0, rel=0.15)


def test_temperature_lowers_ece_on_held_out_logits() -> None:
    logits, y = _overconfident(3000, 5, seed=2)
    t = fit_temperature(logits[:1500], y[:1500])
    test_l, test_y = logits[1500:], y[1500:]
    before = softmax(test_l)
    after = softmax(test_l, t)
    ece_before = expected_calibration_error(before.max(1), before.argmax(1) == test_y)
    ece_after = expected_calibration_error(after.max(1), after.argmax(1) == test_y)
    assert ece_after < ece_before / 2


def test_classifier_calibration_lowers_ece_on_held_out_toy_set() -> None:
    # overlapping blobs, a wide net without regularisation: miscalibrated before scaling
    X_all, y_all = blobs([700] * 6, dim=8, spread=[2.2] * 6, seed=3)
    perm = np.random.default_rng(0).permutation(len(y_all))
    X_all, y_all = X_all[perm], y_all[perm]
    X, y = X_all[:600], y_all[:600]
    X_val, y_val = X_all[600:1800], y_all[600:1800]
    X_te, y_te = X_all[1800:], y_all[1800:]
    common: dict = dict(
        hidden=256,
        dropout=0.0,
        epochs=25,
        lr=5e-3,
        weight_decay=0.0,
        patience=1000,
        conformal_alpha=None,
        seed=1,
    )
    raw = EmbeddingClassifier(calibrate=False, **common).fit(X, y, X_val=X_val, y_val=y_val)
    cal = EmbeddingClassifier(calibrate=True, **common).fit(X, y, X_val=X_val, y_val=y_val)
    assert raw.temperature_ == 1.0
    assert cal.temperature_ != pytest.approx(1.0, abs=0.05)

    def ece(model: EmbeddingClassifier) -> float:
        p = model.predict_proba(X_te)
        return expected_calibration_error(p.max(1), model.classes_[p.argmax(1)] == y_te)

    assert np.array_equal(raw.predict(X_te), cal.predict(X_te))  # ranking unchanged
    assert ece(cal) < 0.75 * ece(raw)


def test_lac_is_the_default_conformal_method() -> None:
    assert DEFAULT_CONFORMAL_METHOD == "lac"
    assert EmbeddingClassifier().conformal_method == DEFAULT_CONFORMAL_METHOD
    p = np.array([[0.5, 0.3, 0.2]])
    # LAC at threshold 0.75 keeps every class with p >= 0.25; APS would keep only the first
    assert [s.tolist() for s in prediction_set_indices(p, 0.75)] == [[0, 1]]
    assert [s.tolist() for s in prediction_set_indices(p, 0.75, method="aps")] == [[0]]


@pytest.mark.parametrize("method", ["aps", "lac"])
def test_conformal_sets_reach_target_coverage(method: str) -> None:
    logits, y = _overconfident(6000, 8, seed=4)
    p = softmax(logits, 4.0)
    q = conformal_threshold(p[:3000], y[:3000], alpha=0.1, method=method)
    sets = prediction_set_indices(p[3000:], q, method=method)
    cov = coverage(sets, y[3000:])
    assert 0.88 <= cov <= 0.93
    assert all(len(s) >= 1 for s in sets)
    sizes = [len(s) for s in sets]
    assert 1 < np.mean(sizes) < 8  # informative: not always everything


def test_aps_sets_grow_with_uncertainty() -> None:
    p = np.array([[0.97, 0.01, 0.01, 0.01], [0.4, 0.3, 0.2, 0.1]])
    sets = prediction_set_indices(p, 0.9, method="aps")
    assert sets[0].tolist() == [0]
    assert sets[1].tolist() == [0, 1, 2]  # mass 0.9 reached with the third class
    assert prediction_set_indices(p, 0.5, method="aps")[0].tolist() == [0]  # never empty


def test_conformal_alpha_validated() -> None:
    with pytest.raises(ValueError, match="alpha"):
        conformal_threshold(np.eye(3), np.arange(3), alpha=1.5)


def test_acceptable_codes_credit_any_right_answer() -> None:
    p = np.array([[0.5, 0.4, 0.1], [0.2, 0.3, 0.5]])
    y = np.array([1, 0])
    ok = np.array([[True, True, False], [True, False, False]])
    from autocoder.classify.calibrate import conformity_scores

    # row 0: the top class is acceptable too -> APS score is its own mass (0.5)
    assert conformity_scores(p, y, "aps", acceptable=ok).tolist() == pytest.approx([0.5, 1.0])
    assert conformity_scores(p, y, "aps").tolist() == pytest.approx([0.9, 1.0])
    assert conformity_scores(p, y, "lac", acceptable=ok).tolist() == pytest.approx([0.5, 0.8])


def test_temperature_with_acceptable_sets_is_less_conservative() -> None:
    # every row has two right answers: the top class and the label
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(500, 6)) * 3
    top = logits.argmax(1)
    y = (top + 1) % 6
    ok = np.zeros((500, 6), dtype=bool)
    ok[np.arange(500), top] = True
    assert fit_temperature(logits, y, acceptable=ok) < fit_temperature(logits, y)
