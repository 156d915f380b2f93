"""Fit the model + retrieval mixture (``autocoder.combine``) when a model is trained.

The weight and temperature must come from titles that neither the network nor the index has
seen, and that look like what users send. With a dev split held out of the index (taxonomy
imported with ``--holdout``) those are the dev titles, clean and noisy: the parameters the model
ships with are fitted on all of them, and the dev figures of the mixture are cross-fitted (each
half scored with the parameters fitted on the other half), so they stay held-out figures.
Without such a dev split, the validation titles from the extra sources (and their noisy copies)
are used; they are official titles rather than postings, so the fitted weight is conservative.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from autocoder.classify.dev_eval import dev_gold, dev_inputs, score_proba
from autocoder.combine import CombinedPredictor, fit_mixture, mix
from autocoder.records import JobRecord


def probabilities(clf: Any, retrieval: Any, records: list[JobRecord]) -> tuple[np.ndarray, ...]:
    """The model's and retrieval's probabilities, retrieval's columns in the model's order."""
    parts = CombinedPredictor(clf, retrieval, retrieval_weight=1.0).fit()
    p_model = np.asarray(clf.predict_proba(records), dtype=np.float64)
    p_ret = np.asarray(retrieval.predict_proba(records), dtype=np.float64)
    return p_model, p_ret[:, parts._retrieval_columns]


def targets(classes: Any, gold: list[tuple[str, ...]]) -> tuple[np.ndarray, np.ndarray]:
    """Per row the column of its first known code and the boolean mask of all right codes."""
    pos = {str(c): j for j, c in enumerate(classes)}
    mask = np.zeros((len(gold), len(pos)), dtype=bool)
    for i, codes in enumerate(gold):
        mask[i, [pos[c] for c in codes if c in pos]] = True
    y = np.asarray([pos.get(next((c for c in g if c in pos), ""), 0) for g in gold])
    return y, mask


def fit_on(
    clf: Any, retrieval: Any, records: list[JobRecord], gold: list[tuple[str, ...]], **kw: Any
) -> dict[str, Any]:
    p_model, p_ret = probabilities(clf, retrieval, records)
    y, mask = targets(clf.classes_, gold)
    return fit_mixture(p_model, p_ret, y, acceptable=mask, **kw)


def fit_on_dev(
    clf: Any, retrieval: Any, dev: pd.DataFrame, **kw: Any
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Parameters fitted on every dev title (clean + noisy), and the cross-fitted dev figures
    (``{"n", "clean", "noisy"}`` as ``dev_eval.dev_figures``)."""
    inputs, gold = dev_inputs(dev), dev_gold(dev)
    probs = {k: probabilities(clf, retrieval, v) for k, v in inputs.items()}
    y, mask = targets(clf.classes_, gold)
    folds = np.arange(len(dev)) % 2

    def fitted(rows: np.ndarray) -> dict[str, Any]:
        stack = [np.concatenate([probs[k][part][rows] for k in probs]) for part in (0, 1)]
        ys = np.concatenate([y[rows]] * len(probs))
        masks = np.concatenate([mask[rows]] * len(probs))
        return fit_mixture(stack[0], stack[1], ys, acceptable=masks, **kw)

    figures: dict[str, Any] = {"n": len(dev)}
    for name, (p_model, p_ret) in probs.items():
        out = np.zeros_like(p_model)
        for fold in (0, 1):
            params = fitted(folds != fold)
            rows = folds == fold
            out[rows] = mix(
                p_model[rows], p_ret[rows], params["retrieval_weight"], params["temperature"]
            )
        figures[name] = score_proba(out, clf.classes_, gold)
    return fitted(np.ones(len(dev), dtype=bool)), figures
