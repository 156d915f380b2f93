"""A trained classifier's scores combined with retrieval's, for ``autocoder code --model``.

The classifier generalises from many texts per code; retrieval finds the one code text (an
alternate title, a task) that a record matches almost word for word. Their mixture ranks better
than either alone (README, "Coding quality"):

    p(code | record) = (1 - w) * p_classifier + w * p_retrieval

``w`` is the model's ``retrieval_weight`` (set when it is trained, from its recipe's
``[combine]`` section). Retrieval probabilities are a softmax over the top-k index hits, so the
mixture stays a distribution over the classifier's codes. Conformal sets use the classifier's
threshold on the mixed probabilities.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from autocoder.records import RecordsLike, as_records


class CombinedPredictor:
    """``Predictor`` (and ``SetPredictor`` when the model has sets) over a fitted classifier
    and a fitted retrieval coder with the same codes (in any order; columns follow the
    model's ``classes_``)."""

    def __init__(self, model: Any, retrieval: Any, *, retrieval_weight: float) -> None:
        self.model = model
        self.retrieval = retrieval
        self.retrieval_weight = retrieval_weight

    def fit(self, X: Any = None, y: Any = None) -> CombinedPredictor:
        """Check the parts: both fitted, same codes, a weight in [0, 1]."""
        if not 0.0 <= self.retrieval_weight <= 1.0:
            raise ValueError(f"retrieval_weight must be in [0, 1], got {self.retrieval_weight}")
        model_codes = [str(c) for c in self.model.classes_]
        ret_pos = {str(c): j for j, c in enumerate(self.retrieval.classes_)}
        differ = sorted(set(model_codes) ^ set(ret_pos))
        if differ:
            raise ValueError(
                f"the model's and the index's codes differ ({len(differ)}, e.g. {differ[:3]}): "
                "rebuild the index for the taxonomy the model was trained on"
            )
        self._retrieval_columns = np.asarray([ret_pos[c] for c in model_codes])
        self.classes_ = np.asarray(self.model.classes_)
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "classes_"):
            raise RuntimeError("CombinedPredictor is not fitted; call fit() first")

    def predict_proba(self, X: RecordsLike) -> np.ndarray:
        self._check_fitted()
        records = as_records(X)
        p_model = np.asarray(self.model.predict_proba(records), dtype=np.float64)
        w = self.retrieval_weight
        if w == 0.0 or not len(records):
            return p_model.astype(np.float32)
        p_ret = np.asarray(self.retrieval.predict_proba(records), dtype=np.float64)
        p_ret = p_ret[:, self._retrieval_columns]
        return ((1.0 - w) * p_model + w * p_ret).astype(np.float32)

    def predict(self, X: RecordsLike) -> np.ndarray:
        return np.asarray(self.classes_)[self.predict_proba(X).argmax(axis=1)]

    def predict_sets(self, X: RecordsLike, *, proba: np.ndarray | None = None) -> list[list[str]]:
        self._check_fitted()
        if proba is None:
            proba = self.predict_proba(X)
        return list(self.model.predict_sets(X, proba=proba))
