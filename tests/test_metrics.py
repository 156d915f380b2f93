"""autocoder.metrics: the one implementation of each score, on hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from autocoder.metrics import (
    confidence_bins,
    expected_calibration_error,
    recall_at_k,
    reliability_table,
    top_k_accuracy,
)


def test_bins_are_right_closed_as_in_guo_et_al() -> None:
    # ((m-1)/M, m/M]: an edge value belongs to the bin it closes; 0 to the first bin
    conf = np.array([0.0, 0.1, 0.2, 0.3, 0.30001, 0.5, 0.7, 0.9, 1.0])
    assert confidence_bins(conf, n_bins=10).tolist() == [0, 0, 1, 2, 3, 4, 6, 8, 9]
    assert confidence_bins(np.array([0.5, 0.50001]), n_bins=2).tolist() == [0, 1]


def test_ece_on_a_bin_edge() -> None:
    # 0.5 closes bin (0, 0.5]: gap |1 - 0.5| * 1/2 + |0 - 0.9| * 1/2
    conf = np.array([0.5, 0.9])
    correct = np.array([True, False])
    assert expected_calibration_error(conf, correct, n_bins=2) == pytest.approx(0.7)


def test_ece_empty_and_bad_input() -> None:
    assert math.isnan(expected_calibration_error(np.array([]), np.array([], dtype=bool)))
    with pytest.raises(ValueError, match="NaN"):
        expected_calibration_error(np.array([np.nan]), np.array([True]))
    with pytest.raises(ValueError, match="shape"):
        reliability_table(np.array([0.5, 0.6]), np.array([True]))
    with pytest.raises(ValueError, match="n_bins"):
        confidence_bins(np.array([0.5]), n_bins=0)


def test_recall_at_k_counts_every_acceptable_code() -> None:
    ranked = np.array([["a", "b", "c"], ["x", "y", "b"]], dtype=object)
    gold = [("a", "c"), ("b",)]
    # row 0: a in top 1 (1/2), a and c in top 3 (2/2); row 1: b only at rank 3
    assert recall_at_k(ranked, gold, k=1) == pytest.approx((0.5 + 0) / 2)
    assert recall_at_k(ranked, gold, k=3) == pytest.approx((1 + 1) / 2)
    # one acceptable code per row: recall@k is top-k accuracy
    single = [("a",), ("b",)]
    assert recall_at_k(ranked, single, k=2) == top_k_accuracy(ranked, single, k=2)
    with pytest.raises(ValueError, match="k must be >= 1"):
        recall_at_k(ranked, gold, k=0)
