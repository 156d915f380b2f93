"""Compare a prediction table with a gold table: :func:`evaluate` and :func:`run_eval`."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from autocoder.evaluate.levels import detect_scheme, hierarchy_level_fns, structural_level_fns
from autocoder.evaluate.report import write_report
from autocoder.evaluate.tables import per_class_table
from autocoder.metrics import (
    LevelFn,
    class_of,
    coverage_precision_curve,
    expected_calibration_error,
    hit_ranks,
    level_hits,
    macro_accuracy,
    mean,
    mean_reciprocal_rank,
    reliability_table,
)
from autocoder.validation import Alignment, PredTable, align, validate_gold, validate_pred

if TYPE_CHECKING:
    from autocoder.taxonomy.model import Taxonomy

STATUSES = ("coded", "review", "error", "missing")


@dataclass
class EvalResult:
    metrics: dict[str, Any]
    per_class: pd.DataFrame
    curve: pd.DataFrame
    reliability: pd.DataFrame
    levels: pd.DataFrame  # level, accuracy, n
    rows: pd.DataFrame  # one row per gold record
    n: int
    n_missing: int
    n_error: int
    status_counts: dict[str, int]
    missing_ids: list[str] = field(default_factory=list)


@dataclass
class _Aligned:
    """Predictions laid out in gold order; missing and error rows have no code, confidence 0."""

    gold: list[tuple[str, ...]]
    ranked: np.ndarray  # (n, n_ranked) codes, "" where none
    conf: np.ndarray
    status: np.ndarray  # coded | review | error | missing
    reasons: Counter[str]
    labels: dict[str, str]
    ranks: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.ranks = hit_ranks(self.ranked, self.gold)

    @property
    def answered(self) -> np.ndarray:
        return (self.status == "coded") | (self.status == "review")

    @property
    def correct(self) -> np.ndarray:
        return self.ranks == 1


def _lay_out(
    gold: list[tuple[str, ...]], pred: PredTable, al: Alignment, taxonomy: Taxonomy | None
) -> _Aligned:
    n = len(gold)
    ranked = np.full((n, pred.n_ranked), "", dtype=object)
    conf = np.zeros(n)
    status = np.empty(n, dtype=object)
    reasons: Counter[str] = Counter()
    labels = {c.code: c.title for c in taxonomy} if taxonomy is not None else {}
    for i, j in enumerate(al.index):
        status[i] = pred.status[j] if j >= 0 else "missing"
        if j < 0:
            continue
        if pred.status[j] == "error":
            reasons[pred.error_reason[j] or "(no reason)"] += 1
            continue
        ranked[i] = pred.ranked[j]
        conf[i] = pred.confidence[j]
        for code, label in zip(pred.ranked[j], pred.labels[j], strict=True):
            if code and label:
                labels.setdefault(code, label)
    return _Aligned(gold, ranked, conf, status, reasons, labels)


def _accuracy_metrics(a: _Aligned, al: Alignment, top_ks: Sequence[int]) -> dict[str, Any]:
    n, n_ranked = a.ranked.shape
    m: dict[str, Any] = {
        "n": n,
        "n_answered": int(a.answered.sum()),
        "n_missing": len(al.missing_ids),
        "n_error": int((a.status == "error").sum()),
        "n_extra_pred": len(al.extra_ids),
        "n_ranked": n_ranked,
        "n_classes": len({class_of(g) for g in a.gold}),
    }
    for k in top_ks:
        if k <= n_ranked:
            m[f"top{k}_accuracy"] = mean((a.ranks > 0) & (a.ranks <= k))
    m["top1_accuracy"] = mean(a.correct)
    m["mrr"] = mean_reciprocal_rank(a.ranked, a.gold)
    m["macro_accuracy"] = macro_accuracy(a.ranked, a.gold)
    m["answered_top1_accuracy"] = mean(a.correct[a.answered])
    m["status_counts"] = {s: int((a.status == s).sum()) for s in STATUSES}
    m["error_reasons"] = dict(a.reasons.most_common())
    for s in ("coded", "review"):
        m[f"{s}_share"] = mean(a.status == s)
        m[f"{s}_top1_accuracy"] = mean(a.correct[a.status == s])
    return m


def _level_fns(
    a: _Aligned, taxonomy: Taxonomy | None, scheme: str | None, metrics: dict[str, Any]
) -> dict[str, LevelFn]:
    """Level functions from the taxonomy, else from the (detected) code scheme."""
    if taxonomy is not None:
        fns = hierarchy_level_fns(taxonomy, scheme=scheme)
        unknown = {c for g in a.gold for c in g if c not in taxonomy}
        metrics["n_gold_codes_not_in_taxonomy"] = len(unknown)
    else:
        scheme = scheme or detect_scheme([c for g in a.gold for c in g])
        fns = structural_level_fns(scheme) if scheme else {}
    metrics["scheme"] = scheme
    return fns


def _levels_table(a: _Aligned, level_fns: dict[str, LevelFn]) -> pd.DataFrame:
    rows = []
    for name, fn in level_fns.items():
        hits = level_hits(a.ranked, a.gold, level_fn=fn)
        valid = hits[~np.isnan(hits)]
        rows.append({"level": name, "accuracy": mean(valid), "n": int(valid.size)})
    return pd.DataFrame(rows, columns=["level", "accuracy", "n"])


def _set_columns(
    a: _Aligned, pred: PredTable, al: Alignment, metrics: dict[str, Any]
) -> dict[str, np.ndarray]:
    """Conformal prediction sets: ``set_size`` and ``set_covered`` per gold row, with metrics."""
    if pred.set_size is None:
        return {}
    n, ok = len(a.gold), a.answered
    size = np.zeros(n)
    covered = np.zeros(n, dtype=bool)
    for i, j in enumerate(al.index):
        if j >= 0 and ok[i]:
            size[i] = pred.set_size[j]
            if pred.set_codes is not None:
                covered[i] = any(c in a.gold[i] for c in pred.set_codes[j])
    metrics["mean_set_size"] = mean(size[ok])
    if pred.set_codes is None:
        return {"set_size": size}
    metrics["set_coverage"] = mean(covered[ok])
    metrics["empty_set_share"] = mean(size[ok] == 0)
    return {"set_size": size, "set_covered": covered}


def _rows_table(
    a: _Aligned, ids: pd.Series, sets: dict[str, np.ndarray], level_fns: dict[str, LevelFn]
) -> pd.DataFrame:
    answered = a.answered
    rows = pd.DataFrame(
        {
            "id": ids.astype(object),
            "gold_codes": [";".join(g) for g in a.gold],
            "code_1": a.ranked[:, 0] if a.ranked.shape[1] else "",
            "label_1": [a.labels.get(c, "") for c in a.ranked[:, 0]],
            "status": a.status,
            "confidence": np.where(answered, a.conf, np.nan),
            "rank": a.ranks,
            "correct": a.correct,
        }
    )
    if "set_size" in sets:
        rows["set_size"] = np.where(answered, sets["set_size"], np.nan)
    if "set_covered" in sets:
        rows["set_covered"] = sets["set_covered"]
    for name, fn in level_fns.items():
        rows[f"correct_{name}"] = level_hits(a.ranked, a.gold, level_fn=fn)
    return rows


def evaluate(
    gold_df: pd.DataFrame,
    pred_df: pd.DataFrame,
    *,
    taxonomy: Taxonomy | None = None,
    thresholds: Sequence[float] | None = None,
    top_ks: Sequence[int] = (1, 3, 5),
    n_bins: int = 15,
    scheme: str | None = None,
) -> EvalResult:
    """Compare a prediction table with a gold table (see :mod:`autocoder.validation`).

    Every gold row counts. Gold ids missing from the predictions and rows with status
    ``error`` count as wrong (no code, confidence 0) and are reported separately; prediction
    rows whose id is not in gold are ignored and counted. Calibration (ECE, reliability) and
    conformal-set metrics use the answered rows only (status ``coded`` or ``review``).
    Hierarchy levels come from ``taxonomy`` when given, else from the code ``scheme``
    (``onet``/``isco``/``esco``, detected from the gold codes when not given).
    """
    gold_t = validate_gold(gold_df)
    pred = validate_pred(pred_df)
    al = align(gold_t["id"].tolist(), pred.ids)
    a = _lay_out(list(gold_t["codes"]), pred, al, taxonomy)
    ok = a.answered
    metrics = _accuracy_metrics(a, al, top_ks)
    level_fns = _level_fns(a, taxonomy, scheme, metrics)
    levels = _levels_table(a, level_fns)
    metrics["level_accuracy"] = dict(
        zip(levels["level"].tolist(), levels["accuracy"].tolist(), strict=True)
    )
    curve = coverage_precision_curve(a.conf, a.correct, thresholds=thresholds)
    metrics["coverage_precision"] = curve.to_dict(orient="records")
    metrics["ece"] = expected_calibration_error(a.conf[ok], a.correct[ok], n_bins=n_bins)
    metrics["mean_confidence"] = mean(a.conf[ok])
    sets = _set_columns(a, pred, al, metrics)
    conf_answered = np.where(ok, a.conf, np.nan)
    top_k = min(5, pred.n_ranked)
    return EvalResult(
        metrics=metrics,
        per_class=per_class_table(a.ranked, a.gold, conf_answered, labels=a.labels, top_k=top_k),
        curve=curve,
        reliability=reliability_table(a.conf[ok], a.correct[ok], n_bins=n_bins),
        levels=levels,
        rows=_rows_table(a, gold_t["id"], sets, level_fns),
        n=len(a.gold),
        n_missing=len(al.missing_ids),
        n_error=metrics["n_error"],
        status_counts=metrics["status_counts"],
        missing_ids=al.missing_ids,
    )


def _read(path: str | Path) -> pd.DataFrame:
    from autocoder.io import read_table

    return read_table(path, string_columns=("id", "codes", "set_codes"))


def run_eval(
    gold_path: str | Path,
    pred_path: str | Path,
    out_dir: str | Path,
    *,
    taxonomy: Taxonomy | None = None,
    thresholds: Sequence[float] | None = None,
    formula_guard: bool = True,
) -> EvalResult:
    """Read gold and predictions (CSV/JSONL/Parquet by extension), evaluate, write the report
    (``formula_guard``: CSV cells made safe for spreadsheets, ``output.csv_formula_guard``)."""
    result = evaluate(_read(gold_path), _read(pred_path), taxonomy=taxonomy, thresholds=thresholds)
    write_report(result, out_dir, formula_guard=formula_guard)
    return result
