"""Score a coder's output against gold codes.

:func:`evaluate` compares a gold table with a prediction table (checked by
:mod:`autocoder.validation`); :func:`write_report` writes ``metrics.json``, ``report.md``,
``per_class.csv``, ``rows.csv`` and PNG plots; :func:`run_eval` reads both tables from files and
does both. The scores themselves live in :mod:`autocoder.metrics` (re-exported here).

Modules: ``levels`` (hierarchy level functions), ``tables`` (per-class table), ``run``
(evaluate, run_eval), ``report`` (files and markdown), ``plots`` (PNG).
"""

from autocoder.evaluate.levels import (
    ISCO_RE,
    ONET_RE,
    detect_scheme,
    hierarchy_level_fns,
    structural_level_fns,
)
from autocoder.evaluate.report import report_markdown, write_report
from autocoder.evaluate.run import EvalResult, evaluate, run_eval
from autocoder.evaluate.tables import per_class_table
from autocoder.metrics import (
    DEFAULT_THRESHOLDS,
    Gold,
    LevelFn,
    coverage_precision_curve,
    expected_calibration_error,
    hit_ranks,
    level_accuracy,
    level_hits,
    macro_accuracy,
    mean_reciprocal_rank,
    recall_at_k,
    reciprocal_ranks,
    reliability_table,
    top1_correct,
    top_k_accuracy,
    topk_hits,
)

__all__ = [
    "DEFAULT_THRESHOLDS",
    "EvalResult",
    "Gold",
    "ISCO_RE",
    "LevelFn",
    "ONET_RE",
    "coverage_precision_curve",
    "detect_scheme",
    "evaluate",
    "expected_calibration_error",
    "hierarchy_level_fns",
    "hit_ranks",
    "level_accuracy",
    "level_hits",
    "macro_accuracy",
    "mean_reciprocal_rank",
    "per_class_table",
    "recall_at_k",
    "reciprocal_ranks",
    "reliability_table",
    "report_markdown",
    "run_eval",
    "structural_level_fns",
    "top1_correct",
    "top_k_accuracy",
    "topk_hits",
    "write_report",
]
