"""Write an evaluation: ``metrics.json``, ``report.md``, ``per_class.csv``, ``rows.csv``, plots."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from autocoder.evaluate.plots import write_plots

if TYPE_CHECKING:
    from autocoder.evaluate.run import EvalResult

HEADLINE = (
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
)


def jsonable(obj: Any) -> Any:
    """``obj`` with numpy scalars as Python ones and non-finite floats as None."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [jsonable(v) for v in obj]
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


def _headline(result: EvalResult) -> list[str]:
    m = result.metrics
    head = [
        ["records (gold)", str(result.n)],
        ["answered (coded + review)", str(m["n_answered"])],
        ["missing from predictions", str(result.n_missing)],
        ["errors", str(result.n_error)],
        ["prediction rows not in gold (ignored)", str(m["n_extra_pred"])],
    ]
    head += [[name, _fmt(m[key], pct=key != "mrr")] for key, name in HEADLINE if key in m]
    head.append(["expected calibration error", _fmt(m["ece"], pct=False)])
    note = "Missing and error rows count as wrong. Calibration and set metrics use answered rows."
    return ["## Headline metrics", "", _md_table(["metric", "value"], head), "", note, ""]


def _levels(result: EvalResult) -> list[str]:
    if not len(result.levels):
        return []
    rows = [[str(r.level), _fmt(r.accuracy), str(r.n)] for r in result.levels.itertuples()]
    table = _md_table(["level", "top-1 accuracy", "n"], rows)
    return ["## Accuracy per hierarchy level", "", table, ""]


def _curve(result: EvalResult) -> list[str]:
    rows = [
        [f"{r.threshold:g}", _fmt(r.coverage), _fmt(r.precision), str(r.n)]
        for r in result.curve.itertuples()
    ]
    table = _md_table(["threshold", "coverage", "precision", "n"], rows)
    return ["## Coverage and precision by confidence threshold", "", table, ""]


def _sets(result: EvalResult) -> list[str]:
    m = result.metrics
    if "mean_set_size" not in m:
        return []
    rows = [["mean set size", _fmt(m["mean_set_size"], pct=False)]]
    if "set_coverage" in m:
        rows.append(["empirical coverage", _fmt(m["set_coverage"])])
        rows.append(["empty sets", _fmt(m["empty_set_share"])])
    return ["## Conformal prediction sets", "", _md_table(["metric", "value"], rows), ""]


def _status(result: EvalResult) -> list[str]:
    counts = [[k, str(v)] for k, v in result.status_counts.items()]
    out = ["## Status", "", _md_table(["status", "rows"], counts), ""]
    reasons = result.metrics.get("error_reasons")
    if reasons:
        out += [_md_table(["error reason", "rows"], [[k, str(v)] for k, v in reasons.items()]), ""]
    missing = result.missing_ids
    if missing:
        shown = ", ".join(f"`{i}`" for i in missing[:20])
        more = f" and {len(missing) - 20} more" if len(missing) > 20 else ""
        out += [f"Gold ids missing from the predictions: {shown}{more}.", ""]
    return out


def _worst_classes(result: EvalResult, n_worst: int) -> list[str]:
    pc = result.per_class
    if not len(pc):
        return []
    multi = pc[pc["support"] >= 2]
    pool = multi if len(multi) else pc
    worst = pool.sort_values(
        ["top1_accuracy", "support", "code"], ascending=[True, False, True]
    ).head(n_worst)
    topk = [c for c in pc.columns if c.startswith("top") and c != "top1_accuracy"]
    topk_col = topk[0] if topk else "top1_accuracy"
    header = ["code", "label", "support", "top-1", topk_col.replace("_accuracy", "")]
    header += ["mean conf.", "most confused with"]
    rows = [
        [
            str(r["code"]),
            str(r["label"]),
            str(r["support"]),
            _fmt(r["top1_accuracy"]),
            _fmt(r[topk_col]),
            _fmt(r["mean_confidence"], pct=False),
            f"{r['most_confused_with']} ({r['n_confused']})" if r["most_confused_with"] else "",
        ]
        for _, r in worst.iterrows()
    ]
    title = f"## Worst classes (of {len(pc)}; support >= 2 when any)"
    return [title, "", _md_table(header, rows), ""]


def report_markdown(result: EvalResult, plots: dict[str, Path], *, n_worst: int = 20) -> str:
    """The markdown report: headline, levels, coverage/precision, sets, status, worst classes."""
    out = ["# Evaluation report", ""]
    out += _headline(result) + _levels(result) + _curve(result) + _sets(result)
    out += _status(result) + _worst_classes(result, n_worst)
    if plots:
        out += ["## Plots", ""]
        out += [f"![{name}]({path.name})" for name, path in plots.items()]
        out.append("")
    return "\n".join(out)


def write_report(
    result: EvalResult, out_dir: str | Path, *, n_worst: int = 20, formula_guard: bool = True
) -> dict[str, Path]:
    """Write metrics.json, report.md, per_class.csv, rows.csv and four PNG plots; CSV text
    cells a spreadsheet would run as a formula are quoted (``formula_guard``, see
    ``autocoder.io.formula_safe``)."""
    from autocoder.io import write_table

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    paths["metrics"] = out / "metrics.json"
    paths["metrics"].write_text(
        json.dumps(jsonable(result.metrics), indent=2, ensure_ascii=False) + "\n"
    )
    paths["per_class"] = out / "per_class.csv"
    write_table(result.per_class, paths["per_class"], formula_guard=formula_guard)
    paths["rows"] = out / "rows.csv"
    write_table(result.rows, paths["rows"], formula_guard=formula_guard)
    plots = write_plots(result, out)
    paths["report"] = out / "report.md"
    paths["report"].write_text(report_markdown(result, plots, n_worst=n_worst))
    paths.update(plots)
    return paths
