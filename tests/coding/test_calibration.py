"""Calibrators, target-precision thresholds and level sums (autocoder.calibration)."""

from __future__ import annotations

import numpy as np
import pytest

from autocoder.coding import calibration as cal
from autocoder.metrics import expected_calibration_error


def _synthetic(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows whose top probability overstates accuracy unless the similarity is high."""
    rng = np.random.default_rng(seed)
    p = rng.dirichlet(np.full(6, 0.3), size=n)
    sim = rng.uniform(0.2, 1.0, size=n)
    truth = p.max(axis=1) * sim  # the real chance of being right
    right = rng.uniform(size=n) < truth
    return cal.features(p, max_similarity=sim), right


def test_calibrator_fixes_overconfidence_on_held_out_rows() -> None:
    x, right = _synthetic(4000, 0)
    params = cal.fit_calibrator(x, right)
    x2, right2 = _synthetic(4000, 1)
    raw = expected_calibration_error(x2[:, cal.FEATURES.index("p1")], right2)
    fitted = expected_calibration_error(cal.calibrate(params, x2), right2)
    assert fitted < 0.03 < raw
    assert params["features"] == list(cal.FEATURES) and params["n"] == 4000


def test_calibrator_refuses_bad_input() -> None:
    x, right = _synthetic(50, 0)
    constant = cal.fit_calibrator(x, np.ones(50, dtype=bool))
    assert constant["kind"] == "constant"
    np.testing.assert_allclose(cal.calibrate(constant, x), 51 / 52)
    with pytest.raises(ValueError, match="as many labels"):
        cal.fit_calibrator(x, right[:10])
    params = cal.fit_calibrator(x, right) | {"features": ["p1"]}
    with pytest.raises(ValueError, match="other features"):
        cal.calibrate(params, x)


def test_threshold_is_the_lowest_reaching_the_target() -> None:
    conf = np.array([0.99, 0.9, 0.8, 0.7, 0.6, 0.5])
    right = np.array([1, 1, 1, 0, 1, 0])
    thr, prec, rows = cal.threshold_for_precision(conf, right, target=0.8, min_rows=1)
    assert (thr, prec, rows) == (0.6, 0.8, 5)
    thr, prec, rows = cal.threshold_for_precision(conf, right, target=0.95, min_rows=1)
    assert (thr, prec, rows) == (0.8, 1.0, 3)
    assert cal.threshold_for_precision(conf, right, target=0.95, min_rows=4)[0] is None
    with pytest.raises(ValueError, match="target precision"):
        cal.threshold_for_precision(conf, right, target=0.0)


def test_threshold_never_splits_tied_confidences() -> None:
    conf = np.array([0.9, 0.9, 0.9, 0.5])
    right = np.array([1, 1, 0, 0])
    thr, prec, rows = cal.threshold_for_precision(conf, right, target=0.6, min_rows=1)
    assert (thr, rows) == (0.9, 3) and prec == pytest.approx(2 / 3)


def test_level_probability_is_the_sum_of_descendants() -> None:
    classes = ["11-1011.00", "11-1011.03", "11-2021.00", "15-1252.00"]
    major = {c: c[:2] + "-0000" for c in classes}
    groups, matrix = cal.group_matrix(classes, major)
    p = np.array([[0.3, 0.3, 0.1, 0.3]])
    assert groups.tolist() == ["11-0000", "15-0000"]
    np.testing.assert_allclose(cal.level_proba(p, matrix), [[0.7, 0.3]])


def test_level_thresholds_fitted_on_rows_no_finer_level_took() -> None:
    rng = np.random.default_rng(3)
    fine = rng.uniform(size=2000)
    coarse = np.clip(fine + 0.3, 0, 1)
    right_fine = rng.uniform(size=2000) < fine
    right_coarse = rng.uniform(size=2000) < coarse
    fitted = cal.fit_level_thresholds([fine, coarse], [right_fine, right_coarse], target=0.9)
    level = cal.assign([fine, coarse], [f["threshold"] for f in fitted])
    assert {-1, 0, 1} <= set(level.tolist())
    assert right_fine[level == 0].mean() >= 0.9 and right_coarse[level == 1].mean() >= 0.9
    assert fitted[0]["share"] == pytest.approx((level == 0).mean())
    assert fitted[1]["share"] == pytest.approx((level == 1).mean())


def _interacting(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows whose rightness depends on two features together (what a logistic model misses)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, len(cal.FEATURES)))
    logit = 2.0 * x[:, 0] * (x[:, 7] > 0) - 1.0 * (x[:, 7] <= 0)
    return x, (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)


def test_boosted_calibrator_is_plain_json_and_what_scikit_learn_predicts() -> None:
    import json

    from sklearn.ensemble import GradientBoostingClassifier

    x, y = _interacting(3000, 0)
    params = cal.fit_calibrator(x, y)
    assert params["kind"] == "boosted"  # enough rows: trees
    again = json.loads(json.dumps(params))
    xt, yt = _interacting(2000, 1)
    ref = GradientBoostingClassifier(random_state=0, **cal.BOOSTED).fit(x, y)  # type: ignore[arg-type]
    assert np.allclose(cal.calibrate(again, xt), ref.predict_proba(xt)[:, 1], atol=1e-9)
    # on held-out rows the trees calibrate better than the logistic regression
    logistic = cal.fit_calibrator(x, y, kind="logistic")
    assert expected_calibration_error(cal.calibrate(again, xt), yt) < expected_calibration_error(
        cal.calibrate(logistic, xt), yt
    )
    few_x, few_y = _interacting(200, 2)
    assert cal.fit_calibrator(few_x, few_y)["kind"] == "logistic"  # too few rows for trees
    with pytest.raises(ValueError, match="unknown calibrator kind"):
        cal.fit_calibrator(x, y, kind="forest")


def test_thresholds_are_chosen_on_out_of_fold_confidence() -> None:
    """Labels that the features do not predict: the boosted calibrator scores its own rows as
    if it knew them, so a threshold chosen on them claims a precision new rows never get;
    out of fold, no threshold reaches it."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(800, len(cal.FEATURES)))
    y = rng.random(800) < 0.6
    params = cal.fit_calibrator(x, y, kind="boosted")
    thr_in, _, rows_in = cal.threshold_for_precision(cal.calibrate(params, x), y, target=0.85)
    assert thr_in is not None and rows_in >= 20  # in-sample: "0.85 reached"
    oof = cal.out_of_fold(x, y)
    assert oof.shape == (800,) and np.all((oof > 0) & (oof < 1))
    assert cal.threshold_for_precision(oof, y, target=0.85)[0] is None
    new_x, new_y = rng.normal(size=(800, len(cal.FEATURES))), rng.random(800) < 0.6
    kept = cal.calibrate(params, new_x) >= thr_in
    assert new_y[kept].mean() < 0.75  # what the in-sample threshold gives on new rows
    assert np.array_equal(cal.out_of_fold(x, y), oof)  # seeded
    with pytest.raises(ValueError, match="2 folds"):
        cal.out_of_fold(x, y, folds=1)


def test_threshold_margin_asks_the_precision_bound_to_reach_the_target() -> None:
    """20 right rows then a wrong one: the exact rule takes all 21 (0.952 >= 0.95); with a
    one-sigma margin only a run whose lower bound clears 0.95 counts (the 20 right rows)."""
    conf = np.linspace(0.99, 0.5, 30)
    right = np.r_[np.ones(20), 0, np.zeros(9)]
    assert cal.threshold_for_precision(conf, right, target=0.95, min_rows=5)[2] == 21
    thr, prec, rows = cal.threshold_for_precision(conf, right, target=0.95, min_rows=5,
                                                  margin_sd=1.0)  # fmt: skip
    assert (rows, prec) == (20, 1.0) and thr == pytest.approx(conf[19])
    assert (
        cal.threshold_for_precision(conf, right, target=0.99, min_rows=5, margin_sd=1.0)[0] is None
    )
    # the bound itself: 20 right of 21, one sigma -> 0.8816 (Wilson), so 0.88 is reached at 21
    assert (
        cal.threshold_for_precision(conf, right, target=0.881, min_rows=21, margin_sd=1.0)[2] == 21
    )
    assert (
        cal.threshold_for_precision(conf, right, target=0.882, min_rows=21, margin_sd=1.0)[0]
        is None
    )
    with pytest.raises(ValueError, match="margin_sd"):
        cal.threshold_for_precision(conf, right, target=0.9, margin_sd=-1)


def test_out_of_fold_keeps_copies_of_a_row_in_one_fold() -> None:
    """The same features (one title with several employers) are never scored by a calibrator
    that learnt a copy of them: with every row copied three times and labels the features do
    not predict, boosted trees still cannot reach a 0.85 target out of fold."""
    rng = np.random.default_rng(5)
    base = rng.normal(size=(300, len(cal.FEATURES)))
    x, y = np.repeat(base, 3, axis=0), np.repeat(rng.random(300) < 0.6, 3)
    oof = cal.out_of_fold(x, y, kind="boosted")
    assert cal.threshold_for_precision(oof, y, target=0.85)[0] is None
    assert np.all(oof[0::3] == oof[1::3])  # copies share a fold, so the same calibrator
    with pytest.raises(ValueError, match="2 rows"):
        cal.out_of_fold(x[:1], y[:1])
    # one row copied: no fold is left to learn from, so no confidence and no threshold
    same = cal.out_of_fold(np.repeat(base[:1], 50, axis=0), np.ones(50, dtype=bool))
    assert np.all(same == 0.0)
    assert cal.threshold_for_precision(same, np.ones(50, dtype=bool), target=0.5)[0] is None
