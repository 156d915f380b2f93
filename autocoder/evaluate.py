"""Score a coder's output against gold codes.

The metric functions take arrays and return arrays or floats; options are keyword-only.
``ranked`` is an ``(n, N)`` array of code strings (``""`` = no code at that rank) and ``gold`` a
sequence of ``n`` collections of acceptable codes; when a row's class is needed (macro accuracy,
per-class table), it is the first gold code of an ordered collection (tuple/list).

:func:`evaluate` puts it all together for a gold table and a prediction table;
:func:`write_report` writes ``metrics.json``, ``report.md``, ``per_class.csv``, ``rows.csv`` and
PNG plots; :func:`run_eval` reads both tables from files and does both.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from autocoder.validation import align, validate_gold, validate_pred

if TYPE_CHECKING:
    from autocoder.taxonomy.model import Taxonomy

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
ONET_RE = re.compile(r"^\d{2}-\d{4}(\.\d{2})?$")
ISCO_RE = re.compile(r"^\d{1,4}(\.\d+)*$")
# SOC 2018 minor groups that do not end in "000"
_SOC_MINOR_EXCEPTIONS = ("15-12", "31-11", "51-51")


# --------------------------------------------------------------------------------------------
# input helpers
# --------------------------------------------------------------------------------------------
def _ranked_array(ranked: Any) -> np.ndarray:
    arr = np.asarray(ranked, dtype=object)
    if arr.ndim == 1:
        arr = arr.reshape(-1, 1)
    if arr.ndim != 2:
        raise ValueError(f"ranked must be a 2-D array (n, N) of codes, got shape {arr.shape}")
    return arr


def _check_len(n: int, gold: Gold, name: str = "ranked") -> None:
    if len(gold) != n:
        raise ValueError(f"{name} has {n} rows but gold has {len(gold)}")


def _top1(pred_codes: Any) -> np.ndarray:
    arr = np.asarray(pred_codes, dtype=object)
    return arr[:, 0] if arr.ndim == 2 else arr


def _class_of(codes: Collection[str]) -> str:
    """The class of a gold row: its first code (smallest one for an unordered set)."""
    if isinstance(codes, str):
        return codes
    if isinstance(codes, Sequence):
        return codes[0] if len(codes) else ""
    return min(codes) if codes else ""


def _float(x: float) -> float:
    return float(x) if x is not None else math.nan


# --------------------------------------------------------------------------------------------
# ranking metrics
# --------------------------------------------------------------------------------------------
def hit_ranks(ranked: Any, gold: Gold) -> np.ndarray:
    """1-based rank of the first acceptable code in each row; 0 when none is in the list."""
    arr = _ranked_array(ranked)
    _check_len(arr.shape[0], gold)
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
    hits = topk_hits(ranked, gold, k=k)
    return float(hits.mean()) if hits.size else math.nan


def reciprocal_ranks(ranked: Any, gold: Gold) -> np.ndarray:
    """1/rank of the first acceptable code per row, 0 when absent from the N ranked codes."""
    r = hit_ranks(ranked, gold)
    return np.where(r > 0, 1.0 / np.maximum(r, 1), 0.0)


def mean_reciprocal_rank(ranked: Any, gold: Gold) -> float:
    rr = reciprocal_ranks(ranked, gold)
    return float(rr.mean()) if rr.size else math.nan


def top1_correct(pred_codes: Any, gold: Gold) -> np.ndarray:
    """Whether each top-1 code (1-D array, or column 0 of a ranked array) is acceptable."""
    top = _top1(pred_codes)
    _check_len(len(top), gold, "pred_codes")
    return np.array([bool(c) and c in g for c, g in zip(top, gold, strict=True)], dtype=bool)


def macro_accuracy(pred_codes: Any, gold: Gold) -> float:
    """Mean over gold classes (first gold code) of the per-class top-1 accuracy."""
    correct = top1_correct(pred_codes, gold)
    if not correct.size:
        return math.nan
    classes = np.array([_class_of(g) for g in gold], dtype=object)
    per_class = [correct[classes == c].mean() for c in pd.unique(classes)]
    return float(np.mean(per_class))


# --------------------------------------------------------------------------------------------
# hierarchy levels
# --------------------------------------------------------------------------------------------
def _onet_major(code: str) -> str | None:
    return code[:2] + "-0000" if ONET_RE.match(code) else None


def _onet_minor(code: str) -> str | None:
    if not ONET_RE.match(code):
        return None
    if code[:5] in _SOC_MINOR_EXCEPTIONS:
        return code[:5] + "00"
    return code[:4] + "000"


def _onet_broad(code: str) -> str | None:
    return code[:6] + "0" if ONET_RE.match(code) else None


def _onet_detailed(code: str) -> str | None:
    return code[:7] if ONET_RE.match(code) else None


def _onet_code(code: str) -> str | None:
    return code if ONET_RE.match(code) else None


def _isco_prefix(n_digits: int) -> LevelFn:
    def level_fn(code: str) -> str | None:
        if not ISCO_RE.match(code):
            return None
        digits = code.split(".")[0]
        return digits[:n_digits] if len(digits) >= n_digits else None

    level_fn.__name__ = f"isco_{n_digits}_digit"
    return level_fn


def _isco_code(code: str) -> str | None:
    return code if ISCO_RE.match(code) else None


def structural_level_fns(scheme: str) -> dict[str, LevelFn]:
    """Level functions read off the code itself, top level first, no taxonomy needed.

    ``"onet"`` (O*NET-SOC ``11-1011.03``): major ``11-0000``, minor ``11-1000`` (SOC 2018
    exceptions ``15-1200``, ``31-1100``, ``51-5100``), broad ``11-1010``, detailed ``11-1011``,
    onet (the full code). ``"isco"``: the 1- to 4-digit prefixes major, sub_major, minor, unit.
    ``"esco"``: the ISCO levels plus occupation (the full ESCO code such as ``2654.1.7``).
    A code that does not fit the scheme maps to None (never counted correct).
    """
    scheme = scheme.lower()
    if scheme in ("onet", "o*net", "soc", "onet-soc"):
        return {
            "major": _onet_major,
            "minor": _onet_minor,
            "broad": _onet_broad,
            "detailed": _onet_detailed,
            "onet": _onet_code,
        }
    if scheme in ("isco", "isco-08", "esco"):
        fns: dict[str, LevelFn] = {
            "major": _isco_prefix(1),
            "sub_major": _isco_prefix(2),
            "minor": _isco_prefix(3),
            "unit": _isco_prefix(4),
        }
        if scheme == "esco":
            fns["occupation"] = _isco_code
        return fns
    raise ValueError(f"unknown code scheme {scheme!r}; use 'onet', 'isco' or 'esco'")


def detect_scheme(codes: Collection[str]) -> str | None:
    """``"onet"`` or ``"isco"`` when every (non-empty) code fits that pattern, else None."""
    codes = [c for c in codes if c]
    if not codes:
        return None
    if all(ONET_RE.match(c) for c in codes):
        return "onet"
    if all(ISCO_RE.match(c) for c in codes):
        return "isco" if all("." not in c for c in codes) else "esco"
    return None


def _norm_level(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def hierarchy_level_fns(taxonomy: Taxonomy, *, scheme: str | None = None) -> dict[str, LevelFn]:
    """One function per taxonomy level (top first): ``code -> ancestor at that level``.

    Codes in the taxonomy use ``taxonomy.parent(code, level)``. Others fall back to
    :func:`structural_level_fns` for ``scheme`` (detected from the taxonomy's leaf codes when not
    given), matched to the taxonomy's levels by name, else by position from the top.
    """
    if scheme is None:
        leaf_codes = taxonomy.leaf_codes()
        scheme = detect_scheme(leaf_codes[:500])
        if scheme is None:
            name = taxonomy.name.lower()
            scheme = "onet" if "onet" in name or "o*net" in name else None
    structural = structural_level_fns(scheme) if scheme else {}
    by_name = {_norm_level(k): v for k, v in structural.items()}
    positional = list(structural.values())

    fns: dict[str, LevelFn] = {}
    for i, level in enumerate(taxonomy.levels):
        fallback = by_name.get(_norm_level(level))
        if fallback is None and not any(_norm_level(lv) in by_name for lv in taxonomy.levels):
            fallback = positional[i] if i < len(positional) else None
        fns[level] = _taxonomy_level_fn(taxonomy, level, fallback)
    return fns


def _taxonomy_level_fn(taxonomy: Taxonomy, level: str, fallback: LevelFn | None) -> LevelFn:
    def level_fn(code: str) -> str | None:
        if not code:
            return None
        if code in taxonomy:
            return taxonomy.parent(code, level)
        return fallback(code) if fallback is not None else None

    level_fn.__name__ = f"level_{level}"
    return level_fn


def level_hits(pred_codes: Any, gold: Gold, *, level_fn: LevelFn) -> np.ndarray:
    """Per row: 1.0 when the top-1 code shares its ancestor at the level with a gold code,
    0.0 when not, NaN when no gold code has an ancestor at that level (row not counted)."""
    top = _top1(pred_codes)
    _check_len(len(top), gold, "pred_codes")
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
    hits = hits[~np.isnan(hits)]
    return float(hits.mean()) if hits.size else math.nan


# --------------------------------------------------------------------------------------------
# per class
# --------------------------------------------------------------------------------------------
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
    arr = _ranked_array(ranked)
    conf = np.asarray(confidence, dtype=float)
    _check_len(arr.shape[0], gold)
    _check_len(len(conf), gold, "confidence")
    ranks = hit_ranks(arr, gold)
    classes = np.array([_class_of(g) for g in gold], dtype=object)
    labels = labels or {}
    if top_k < 1:
        raise ValueError(f"top_k must be >= 1, got {top_k}")
    topk_col = f"top{top_k}_accuracy"
    rows = []
    for c in pd.unique(classes):
        mask = classes == c
        r = ranks[mask]
        wrong = [p for p, rk in zip(arr[mask, 0], r, strict=True) if rk != 1 and p]
        confused = Counter(wrong).most_common(1)
        cm = conf[mask]
        cm = cm[~np.isnan(cm)]
        rows.append(
            {
                "code": c,
                "label": labels.get(c, ""),
                "support": int(mask.sum()),
                "top1_accuracy": float((r == 1).mean()),
                topk_col: float(((r > 0) & (r <= top_k)).mean()),
                "mean_confidence": float(cm.mean()) if cm.size else math.nan,
                "most_confused_with": confused[0][0] if confused else "",
                "n_confused": confused[0][1] if confused else 0,
            }
        )
    cols = [
        "code",
        "label",
        "support",
        "top1_accuracy",
        topk_col,
        "mean_confidence",
        "most_confused_with",
        "n_confused",
    ]
    cols = list(dict.fromkeys(cols))  # top_k == 1: a single accuracy column
    df = pd.DataFrame(rows, columns=cols)
    return df.sort_values(["support", "code"], ascending=[False, True], ignore_index=True)


# --------------------------------------------------------------------------------------------
# confidence: coverage/precision and calibration
# --------------------------------------------------------------------------------------------
def coverage_precision_curve(
    confidence: Any, correct: Any, *, thresholds: Sequence[float] | None = None
) -> pd.DataFrame:
    """For each threshold t: coverage = share of rows with confidence >= t, precision =
    accuracy among them (NaN when none), n = their count. NaN confidence is never covered."""
    conf = np.asarray(confidence, dtype=float)
    ok = np.asarray(correct, dtype=bool)
    if conf.shape != ok.shape:
        raise ValueError(f"confidence has shape {conf.shape} but correct has {ok.shape}")
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


def reliability_table(confidence: Any, correct: Any, *, n_bins: int = 15) -> pd.DataFrame:
    """Equal-width confidence bins over [0, 1] (the last one includes 1.0): bounds, mean
    confidence, accuracy and count per bin (NaN for empty bins)."""
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    conf = np.asarray(confidence, dtype=float)
    ok = np.asarray(correct, dtype=bool)
    if conf.shape != ok.shape:
        raise ValueError(f"confidence has shape {conf.shape} but correct has {ok.shape}")
    _check_conf(conf)
    idx = np.minimum((conf * n_bins).astype(int), n_bins - 1)
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
    total = table["count"].sum()
    if not total:
        return math.nan
    filled = table[table["count"] > 0]
    gap = (filled["accuracy"] - filled["mean_confidence"]).abs()
    return float((gap * filled["count"]).sum() / total)


# --------------------------------------------------------------------------------------------
# the whole evaluation
# --------------------------------------------------------------------------------------------
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
    gold: list[tuple[str, ...]] = list(gold_t["codes"])
    n = len(gold)
    n_ranked = pred.n_ranked

    ranked = np.full((n, n_ranked), "", dtype=object)
    conf = np.zeros(n)
    status = np.empty(n, dtype=object)
    reasons: Counter[str] = Counter()
    labels: dict[str, str] = {}
    if taxonomy is not None:
        labels.update({c.code: c.title for c in taxonomy})
    for i, j in enumerate(al.index):
        if j < 0:
            status[i] = "missing"
            continue
        status[i] = pred.status[j]
        if pred.status[j] == "error":
            reasons[pred.error_reason[j] or "(no reason)"] += 1
            continue
        ranked[i] = pred.ranked[j]
        conf[i] = pred.confidence[j]
        for code, label in zip(pred.ranked[j], pred.labels[j], strict=True):
            if code and label:
                labels.setdefault(code, label)
    answered = (status == "coded") | (status == "review")

    ranks = hit_ranks(ranked, gold)
    correct = ranks == 1
    metrics: dict[str, Any] = {
        "n": n,
        "n_answered": int(answered.sum()),
        "n_missing": len(al.missing_ids),
        "n_error": int((status == "error").sum()),
        "n_extra_pred": len(al.extra_ids),
        "n_ranked": n_ranked,
        "n_classes": int(len({_class_of(g) for g in gold})),
    }
    for k in top_ks:
        if k <= n_ranked:
            metrics[f"top{k}_accuracy"] = _mean((ranks > 0) & (ranks <= k))
    metrics["top1_accuracy"] = _mean(correct)
    metrics["mrr"] = mean_reciprocal_rank(ranked, gold) if n else math.nan
    metrics["macro_accuracy"] = macro_accuracy(ranked, gold) if n else math.nan
    metrics["answered_top1_accuracy"] = _mean(correct[answered])

    status_counts = {s: int((status == s).sum()) for s in ("coded", "review", "error", "missing")}
    metrics["status_counts"] = status_counts
    metrics["error_reasons"] = dict(reasons.most_common())
    for s in ("coded", "review"):
        m = status == s
        metrics[f"{s}_share"] = _mean(m)
        metrics[f"{s}_top1_accuracy"] = _mean(correct[m])

    # hierarchy levels
    if taxonomy is not None:
        level_fns = hierarchy_level_fns(taxonomy, scheme=scheme)
        unknown = {c for g in gold for c in g if c not in taxonomy}
        metrics["n_gold_codes_not_in_taxonomy"] = len(unknown)
    else:
        scheme = scheme or detect_scheme([c for g in gold for c in g])
        level_fns = structural_level_fns(scheme) if scheme else {}
    metrics["scheme"] = scheme
    level_rows = []
    for name, fn in level_fns.items():
        hits = level_hits(ranked, gold, level_fn=fn)
        valid = hits[~np.isnan(hits)]
        level_rows.append({"level": name, "accuracy": _mean(valid), "n": int(valid.size)})
    levels = pd.DataFrame(level_rows, columns=["level", "accuracy", "n"])
    metrics["level_accuracy"] = {r["level"]: r["accuracy"] for r in level_rows}

    # confidence
    curve = coverage_precision_curve(conf, correct, thresholds=thresholds)
    metrics["coverage_precision"] = curve.to_dict(orient="records")
    reliability = reliability_table(conf[answered], correct[answered], n_bins=n_bins)
    metrics["ece"] = expected_calibration_error(conf[answered], correct[answered], n_bins=n_bins)
    metrics["mean_confidence"] = _mean(conf[answered])

    # conformal prediction sets
    covered_col: np.ndarray | None = None
    size_col: np.ndarray | None = None
    if pred.set_size is not None:
        size_col = np.zeros(n)
        covered_col = np.zeros(n, dtype=bool)
        for i, j in enumerate(al.index):
            if j >= 0 and answered[i]:
                size_col[i] = pred.set_size[j]
                if pred.set_codes is not None:
                    covered_col[i] = any(c in gold[i] for c in pred.set_codes[j])
        metrics["mean_set_size"] = _mean(size_col[answered])
        if pred.set_codes is not None:
            metrics["set_coverage"] = _mean(covered_col[answered])
            metrics["empty_set_share"] = _mean(size_col[answered] == 0)

    per_class = per_class_table(
        ranked, gold, np.where(answered, conf, np.nan), labels=labels, top_k=min(5, n_ranked)
    )

    rows = pd.DataFrame(
        {
            "id": gold_t["id"].astype(object),
            "gold_codes": [";".join(g) for g in gold],
            "code_1": ranked[:, 0] if n_ranked else "",
            "label_1": [labels.get(c, "") for c in ranked[:, 0]],
            "status": status,
            "confidence": np.where(answered, conf, np.nan),
            "rank": ranks,
            "correct": correct,
        }
    )
    if size_col is not None:
        rows["set_size"] = np.where(answered, size_col, np.nan)
        if pred.set_codes is not None and covered_col is not None:
            rows["set_covered"] = covered_col
    for name, fn in level_fns.items():
        rows[f"correct_{name}"] = level_hits(ranked, gold, level_fn=fn)

    return EvalResult(
        metrics=metrics,
        per_class=per_class,
        curve=curve,
        reliability=reliability,
        levels=levels,
        rows=rows,
        n=n,
        n_missing=len(al.missing_ids),
        n_error=metrics["n_error"],
        status_counts=status_counts,
        missing_ids=al.missing_ids,
    )


def _mean(x: Any) -> float:
    arr = np.asarray(x, dtype=float)
    return float(arr.mean()) if arr.size else math.nan


# --------------------------------------------------------------------------------------------
# report
# --------------------------------------------------------------------------------------------
def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def _fmt(x: Any, pct: bool = True) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    if isinstance(x, float):
        return f"{100 * x:.1f} %" if pct else f"{x:.3f}"
    return str(x)


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    def esc(s: str) -> str:
        return s.replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(esc(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def _report_md(result: EvalResult, plots: dict[str, Path], *, n_worst: int) -> str:
    m = result.metrics
    out = ["# Evaluation report", ""]
    head = [
        ["records (gold)", str(result.n)],
        ["answered (coded + review)", str(m["n_answered"])],
        ["missing from predictions", str(result.n_missing)],
        ["errors", str(result.n_error)],
        ["prediction rows not in gold (ignored)", str(m["n_extra_pred"])],
    ]
    for key, name in [
        ("top1_accuracy", "top-1 accuracy"),
        ("top3_accuracy", "top-3 accuracy"),
        ("top5_accuracy", "top-5 accuracy"),
        ("mrr", "mean reciprocal rank"),
        ("macro_accuracy", "macro accuracy (mean over classes)"),
        ("answered_top1_accuracy", "top-1 accuracy of answered rows"),
        ("coded_share", "share coded automatically"),
        ("coded_top1_accuracy", "top-1 accuracy of coded rows"),
        ("review_share", "share sent to review"),
        ("review_top1_accuracy", "top-1 accuracy of review rows"),
    ]:
        if key in m:
            head.append([name, _fmt(m[key], pct=key != "mrr")])
    head.append(["expected calibration error", _fmt(m["ece"], pct=False)])
    out += ["## Headline metrics", "", _md_table(["metric", "value"], head), ""]
    out.append(
        "Missing and error rows count as wrong. Calibration and set metrics use answered rows."
    )
    out.append("")

    if len(result.levels):
        out += ["## Accuracy per hierarchy level", ""]
        out.append(
            _md_table(
                ["level", "top-1 accuracy", "n"],
                [[str(r.level), _fmt(r.accuracy), str(r.n)] for r in result.levels.itertuples()],
            )
        )
        out.append("")

    out += ["## Coverage and precision by confidence threshold", ""]
    out.append(
        _md_table(
            ["threshold", "coverage", "precision", "n"],
            [
                [f"{r.threshold:g}", _fmt(r.coverage), _fmt(r.precision), str(r.n)]
                for r in result.curve.itertuples()
            ],
        )
    )
    out.append("")

    if "mean_set_size" in m:
        out += ["## Conformal prediction sets", ""]
        rows = [["mean set size", _fmt(m["mean_set_size"], pct=False)]]
        if "set_coverage" in m:
            rows.append(["empirical coverage", _fmt(m["set_coverage"])])
            rows.append(["empty sets", _fmt(m["empty_set_share"])])
        out += [_md_table(["metric", "value"], rows), ""]

    sc = result.status_counts
    out += ["## Status", ""]
    out.append(_md_table(["status", "rows"], [[k, str(v)] for k, v in sc.items()]))
    out.append("")
    if m.get("error_reasons"):
        out.append(
            _md_table(
                ["error reason", "rows"], [[k, str(v)] for k, v in m["error_reasons"].items()]
            )
        )
        out.append("")
    if result.missing_ids:
        shown = ", ".join(f"`{i}`" for i in result.missing_ids[:20])
        more = f" and {len(result.missing_ids) - 20} more" if len(result.missing_ids) > 20 else ""
        out += [f"Gold ids missing from the predictions: {shown}{more}.", ""]

    pc = result.per_class
    if len(pc):
        multi = pc[pc["support"] >= 2]
        pool = multi if len(multi) else pc
        worst = pool.sort_values(
            ["top1_accuracy", "support", "code"], ascending=[True, False, True]
        ).head(n_worst)
        topk = [c for c in pc.columns if c.startswith("top") and c != "top1_accuracy"]
        topk_col = topk[0] if topk else "top1_accuracy"
        out += [f"## Worst classes (of {len(pc)}; support >= 2 when any)", ""]
        out.append(
            _md_table(
                [
                    "code",
                    "label",
                    "support",
                    "top-1",
                    topk_col.replace("_accuracy", ""),
                    "mean conf.",
                    "most confused with",
                ],
                [
                    [
                        str(r["code"]),
                        str(r["label"]),
                        str(r["support"]),
                        _fmt(r["top1_accuracy"]),
                        _fmt(r[topk_col]),
                        _fmt(r["mean_confidence"], pct=False),
                        f"{r['most_confused_with']} ({r['n_confused']})"
                        if r["most_confused_with"]
                        else "",
                    ]
                    for _, r in worst.iterrows()
                ],
            )
        )
        out.append("")

    if plots:
        out += ["## Plots", ""]
        out += [f"![{name}]({path.name})" for name, path in plots.items()]
        out.append("")
    return "\n".join(out)


def _plots(result: EvalResult, out_dir: Path) -> dict[str, Path]:
    # The object-oriented Figure API renders PNG with the Agg canvas and never touches the
    # global pyplot backend, so importing or calling this leaves a user's backend alone.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    def new() -> tuple[Figure, Any]:
        fig = Figure(figsize=(6, 4.2), dpi=100)
        FigureCanvasAgg(fig)
        return fig, fig.add_subplot(1, 1, 1)

    rows = result.rows
    conf = np.nan_to_num(rows["confidence"].to_numpy(dtype=float), nan=0.0)
    correct = rows["correct"].to_numpy(dtype=bool)
    paths: dict[str, Path] = {}

    fig, ax = new()
    dense = coverage_precision_curve(conf, correct, thresholds=np.linspace(0, 1, 101).tolist())
    ax.plot(dense["coverage"], dense["precision"], "-", color="tab:blue")
    pts = result.curve.dropna()
    ax.plot(pts["coverage"], pts["precision"], "o", color="tab:blue")
    groups: dict[tuple[float, float], list[float]] = {}
    for r in pts.itertuples():  # thresholds giving the same point share one label
        groups.setdefault((float(r.coverage), float(r.precision)), []).append(float(r.threshold))
    for (cov, prec), ts in groups.items():
        text = f"t={ts[0]:g}" if len(ts) == 1 else f"t={ts[0]:g}–{ts[-1]:g}"
        ax.annotate(text, (cov, prec), fontsize=7, textcoords="offset points", xytext=(3, 3))
    ax.set(
        xlabel="coverage (share with confidence ≥ t)",
        ylabel="precision (top-1 accuracy)",
        title="Coverage vs precision",
        xlim=(0, 1.02),
        ylim=(0, 1.02),
    )
    ax.grid(alpha=0.3)
    paths["coverage_precision"] = out_dir / "coverage_precision.png"
    fig.savefig(paths["coverage_precision"])

    fig, ax = new()
    rel = result.reliability
    width = float(rel["upper"].iloc[0] - rel["lower"].iloc[0]) if len(rel) else 0.1
    filled = rel[rel["count"] > 0]
    ax.bar(
        filled["lower"],
        filled["accuracy"],
        width=width,
        align="edge",
        alpha=0.7,
        edgecolor="black",
        label="accuracy",
    )
    ax.plot(
        filled["mean_confidence"],
        filled["accuracy"],
        "o",
        color="tab:red",
        label="(mean confidence, accuracy)",
    )
    ax.plot([0, 1], [0, 1], "--", color="gray", label="perfect calibration")
    ece = result.metrics.get("ece")
    ece_txt = f"ECE = {ece:.3f}" if isinstance(ece, float) and not math.isnan(ece) else "ECE –"
    ax.set(
        xlabel="confidence",
        ylabel="accuracy",
        title=f"Reliability diagram ({ece_txt})",
        xlim=(0, 1),
        ylim=(0, 1.02),
    )
    ax.legend(loc="upper left", fontsize=8)
    paths["reliability"] = out_dir / "reliability.png"
    fig.savefig(paths["reliability"])

    fig, ax = new()
    names = ["top-1"] + result.levels["level"].astype(str).tolist()
    values = [result.metrics["top1_accuracy"]] + result.levels["accuracy"].tolist()
    values = [0.0 if v is None or math.isnan(v) else v for v in values]
    bars = ax.bar(names, values, color=["tab:gray"] + ["tab:green"] * (len(names) - 1))
    for b, v in zip(bars, values, strict=True):
        ax.annotate(
            f"{100 * v:.1f}%",
            (b.get_x() + b.get_width() / 2, v),
            ha="center",
            va="bottom",
            fontsize=8,
        )
    ax.set(ylabel="top-1 accuracy", title="Accuracy per hierarchy level", ylim=(0, 1.08))
    paths["level_accuracy"] = out_dir / "level_accuracy.png"
    fig.savefig(paths["level_accuracy"])

    fig, ax = new()
    answered = rows["status"].isin(["coded", "review"]).to_numpy()
    bins = np.linspace(0, 1, 21).tolist()
    ax.hist(
        [conf[answered & correct], conf[answered & ~correct]],
        bins=bins,
        label=["correct", "incorrect"],
        color=["tab:green", "tab:red"],
        alpha=0.8,
    )
    ax.set(xlabel="confidence", ylabel="rows", title="Confidence of answered rows")
    ax.legend()
    paths["confidence_hist"] = out_dir / "confidence_hist.png"
    fig.savefig(paths["confidence_hist"])
    return paths


def write_report(result: EvalResult, out_dir: str | Path, *, n_worst: int = 20) -> dict[str, Path]:
    """Write metrics.json, report.md, per_class.csv, rows.csv and four PNG plots."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    paths["metrics"] = out / "metrics.json"
    paths["metrics"].write_text(
        json.dumps(_jsonable(result.metrics), indent=2, ensure_ascii=False) + "\n"
    )
    paths["per_class"] = out / "per_class.csv"
    result.per_class.to_csv(paths["per_class"], index=False)
    paths["rows"] = out / "rows.csv"
    result.rows.to_csv(paths["rows"], index=False)
    plots = _plots(result, out)
    paths["report"] = out / "report.md"
    paths["report"].write_text(_report_md(result, plots, n_worst=n_worst))
    paths.update(plots)
    return paths


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
) -> EvalResult:
    """Read gold and predictions (CSV/JSONL/Parquet by extension), evaluate, write the report."""
    result = evaluate(_read(gold_path), _read(pred_path), taxonomy=taxonomy, thresholds=thresholds)
    write_report(result, out_dir)
    return result
