"""Dev figures (autocoder.classify.dev_eval) pinned on a hand-made example."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from autocoder.classify.dev_eval import dev_figures, dev_gold, score_proba


def test_score_proba_counts_any_right_code() -> None:
    classes = np.asarray(["a", "b", "c"])
    proba = np.asarray([[0.7, 0.2, 0.1], [0.5, 0.4, 0.1], [0.2, 0.3, 0.5], [0.9, 0.05, 0.05]])
    gold = [("a",), ("b",), ("c", "a"), ("c",)]
    out = score_proba(proba, classes, gold)
    assert out["top1"] == 0.5 and out["top3"] == 1.0
    assert out["coded_at_threshold"] == 1.0 and out["precision_at_threshold"] == 0.5
    # ECE over 15 bins: 0.7 right (0.3), the two 0.5s one right (0), 0.9 wrong (0.9)
    assert out["ece"] == pytest.approx((0.3 + 0.0 + 0.9) / 4, abs=1e-4)


class _Keyword:
    classes_ = np.asarray(["cook", "nurse"])

    def predict_proba(self, records):  # type: ignore[no-untyped-def]
        return np.asarray(
            [[0.9, 0.1] if "cook" in r.title.lower() else [0.1, 0.9] for r in records]
        )


def test_dev_figures_read_clean_and_noisy_titles() -> None:
    dev = pd.DataFrame(
        {"id": ["1", "2"], "title": ["Line Cook", "Staff Nurse"], "codes": ["cook", "nurse"]}
    )
    out = dev_figures(_Keyword(), dev)
    assert out["n"] == 2 and out["clean"]["top1"] == 1.0 and out["noisy"]["top1"] == 1.0
    with pytest.raises(ValueError, match="'codes'"):
        dev_gold(dev.drop(columns=["codes"]))
