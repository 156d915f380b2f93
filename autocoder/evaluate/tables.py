"""The per-class table of an evaluation."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from autocoder.metrics import Gold, check_len, class_of, hit_ranks, ranked_array

PER_CLASS_COLUMNS = (
    "code",
    "label",
    "support",
    "top1_accuracy",
    "{topk}",
    "mean_confidence",
    "most_confused_with",
    "n_confused",
)


def _class_row(
    code: str, label: str, predicted: np.ndarray, ranks: np.ndarray, conf: np.ndarray, top_k: int
) -> dict[str, Any]:
    wrong = [p for p, rk in zip(predicted, ranks, strict=True) if rk != 1 and p]
    confused = Counter(wrong).most_common(1)
    conf = conf[~np.isnan(conf)]
    return {
        "code": code,
        "label": label,
        "support": len(ranks),
        "top1_accuracy": float((ranks == 1).mean()),
        f"top{top_k}_accuracy": float(((ranks > 0) & (ranks <= top_k)).mean()),
        "mean_confidence": float(conf.mean()) if conf.size else math.nan,
        "most_confused_with": confused[0][0] if confused else "",
        "n_confused": confused[0][1] if confused else 0,
    }


def per_class_table(
    ranked: Any,
    gold: Gold,
    confidence: Any,
    *,
    labels: Mapping[str, str] | None = None,
    top_k: int = 5,
) -> pd.DataFrame:
    """One row per gold class (first gold code): support, top-1/top-k accuracy, mean
    confidence (NaN confidences ignored) and the wrong top-1 code predicted most often."""
    arr = ranked_array(ranked)
    conf = np.asarray(confidence, dtype=float)
    check_len(arr.shape[0], gold)
    check_len(len(conf), gold, "confidence")
    if top_k < 1:
        raise ValueError(f"top_k must be >= 1, got {top_k}")
    ranks = hit_ranks(arr, gold)
    classes = np.array([class_of(g) for g in gold], dtype=object)
    labels = labels or {}
    rows = []
    for c in pd.unique(classes):
        mask = classes == c
        rows.append(_class_row(c, labels.get(c, ""), arr[mask, 0], ranks[mask], conf[mask], top_k))
    topk_col = f"top{top_k}_accuracy"
    # top_k == 1: a single accuracy column
    cols = list(dict.fromkeys(c.format(topk=topk_col) for c in PER_CLASS_COLUMNS))
    df = pd.DataFrame(rows, columns=cols)
    return df.sort_values(["support", "code"], ascending=[False, True], ignore_index=True)
