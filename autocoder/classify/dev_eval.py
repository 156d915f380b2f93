"""Dev figures of a trained model: the recipe's held-out real titles, clean and posting-noisy.

``dev_figures`` scores a predictor (anything with ``classes_`` and ``predict_proba``) on the dev
table (``id, title, codes``; ``codes`` ``;``-separated, any of them is right) as ``autocoder
code`` would see it: each title through the title normaliser first. The noisy set appends
posting noise (``autocoder.noise``, seeded) to the same titles. ``autocoder train`` stores the
figures in the model's metadata and prints them, so a user sees how well the model codes titles
it never saw before it is refit on everything.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from autocoder.metrics import expected_calibration_error, macro_accuracy, top_k_accuracy
from autocoder.noise import noisy_titles
from autocoder.records import JobRecord
from autocoder.titles import clean_title

NOISE_SEED = 7
REVIEW_THRESHOLD = 0.5  # the default coder.threshold


def dev_gold(dev: pd.DataFrame) -> list[tuple[str, ...]]:
    """The right codes of each dev row."""
    if not {"title", "codes"} <= set(dev.columns):
        raise ValueError(f"a dev table needs 'title' and 'codes' columns, has {list(dev.columns)}")
    return [tuple(str(c).split(";")) for c in dev["codes"]]


def score_proba(
    proba: np.ndarray, classes: np.ndarray, gold: list[tuple[str, ...]]
) -> dict[str, float]:
    """top-1/3/5, macro top-1 (mean over gold codes), the ECE of the top-1 confidence, and the
    share coded automatically at the default review threshold with its precision."""
    order = np.argsort(-proba, axis=1, kind="stable")[:, :5]
    ranked = np.asarray(classes)[order]
    correct = np.asarray([r[0] in g for r, g in zip(ranked, gold, strict=True)])
    auto = proba.max(axis=1) >= REVIEW_THRESHOLD
    return {
        "coded_at_threshold": round(float(auto.mean()), 4) if len(auto) else float("nan"),
        "precision_at_threshold": round(float(correct[auto].mean()), 4)
        if auto.any()
        else float("nan"),
        "top1": round(top_k_accuracy(ranked, gold, k=1), 4),
        "top3": round(top_k_accuracy(ranked, gold, k=3), 4),
        "top5": round(top_k_accuracy(ranked, gold, k=5), 4),
        "macro_top1": round(macro_accuracy(ranked, gold), 4),
        "ece": round(expected_calibration_error(proba.max(axis=1), correct), 4),
    }


def dev_inputs(dev: pd.DataFrame, *, noise_seed: int = NOISE_SEED) -> dict[str, list[JobRecord]]:
    """The dev titles as the coder sees them, clean and noisy, both normalised."""
    titles = [str(t) for t in dev["title"]]
    return {
        "clean": [JobRecord(clean_title(t)) for t in titles],
        "noisy": [JobRecord(clean_title(t)) for t in noisy_titles(titles, seed=noise_seed)],
    }


def dev_figures(model: Any, dev: pd.DataFrame) -> dict[str, Any]:
    """``{"n": rows, "clean": {...}, "noisy": {...}}`` for ``model`` on the dev table."""
    gold = dev_gold(dev)
    out: dict[str, Any] = {"n": len(dev)}
    for name, records in dev_inputs(dev).items():
        out[name] = score_proba(np.asarray(model.predict_proba(records)), model.classes_, gold)
    return out
