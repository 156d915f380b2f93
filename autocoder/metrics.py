"""Scoring functions: arrays in, arrays or floats out, options keyword-only.

The single home of every score the package reports (evaluation, classifier validation,
benchmarks). ``ranked`` is an ``(n, N)`` array of code strings (``""`` = no code at that rank;
a 1-D array is one column) and ``gold`` a sequence of ``n`` collections of acceptable codes.
When a row's class is needed (macro accuracy), it is the first code of an ordered collection
(tuple/list), the smallest of a set.

Calibration follows Guo et al. (2017), "On calibration of modern neural networks": ``n_bins``
equal-width bins ``((m-1)/M, m/M]`` (confidence 0 falls in the first bin) and
ECE = sum over bins of (bin count / n) * |accuracy - mean confidence|.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Sequence
from typing import Any

import numpy as np
import pandas as pd

LevelFn = Callable[[str], "str | None"]
Gold = Sequence[Collection[str]]

DEFAULT_THRESHOLDS: tuple[float, ...] = (
    0.0,
    0.1,
    0.2,
    0.3,
    0.4,
    0.5,
    0.6,
    0.7,
    0.8,
    0.85,
    0.9,
    0.95,
    0.99,
)


# --------------------------------------------------------------------------------------------
# input helpers
# --------------------------------------------------------------------------------------------
def ranked_array(ranked: Any) -> np.ndarray:
    """``ranked`` as a 2-D object array; a 1-D input becomes one column."""
    arr = np.asarray(ranked, dtype=object)
    if arr.ndim == 1:
        arr = arr.reshape(-1, 1)
    if arr.ndim != 2:
        raise ValueError(f"ranked must be a 2-D array (n, N) of codes, got shape {arr.shape}")
    return arr


def check_len(n: int, gold: Gold, name: str = "ranked") -> None:
    if len(gold) != n:
        raise ValueError(f"{name} has {n} rows but gold has {len(gold)}")


def class_of(codes: Collection[str]) -> str:
    """The class of a gold row: its first code (smallest one for an unordered set)."""
    if isinstance(codes, str):
        return codes
    if isinstance(codes, Sequence):
        return codes[0] if len(codes) else ""
    return min(codes) if codes else ""


def mean(x: Any) -> float:
    """Mean of an array as a float; NaN for an empty one."""
    arr = np.asarray(x, dtype=float)
    return float(arr.mean()) if arr.size else math.nan


def _top1(pred_codes: Any) -> np.ndarray:
    arr = np.asarray(pred_codes, dtype=object)
    return arr[:, 0] if arr.ndim == 2 else arr


def _confidence_and_correct(confidence: Any, correct: Any) -> tuple[np.ndarray, np.ndarray]:
    conf = np.asarray(confidence, dtype=float)
    ok = np.asarray(correct, dtype=bool)
    if conf.shape != ok.shape:
        raise ValueError(f"confidence has shape {conf.shape} but correct has {ok.shape}")
    return conf, ok


# --------------------------------------------------------------------------------------------
# ranking
# --------------------------------------------------------------------------------------------
def hit_ranks(ranked: Any, gold: Gold) -> np.ndarray:
    """1-based rank of the first acceptable code in each row; 0 when none is in the list."""
    arr = ranked_array(ranked)
    check_len(arr.shape[0], gold)
    out = np.zeros(arr.shape[0], dtype=int)
    for i, (row, acceptable) in enumerate(zip(arr, gold, strict=True)):
        for r, code in enumerate(row, start=1):
            if code and code in acceptable:
                out[i] = r
                break
    return out


def topk_hits(ranked: Any, gold: Gold, *, k: int) -> np.ndarray:
    """Whether an acceptable code is among the first ``k`` ranked codes, per row."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    r = hit_ranks(ranked, gold)
    return (r > 0) & (r <= k)


def top_k_accuracy(ranked: Any, gold: Gold, *, k: int = 1) -> float:
    """Share of rows with an acceptable code in the top ``k``; NaN for no rows."""
    return mean(topk_hits(ranked, gold, k=k))


def recall_at_k(ranked: Any, gold: Gold, *, k: int) -> float:
    """Mean over rows of the share of that row's acceptable codes found in the top ``k``.

    Equals :func:`top_k_accuracy` when every row has one acceptable code; rows without
    acceptable codes are not counted (NaN when none is left).
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    arr = ranked_array(ranked)
    check_len(arr.shape[0], gold)
    shares = [
        len({c for c in row[:k] if c} & set(acceptable)) / len(set(acceptable))
        for row, acceptable in zip(arr, gold, strict=True)
        if len(acceptable)
    ]
    return mean(shares)


def reciprocal_ranks(ranked: Any, gold: Gold) -> np.ndarray:
    """1/rank of the first acceptable code per row, 0 when absent from the N ranked codes."""
    r = hit_ranks(ranked, gold)
    return np.where(r > 0, 1.0 / np.maximum(r, 1), 0.0)


def mean_reciprocal_rank(ranked: Any, gold: Gold) -> float:
    """Mean of :func:`reciprocal_ranks`; NaN for no rows."""
    return mean(reciprocal_ranks(ranked, gold))


def top1_correct(pred_codes: Any, gold: Gold) -> np.ndarray:
    """Whether each top-1 code (1-D array, or column 0 of a ranked array) is acceptable."""
    top = _top1(pred_codes)
    check_len(len(top), gold, "pred_codes")
    return np.array([bool(c) and c in g for c, g in zip(top, gold, strict=True)], dtype=bool)


def macro_accuracy(pred_codes: Any, gold: Gold) -> float:
    """Mean over gold classes (first gold code) of the per-class top-1 accuracy."""
    correct = top1_correct(pred_codes, gold)
    if not correct.size:
        return math.nan
    classes = np.array([class_of(g) for g in gold], dtype=object)
    per_class = [correct[classes == c].mean() for c in pd.unique(classes)]
    return float(np.mean(per_class))


# --------------------------------------------------------------------------------------------
# hierarchy levels
# --------------------------------------------------------------------------------------------
def level_hits(pred_codes: Any, gold: Gold, *, level_fn: LevelFn) -> np.ndarray:
    """Per row: 1.0 when the top-1 code shares its ancestor at the level with a gold code,
    0.0 when not, NaN when no gold code has an ancestor at that level (row not counted)."""
    top = _top1(pred_codes)
    check_len(len(top), gold, "pred_codes")
    out = np.full(len(top), np.nan)
    for i, (code, acceptable) in enumerate(zip(top, gold, strict=True)):
        targets = {t for g in acceptable if (t := level_fn(g)) is not None}
        if not targets:
            continue
        mapped = level_fn(code) if code else None
        out[i] = 1.0 if mapped is not None and mapped in targets else 0.0
    return out


def level_accuracy(pred_codes: Any, gold: Gold, *, level_fn: LevelFn) -> float:
    """Top-1 accuracy after mapping codes to their ancestor at one hierarchy level."""
    hits = level_hits(pred_codes, gold, level_fn=level_fn)
    return mean(hits[~np.isnan(hits)])


# --------------------------------------------------------------------------------------------
# confidence: coverage/precision and calibration
# --------------------------------------------------------------------------------------------
def coverage_precision_curve(
    confidence: Any, correct: Any, *, thresholds: Sequence[float] | None = None
) -> pd.DataFrame:
    """For each threshold t: coverage = share of rows with confidence >= t, precision =
    accuracy among them (NaN when none), n = their count. NaN confidence is never covered."""
    conf, ok = _confidence_and_correct(confidence, correct)
    ts = sorted({float(t) for t in (DEFAULT_THRESHOLDS if thresholds is None else thresholds)})
    total = conf.size
    rows = []
    with np.errstate(invalid="ignore"):
        for t in ts:
            covered = conf >= t
            n = int(covered.sum())
            rows.append(
                {
                    "threshold": t,
                    "coverage": n / total if total else math.nan,
                    "precision": float(ok[covered].mean()) if n else math.nan,
                    "n": n,
                }
            )
    return pd.DataFrame(rows, columns=["threshold", "coverage", "precision", "n"])


def _check_conf(conf: np.ndarray) -> None:
    if np.isnan(conf).any():
        raise ValueError("confidence contains NaN; drop those rows first")
    if conf.size and (conf.min() < 0 or conf.max() > 1):
        raise ValueError(
            f"confidence must lie in [0, 1], got values in [{conf.min():g}, {conf.max():g}]"
        )


def confidence_bins(confidence: Any, *, n_bins: int = 15) -> np.ndarray:
    """Bin index per row for equal-width bins ``(b/n_bins, (b+1)/n_bins]``; 0 goes in bin 0.

    ``confidence * n_bins`` is rounded to 9 decimals first, so a value written as an edge
    (0.2, 0.3 ...) lands in the bin it closes despite floating-point error.
    """
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    conf = np.asarray(confidence, dtype=float)
    _check_conf(conf)
    scaled = np.ceil(np.round(conf * n_bins, 9)).astype(int) - 1
    return np.clip(scaled, 0, n_bins - 1)


def reliability_table(confidence: Any, correct: Any, *, n_bins: int = 15) -> pd.DataFrame:
    """Per equal-width confidence bin (see :func:`confidence_bins`): bounds, mean confidence,
    accuracy and count (NaN for empty bins)."""
    conf, ok = _confidence_and_correct(confidence, correct)
    idx = confidence_bins(conf, n_bins=n_bins)
    rows = []
    for b in range(n_bins):
        m = idx == b
        cnt = int(m.sum())
        rows.append(
            {
                "bin": b,
                "lower": b / n_bins,
                "upper": (b + 1) / n_bins,
                "mean_confidence": float(conf[m].mean()) if cnt else math.nan,
                "accuracy": float(ok[m].mean()) if cnt else math.nan,
                "count": cnt,
            }
        )
    return pd.DataFrame(
        rows, columns=["bin", "lower", "upper", "mean_confidence", "accuracy", "count"]
    )


def expected_calibration_error(confidence: Any, correct: Any, *, n_bins: int = 15) -> float:
    """ECE = sum over bins of (count / n) * |accuracy - mean confidence|; NaN for no rows."""
    table = reliability_table(confidence, correct, n_bins=n_bins)
    total = int(table["count"].sum())
    if not total:
        return math.nan
    filled = table[table["count"] > 0]
    gap = (filled["accuracy"] - filled["mean_confidence"]).abs()
    return float((gap * filled["count"]).sum() / total)
