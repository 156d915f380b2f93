"""A trained classifier's scores combined with retrieval's, for ``autocoder code --model``:
the mixture itself (``mix``, ``CombinedPredictor``), and its fitting when a model is trained
(``fit_mixture`` on probabilities; ``fit_on`` / ``fit_on_dev`` from a classifier, a retrieval
coder and held-out titles).

The classifier generalises from many texts per code; retrieval finds the one code text (an
alternate title, a task) that a record matches almost word for word. Their mixture ranks better
than either alone (README, "Coding quality"):

    p(code | record) = (1 - w) * p_classifier + w * p_retrieval

then sharpened or flattened by a temperature ``T`` (``p ** (1 / T)``, renormalised), since a
mixture of two calibrated distributions is not calibrated itself (``T`` minimises the ECE of
the top-1 confidence, the number the review threshold reads). ``fit_mixture`` chooses ``w``
(top-1 accuracy over a grid) and fits ``T`` and the conformal threshold on held-out titles
that neither the network nor the index has seen; ``autocoder train`` does that on the
validation titles from the extra sources and their noisy copies and stores the result in the
model's metadata (``combine``). Retrieval probabilities are a softmax over the top-k index
hits, so the mixture stays a distribution over the classifier's codes.

The weight and temperature must come from titles that neither the network nor the index has
seen, and that look like what users send. With a dev split held out of the index (taxonomy
imported with ``--holdout``) those are the dev titles, clean and noisy: the parameters the model
ships with are fitted on all of them, and the dev figures of the mixture are cross-fitted (each
half scored with the parameters fitted on the other half), so they stay held-out figures.
Without such a dev split, the validation titles from the extra sources (and their noisy copies)
are used; they are official titles rather than postings, so the fitted weight is conservative.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from autocoder.classify.calibrate import (
    DEFAULT_CONFORMAL_METHOD,
    ConformalMethod,
    conformal_threshold,
    prediction_set_indices,
)
from autocoder.coding.predictor import Capabilities, capabilities_of
from autocoder.records import JobRecord, RecordsLike, as_records

#: The keys of a model's metadata ``combine`` that parameterise ``CombinedPredictor``.
PARAM_KEYS = ("retrieval_weight", "temperature", "conformal_threshold")

#: Retrieval weights ``fit_mixture`` tries.
WEIGHT_GRID = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)


def mix(
    p_model: np.ndarray, p_retrieval: np.ndarray, weight: float, temperature: float = 1.0
) -> np.ndarray:
    """``(1 - w) p_model + w p_retrieval``, then ``p ** (1 / T)`` renormalised per row."""
    p = (1.0 - weight) * np.asarray(p_model, np.float64) + weight * np.asarray(p_retrieval)
    if temperature != 1.0:
        p = np.power(np.clip(p, 1e-12, None), 1.0 / temperature)
        p /= p.sum(axis=1, keepdims=True)
    return p


#: Temperatures ``fit_mixture`` tries (a log grid).
TEMPERATURE_GRID = tuple(float(t) for t in np.geomspace(0.2, 3.0, 41))


def _ece_temperature(
    p_model: np.ndarray, p_retrieval: np.ndarray, weight: float, acceptable: np.ndarray
) -> float:
    """The temperature whose top-1 confidence has the lowest ECE: the confidence is what the
    review threshold reads, and NLL (``fit_temperature``) trades it against the tail."""
    from autocoder.metrics import expected_calibration_error

    def ece(t: float) -> float:
        p = mix(p_model, p_retrieval, weight, t)
        correct = acceptable[np.arange(len(p)), p.argmax(axis=1)]
        return expected_calibration_error(p.max(axis=1), correct)

    return min(TEMPERATURE_GRID, key=lambda t: (round(ece(t), 6), abs(np.log(t))))


def _top1(p: np.ndarray, acceptable: np.ndarray) -> float:
    return float(acceptable[np.arange(len(p)), p.argmax(axis=1)].mean())


def fit_mixture(
    p_model: np.ndarray,
    p_retrieval: np.ndarray,
    y: np.ndarray,
    *,
    acceptable: np.ndarray,
    weights: tuple[float, ...] = WEIGHT_GRID,
    alpha: float | None = 0.1,
    method: ConformalMethod = DEFAULT_CONFORMAL_METHOD,
) -> dict[str, Any]:
    """The retrieval weight with the best top-1 (the smallest among ties), the temperature
    with the lowest ECE of the top-1 confidence, and the conformal threshold at ``1 - alpha``.

    ``y``: column of each row's code; ``acceptable``: boolean ``(n, C)``, every right code."""
    if not len(y):
        raise ValueError("fit_mixture needs at least one held-out row")
    scores = {w: _top1(mix(p_model, p_retrieval, w), acceptable) for w in weights}
    best = max(weights, key=lambda w: (round(scores[w], 6), -w))
    temperature = _ece_temperature(p_model, p_retrieval, best, acceptable)
    calibrated = mix(p_model, p_retrieval, best, temperature)
    threshold = None
    if alpha is not None:
        threshold = conformal_threshold(
            calibrated, y, alpha=alpha, method=method, acceptable=acceptable
        )
    return {
        "retrieval_weight": float(best),
        "temperature": float(temperature),
        "conformal_threshold": threshold,
        "top1_by_weight": {str(w): round(v, 4) for w, v in scores.items()},
        "n": int(len(y)),
    }


def retrieval_columns(model_classes: Sequence[Any], retrieval_classes: Sequence[Any]) -> np.ndarray:
    """Per model code, the column of the same code in retrieval's ``predict_proba``; fails
    clearly when the two code lists differ."""
    model_codes = [str(c) for c in model_classes]
    ret_pos = {str(c): j for j, c in enumerate(retrieval_classes)}
    differ = sorted(set(model_codes) ^ set(ret_pos))
    if differ:
        raise ValueError(
            f"the model's and the index's codes differ ({len(differ)}, e.g. {differ[:3]}): "
            "rebuild the index for the taxonomy the model was trained on"
        )
    return np.asarray([ret_pos[c] for c in model_codes])


def mixture_params(fitted: Mapping[str, Any]) -> dict[str, Any]:
    """The ``CombinedPredictor`` keywords of a fitted mixture (metadata ``combine``)."""
    return {k: fitted[k] for k in PARAM_KEYS}


class CombinedPredictor:
    """``Predictor`` (and ``SetPredictor`` when the model has sets) over a fitted classifier
    and a fitted retrieval coder with the same codes (in any order; columns follow the
    model's ``classes_``)."""

    def __init__(
        self,
        model: Any,
        retrieval: Any,
        *,
        retrieval_weight: float,
        temperature: float = 1.0,
        conformal_threshold: float | None = None,
    ) -> None:
        self.model = model
        self.retrieval = retrieval
        self.retrieval_weight = retrieval_weight
        self.temperature = temperature
        self.conformal_threshold = conformal_threshold

    def fit(self, X: Any = None, y: Any = None) -> CombinedPredictor:
        """Check the parts: both fitted, same codes, a weight in [0, 1]."""
        if not 0.0 <= self.retrieval_weight <= 1.0:
            raise ValueError(f"retrieval_weight must be in [0, 1], got {self.retrieval_weight}")
        self.retrieval_columns_ = retrieval_columns(self.model.classes_, self.retrieval.classes_)
        self.classes_ = np.asarray(self.model.classes_)
        return self

    @property
    def capabilities(self) -> Capabilities:
        """Sets when fitted with a threshold or the model has them; the model's embeddings."""
        model = capabilities_of(self.model)
        return Capabilities(
            sets=self.conformal_threshold is not None or model.sets, embeddings=model.embeddings
        )

    def embed(self, X: RecordsLike) -> np.ndarray:
        """The model's embeddings of the records."""
        return np.asarray(self.model.embed(as_records(X)), dtype=np.float32)

    def _check_fitted(self) -> None:
        if not hasattr(self, "classes_"):
            raise RuntimeError("CombinedPredictor is not fitted; call fit() first")

    def predict_proba(self, X: RecordsLike) -> np.ndarray:
        self._check_fitted()
        records = as_records(X)
        p_model = np.asarray(self.model.predict_proba(records), dtype=np.float64)
        w = self.retrieval_weight
        if not len(records):
            return p_model.astype(np.float32)
        p_ret = np.zeros_like(p_model)
        if w > 0.0:
            p_ret = np.asarray(self.retrieval.predict_proba(records), dtype=np.float64)
            p_ret = p_ret[:, self.retrieval_columns_]
        return mix(p_model, p_ret, w, self.temperature).astype(np.float32)

    def predict(self, X: RecordsLike) -> np.ndarray:
        return np.asarray(self.classes_)[self.predict_proba(X).argmax(axis=1)]

    def predict_sets(self, X: RecordsLike, *, proba: np.ndarray | None = None) -> list[list[str]]:
        self._check_fitted()
        if proba is None:
            proba = self.predict_proba(X)
        if self.conformal_threshold is None:  # the model's own threshold
            return list(self.model.predict_sets(X, proba=proba))
        method = getattr(self.model, "conformal_method", DEFAULT_CONFORMAL_METHOD)
        sets = prediction_set_indices(proba, self.conformal_threshold, method=method)
        return [[str(self.classes_[j]) for j in s] for s in sets]


# --- fitting from a classifier and a retrieval coder (``autocoder train``) ---------------------
def probabilities(clf: Any, retrieval: Any, records: list[JobRecord]) -> tuple[np.ndarray, ...]:
    """The model's and retrieval's probabilities, retrieval's columns in the model's order."""
    columns = retrieval_columns(clf.classes_, retrieval.classes_)
    p_model = np.asarray(clf.predict_proba(records), dtype=np.float64)
    p_ret = np.asarray(retrieval.predict_proba(records), dtype=np.float64)
    return p_model, p_ret[:, columns]


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
    from autocoder.classify.dev_eval import dev_gold, dev_inputs, score_proba

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
