"""Confidence that means what it says: temperature scaling and conformal prediction sets.

* ``fit_temperature`` finds the single temperature ``T`` minimising the validation negative
  log-likelihood of ``softmax(logits / T)`` (Guo et al. 2017); the ranking is unchanged. How
  well it worked is measured by ``autocoder.metrics.expected_calibration_error``.
* ``conformal_threshold`` / ``prediction_set_indices``: split conformal prediction. ``lac``
  (the default, ``DEFAULT_CONFORMAL_METHOD``) scores ``1 - p(true)`` (smallest sets); ``aps``
  (adaptive prediction sets, Romano et al. 2020) scores the probability mass down to the true
  class, so sets grow when the model is unsure. With exchangeable data the sets contain the
  true code with probability >= ``1 - alpha``.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import torch

from autocoder.mathx import softmax

ConformalMethod = Literal["aps", "lac"]
DEFAULT_CONFORMAL_METHOD: ConformalMethod = "lac"


def nll(logits: np.ndarray, y: np.ndarray, temperature: float = 1.0) -> float:
    p = softmax(logits, temperature)[np.arange(len(y)), np.asarray(y)]
    return float(-np.log(np.clip(p, 1e-12, None)).mean())


def label_mask(y: np.ndarray, num_classes: int, acceptable: np.ndarray | None) -> np.ndarray:
    """Boolean ``(n, C)`` matrix of acceptable classes (just ``y`` when ``acceptable`` is None)."""
    y = np.asarray(y, dtype=np.int64)
    mask = np.zeros((len(y), num_classes), dtype=bool)
    mask[np.arange(len(y)), y] = True
    if acceptable is not None:
        mask |= np.asarray(acceptable, dtype=bool)
    return mask


def fit_temperature(
    logits: np.ndarray,
    y: np.ndarray,
    *,
    acceptable: np.ndarray | None = None,
    bounds: tuple[float, float] = (0.05, 20.0),
) -> float:
    """The temperature minimising NLL on ``(logits, y)`` (LBFGS on log T, clipped to bounds).

    With ``acceptable`` (boolean ``(n, C)``: every right answer of a row), the likelihood of a
    row is the probability mass on its acceptable classes, so the calibrated top-1 probability
    estimates the chance that the top code is one of them.
    """
    logits_t = torch.as_tensor(np.asarray(logits, dtype=np.float32))
    if len(logits_t) == 0:
        raise ValueError("fit_temperature needs at least one validation example")
    mask_t = torch.as_tensor(label_mask(y, logits_t.shape[1], acceptable))
    log_t = torch.zeros(1, requires_grad=True)
    opt = torch.optim.LBFGS([log_t], lr=0.1, max_iter=200, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        log_p = torch.log_softmax(logits_t / log_t.exp(), dim=1)
        loss = -torch.logsumexp(log_p.masked_fill(~mask_t, -torch.inf), dim=1).mean()
        loss.backward()
        return loss

    opt.step(closure)
    t = float(log_t.exp().item())
    if not math.isfinite(t):
        t = 1.0
    return float(min(max(t, bounds[0]), bounds[1]))


def _sorted_cumsum(proba: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(-proba, axis=1, kind="stable")
    return order, np.cumsum(np.take_along_axis(proba, order, axis=1), axis=1)


def conformity_scores(
    proba: np.ndarray,
    y: np.ndarray,
    method: ConformalMethod,
    *,
    acceptable: np.ndarray | None = None,
) -> np.ndarray:
    """Non-conformity of the true class: ``1 - p`` (lac) or the mass down to it (aps).

    With ``acceptable`` (boolean ``(n, C)``), the score of the best-placed acceptable class:
    a set covers a row when it holds any right answer.
    """
    proba = np.asarray(proba, dtype=np.float64)
    mask = label_mask(y, proba.shape[1], acceptable)
    if method == "lac":
        return 1.0 - np.where(mask, proba, -np.inf).max(axis=1)
    if method == "aps":
        order, cums = _sorted_cumsum(proba)
        by_class = np.empty_like(cums)
        np.put_along_axis(by_class, order, cums, axis=1)
        return np.where(mask, by_class, np.inf).min(axis=1)
    raise ValueError(f"unknown conformal method {method!r}; use 'aps' or 'lac'")


def conformal_threshold(
    proba: np.ndarray,
    y: np.ndarray,
    *,
    alpha: float,
    method: ConformalMethod = DEFAULT_CONFORMAL_METHOD,
    acceptable: np.ndarray | None = None,
) -> float:
    """Split-conformal quantile ``q`` of the calibration scores for coverage ``1 - alpha``."""
    if not 0 < alpha < 1:
        raise ValueError(f"conformal alpha must be in (0, 1), got {alpha}")
    scores = conformity_scores(proba, y, method, acceptable=acceptable)
    n = len(scores)
    if n == 0:
        raise ValueError("conformal_threshold needs calibration examples")
    level = math.ceil((n + 1) * (1 - alpha)) / n
    if level > 1:
        return float("inf")
    return float(np.quantile(scores, level, method="higher"))


def prediction_set_indices(
    proba: np.ndarray, threshold: float, *, method: ConformalMethod = DEFAULT_CONFORMAL_METHOD
) -> list[np.ndarray]:
    """Class indices in each row's prediction set, most probable first (never empty)."""
    proba = np.asarray(proba, dtype=np.float64)
    order, cums = _sorted_cumsum(proba)
    out: list[np.ndarray] = []
    for i in range(len(proba)):
        if method == "lac":
            size = int(np.sum(proba[i, order[i]] >= 1.0 - threshold - 1e-12))
        elif method == "aps":
            # the classes whose cumulative mass (down to and including them) is within the
            # threshold: exactly the classes whose calibration score would be <= threshold
            size = int(np.searchsorted(cums[i], threshold + 1e-12, side="right"))
        else:
            raise ValueError(f"unknown conformal method {method!r}; use 'aps' or 'lac'")
        out.append(order[i, : max(1, min(size, proba.shape[1]))])
    return out


def coverage(sets: list[np.ndarray], y: np.ndarray) -> float:
    """Fraction of rows whose set contains the true class index."""
    if not sets:
        return float("nan")
    return float(np.mean([int(t) in set(s.tolist()) for s, t in zip(sets, y, strict=True)]))
