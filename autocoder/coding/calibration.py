"""Confidence that holds on unfamiliar input, a target precision, and partial codes.

The mixture's top probability is calibrated on titles like the training data and overconfident
on real posting titles. A calibrator (gradient-boosted trees when there are enough rows, else a
logistic regression) over several signals of each record
(:data:`FEATURES`: the top probability, the margin to the runner-up, whether the classifier and
retrieval agree, how close the record is to the nearest text the index holds, how many
segments the title had, ...) is fitted on held-out real titles and gives ``confidence``.

The same is done at every level of the hierarchy (O*NET-SOC 8-digit -> 6-digit SOC -> broad ->
minor -> major; ESCO -> ISCO 4 -> 3 -> 2 -> 1): a level's probability of a group is the sum of
its descendants' probabilities, and that level gets its own fitted calibrator. For a target
precision, :func:`fit_level_thresholds` picks per level, finest first, the lowest confidence
threshold whose rows reach the precision on the calibration rows not already assigned at a
finer level (on their out-of-fold confidence, :func:`out_of_fold`, not the in-sample one);
:func:`assign` then gives each row the finest level that clears its threshold.

Everything here takes and returns arrays (the coder wires it in); fitted parameters are plain
JSON (no pickles, no paths).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

#: The calibrator's inputs, in column order (see :func:`features`).
FEATURES = (
    "p1",
    "margin",
    "log_odds_p1",
    "entropy",
    "model_p1",
    "retrieval_p1",
    "agree",
    "max_similarity",
    "n_segments",
    "later_segment",
    "n_words",
)

_EPS = 1e-6


def _top2(proba: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row the argmax, the top and the second probability."""
    proba = np.asarray(proba, dtype=np.float64)
    if proba.shape[1] == 1:
        return np.zeros(len(proba), dtype=np.intp), proba[:, 0], np.zeros(len(proba))
    part = np.argpartition(-proba, 1, axis=1)[:, :2]
    vals = np.take_along_axis(proba, part, axis=1)
    first = vals[:, 0] >= vals[:, 1]
    top = np.where(first, part[:, 0], part[:, 1])
    return top, vals.max(axis=1), vals.min(axis=1)


def features(
    proba: np.ndarray,
    *,
    model_proba: np.ndarray | None = None,
    retrieval_proba: np.ndarray | None = None,
    max_similarity: np.ndarray | None = None,
    n_segments: np.ndarray | None = None,
    later_segment: np.ndarray | None = None,
    n_words: np.ndarray | None = None,
) -> np.ndarray:
    """The :data:`FEATURES` matrix ``(n, len(FEATURES))`` of rows scored ``proba`` (the
    distribution the codes are ranked by, at any level). Signals not given are 0 (a
    calibrator fitted without them gives them no weight)."""
    proba = np.asarray(proba, dtype=np.float64)
    n = len(proba)
    top, p1, p2 = _top2(proba) if n else (np.zeros(0, np.intp), np.zeros(0), np.zeros(0))
    clipped = np.clip(proba, 1e-12, 1.0)
    entropy = -(clipped * np.log(clipped)).sum(axis=1)
    zeros = np.zeros(n)

    def at_top(p: np.ndarray | None) -> np.ndarray:
        return zeros if p is None else np.asarray(p, np.float64)[np.arange(n), top]

    agree = zeros
    if model_proba is not None and retrieval_proba is not None:
        agree = (np.argmax(model_proba, axis=1) == np.argmax(retrieval_proba, axis=1)) * 1.0

    def col(v: np.ndarray | None) -> np.ndarray:
        return zeros if v is None else np.asarray(v, dtype=np.float64).reshape(n)

    p1c = np.clip(p1, _EPS, 1 - _EPS)
    return np.column_stack(
        [
            p1,
            p1 - p2,
            np.log(p1c / (1 - p1c)),
            entropy,
            at_top(model_proba),
            at_top(retrieval_proba),
            agree,
            col(max_similarity),
            col(n_segments),
            col(later_segment),
            np.log1p(col(n_words)),
        ]
    )


#: Rows (and rows of the rarer outcome) a level needs before its calibrator is boosted trees;
#: below that it is a logistic regression (few rows cannot support the trees).
BOOSTED_MIN_ROWS, BOOSTED_MIN_MINORITY = 500, 50

#: The boosted calibrator's settings (chosen on the fit halves of the real dev sets,
#: benchmarks/trust.py): small trees, a slow learning rate, leaves of at least 40 rows.
BOOSTED = {"n_estimators": 150, "learning_rate": 0.05, "max_leaf_nodes": 15, "min_samples_leaf": 40}


def fit_calibrator(
    x: np.ndarray, correct: np.ndarray, *, c: float = 1.0, kind: str = "auto"
) -> dict[str, Any]:
    """A calibrator of ``correct`` (0/1 per row) on the features ``x``, as JSON-ready
    parameters for :func:`calibrate`: gradient-boosted trees (``kind="boosted"``; ``"auto"``
    when there are enough rows, :data:`BOOSTED_MIN_ROWS`), else a logistic regression on the
    standardised features; a constant when every row is right or every row wrong (as at a
    hierarchy level no row misses)."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(correct).astype(int)
    if len(x) != len(y) or not len(y):
        raise ValueError(f"need as many labels as feature rows (got {len(x)} and {len(y)})")
    if kind not in ("auto", "boosted", "logistic"):
        raise ValueError(f"unknown calibrator kind {kind!r}; use auto, boosted or logistic")
    if len(set(y.tolist())) < 2:  # nothing to separate: the smoothed accuracy for every row
        return {
            "kind": "constant",
            "features": list(FEATURES),
            "value": (float(y.sum()) + 1.0) / (len(y) + 2.0),
            "n": int(len(y)),
            "accuracy": float(y.mean()),
        }
    minority = int(min(y.sum(), len(y) - y.sum()))
    if kind == "boosted" or (
        kind == "auto" and len(y) >= BOOSTED_MIN_ROWS and minority >= BOOSTED_MIN_MINORITY
    ):
        return _fit_boosted(x, y)
    from sklearn.linear_model import LogisticRegression

    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale[scale == 0] = 1.0
    lr = LogisticRegression(C=c, max_iter=1000).fit((x - mean) / scale, y)
    return {
        "kind": "logistic",
        "features": list(FEATURES),
        "mean": mean.tolist(),
        "scale": scale.tolist(),
        "coef": lr.coef_[0].tolist(),
        "intercept": float(lr.intercept_[0]),
        "n": int(len(y)),
        "accuracy": float(y.mean()),
    }


#: Folds of the cross-fit whose out-of-fold confidence the thresholds are chosen on.
THRESHOLD_FOLDS = 5


def out_of_fold(
    x: np.ndarray,
    correct: np.ndarray,
    *,
    folds: int = THRESHOLD_FOLDS,
    seed: int = 0,
    kind: str = "auto",
) -> np.ndarray:
    """Each row's confidence from a calibrator (:func:`fit_calibrator` of ``kind``: pass the
    kind of the calibrator that will be used, so the folds score as it does; ``"constant"``
    fits as ``"auto"``) fitted on the other folds. Rows with identical features (the same title with another employer) share a
    fold, so no copy of a row is scored by a calibrator that learnt it. A calibrator scores
    the rows it was fitted on too well (boosted trees most), so a threshold chosen on them
    misses its target on new rows: on held-out real O*NET titles a 0.95 target chosen
    in-sample was realised at 0.88. Rows that no other fold can score (every row has the
    same features, so one fold holds them all) get confidence 0: nothing held out of them
    says how often they are right, so no threshold is chosen on them."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(correct).astype(int)
    if folds < 2:
        raise ValueError(f"need at least 2 folds, got {folds}")
    if len(y) < 2:
        raise ValueError(f"need at least 2 rows for out-of-fold confidence, got {len(y)}")
    if len(x) != len(y):
        raise ValueError(f"need as many labels as feature rows (got {len(x)} and {len(y)})")
    _, group = np.unique(x, axis=0, return_inverse=True)
    group = np.asarray(group).reshape(-1)
    order = np.random.default_rng(seed).permutation(int(group.max()) + 1)
    fold = order[group] % folds
    fit_kind = "auto" if kind == "constant" else kind
    out = np.zeros(len(y), dtype=np.float64)
    for f in range(folds):
        held = fold == f
        if held.any() and (~held).any():
            out[held] = calibrate(fit_calibrator(x[~held], y[~held], kind=fit_kind), x[held])
    return out


def _fit_boosted(x: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    """scikit-learn's gradient boosting (log loss), its trees written out as plain arrays
    (public ``tree_`` attributes); checked against scikit-learn's own probabilities."""
    from sklearn.ensemble import GradientBoostingClassifier

    gb = GradientBoostingClassifier(random_state=0, **BOOSTED).fit(x, y)  # type: ignore[arg-type]
    prior = float(np.clip(y.mean(), _EPS, 1 - _EPS))
    trees = []
    for est in gb.estimators_[:, 0]:
        t = est.tree_
        trees.append(
            {
                "left": t.children_left.tolist(),
                "right": t.children_right.tolist(),
                "feature": t.feature.tolist(),
                "threshold": t.threshold.tolist(),
                "value": t.value[:, 0, 0].tolist(),
            }
        )
    params = {
        "kind": "boosted",
        "features": list(FEATURES),
        "init": float(np.log(prior / (1 - prior))),
        "learning_rate": float(BOOSTED["learning_rate"]),
        "trees": trees,
        "settings": dict(BOOSTED),
        "n": int(len(y)),
        "accuracy": float(y.mean()),
    }
    mine, theirs = calibrate(params, x), gb.predict_proba(x)[:, 1]
    if not np.allclose(mine, theirs, atol=1e-6):
        raise RuntimeError("boosted calibrator: written-out trees disagree with scikit-learn")
    return params


def _boosted_logits(params: Mapping[str, Any], x: np.ndarray) -> np.ndarray:
    """The boosted calibrator's log-odds: the prior's plus each tree's leaf value (features
    compared as float32, as scikit-learn's trees compare them)."""
    x32 = np.asarray(x, dtype=np.float32).astype(np.float64)
    rows = np.arange(len(x32))
    raw = np.full(len(x32), float(params["init"]))
    rate = float(params["learning_rate"])
    for tree in params["trees"]:
        left, right = np.asarray(tree["left"]), np.asarray(tree["right"])
        feature, threshold = np.asarray(tree["feature"]), np.asarray(tree["threshold"])
        node = np.zeros(len(x32), dtype=np.intp)
        inner = left[node] != -1
        while inner.any():
            n = node[inner]
            go_left = x32[rows[inner], feature[n]] <= threshold[n]
            node[inner] = np.where(go_left, left[n], right[n])
            inner = left[node] != -1
        raw += rate * np.asarray(tree["value"])[node]
    return raw


def calibrate(params: Mapping[str, Any], x: np.ndarray) -> np.ndarray:
    """Calibrated confidence per row from :func:`fit_calibrator`'s parameters."""
    if list(params["features"]) != list(FEATURES):
        raise ValueError("calibrator was fitted on other features; refit it")
    x = np.asarray(x, dtype=np.float64)
    if params["kind"] == "constant":
        return np.full(len(x), float(params["value"]))
    if params["kind"] == "boosted":
        return 1.0 / (1.0 + np.exp(-_boosted_logits(params, x)))
    if params["kind"] != "logistic":
        raise ValueError(f"unknown calibrator kind {params['kind']!r}; refit the calibration")
    z = (x - np.asarray(params["mean"])) / np.asarray(params["scale"])
    logits = z @ np.asarray(params["coef"]) + float(params["intercept"])
    return 1.0 / (1.0 + np.exp(-logits))


#: Standard errors by which the precision of a threshold's rows must clear the target (the
#: Wilson lower bound at this many sigmas): the lowest threshold whose rows' precision merely
#: touches the target is the one a lucky run of right rows reached, and misses on new rows.
THRESHOLD_MARGIN_SD = 1.0


def threshold_for_precision(
    confidence: np.ndarray,
    correct: np.ndarray,
    *,
    target: float,
    min_rows: int = 20,
    margin_sd: float = 0.0,
) -> tuple[float | None, float, int]:
    """The lowest threshold whose rows (confidence >= threshold) reach ``target`` precision;
    with ``margin_sd`` > 0, whose precision's Wilson lower bound at that many standard errors
    reaches it.

    Returns ``(threshold, precision, rows)``; ``(None, nan, 0)`` when fewer than ``min_rows``
    rows can reach it (the level is then never assigned). A threshold is above 0."""
    if not 0 < target <= 1:
        raise ValueError(f"target precision must be in (0, 1], got {target}")
    if margin_sd < 0:
        raise ValueError(f"margin_sd must be >= 0, got {margin_sd}")
    conf = np.asarray(confidence, dtype=np.float64)
    right = np.asarray(correct, dtype=np.float64)
    order = np.argsort(-conf, kind="stable")
    conf, right = conf[order], right[order]
    n = np.arange(1, len(right) + 1, dtype=np.float64)
    precision = np.cumsum(right) / n
    bound = precision
    if margin_sd > 0:
        z2 = margin_sd**2
        spread = margin_sd * np.sqrt(precision * (1 - precision) / n + z2 / (4 * n * n))
        bound = (precision + z2 / (2 * n) - spread) / (1 + z2 / n)
    ends = np.r_[np.nonzero(conf[1:] != conf[:-1])[0], len(conf) - 1] if len(conf) else []
    # a threshold of 0 would code every row, whatever its confidence: never chosen
    ok = [e for e in ends if bound[e] >= target - 1e-12 and e + 1 >= min_rows and conf[e] > 0]
    if not ok:
        return None, float("nan"), 0
    end = int(max(ok))
    return float(conf[end]), float(precision[end]), end + 1


def group_matrix(classes: Sequence[str], ancestor: Mapping[str, str]) -> tuple[np.ndarray, Any]:
    """The groups of one level and the ``(C, G)`` 0/1 matrix summing classes into them
    (a class without an ancestor at the level belongs to no group)."""
    from scipy.sparse import csr_matrix

    groups = np.asarray(sorted({ancestor[c] for c in classes if c in ancestor}), dtype=object)
    pos = {g: j for j, g in enumerate(groups)}
    rows = [i for i, c in enumerate(classes) if c in ancestor]
    cols = [pos[ancestor[classes[i]]] for i in rows]
    matrix = csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(classes), len(groups)))
    return groups, matrix


def level_proba(proba: np.ndarray, matrix: Any) -> np.ndarray:
    """A level's distribution: each group's probability is the sum of its descendants'."""
    return np.asarray(matrix.T.dot(np.asarray(proba, dtype=np.float64).T).T)


def fit_level_thresholds(
    confidence: Sequence[np.ndarray],
    correct: Sequence[np.ndarray],
    *,
    target: float,
    margin_sd: float = 0.0,
) -> list[dict[str, Any]]:
    """Per level (finest first) the threshold reaching ``target`` (``margin_sd``: see
    :func:`threshold_for_precision`) on the rows no finer level took, with the precision and
    share it was fitted to."""
    n = len(confidence[0]) if confidence else 0
    free = np.ones(n, dtype=bool)
    out: list[dict[str, Any]] = []
    for conf, right in zip(confidence, correct, strict=True):
        conf = np.asarray(conf, dtype=np.float64)
        thr, prec, rows = threshold_for_precision(
            conf[free], np.asarray(right)[free], target=target, margin_sd=margin_sd
        )
        out.append({"threshold": thr, "precision": prec, "share": rows / n if n else 0.0})
        if thr is not None:
            free &= ~(conf >= thr)
    return out


def assign(confidence: Sequence[np.ndarray], thresholds: Sequence[float | None]) -> np.ndarray:
    """Per row the finest level (0 = detailed) whose confidence clears its threshold, or -1."""
    n = len(confidence[0]) if confidence else 0
    level = np.full(n, -1, dtype=np.intp)
    for i in range(len(confidence) - 1, -1, -1):  # coarse first: finer levels overwrite
        thr = thresholds[i]
        if thr is not None:
            level[np.asarray(confidence[i]) >= thr] = i
    return level
