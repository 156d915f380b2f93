"""PNG plots of an evaluation: coverage/precision, reliability, level accuracy, confidence.

The object-oriented Figure API renders PNG with the Agg canvas and never touches the global
pyplot backend, so importing or calling this leaves a user's backend alone.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from autocoder.metrics import coverage_precision_curve

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from autocoder.evaluate.run import EvalResult


def _new() -> tuple[Figure, Any]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 4.2), dpi=100)
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot(1, 1, 1)


def _confidence_and_correct(result: EvalResult) -> tuple[np.ndarray, np.ndarray]:
    rows = result.rows
    conf = np.nan_to_num(rows["confidence"].to_numpy(dtype=float), nan=0.0)
    return conf, rows["correct"].to_numpy(dtype=bool)


def plot_coverage_precision(result: EvalResult, path: Path) -> Path:
    """Precision against coverage over thresholds 0..1, the report's thresholds marked."""
    conf, correct = _confidence_and_correct(result)
    fig, ax = _new()
    dense = coverage_precision_curve(conf, correct, thresholds=np.linspace(0, 1, 101).tolist())
    ax.plot(dense["coverage"], dense["precision"], "-", color="tab:blue")
    pts = result.curve.dropna()
    ax.plot(pts["coverage"], pts["precision"], "o", color="tab:blue")
    groups: dict[tuple[float, float], list[float]] = {}
    cols = (pts["coverage"].tolist(), pts["precision"].tolist(), pts["threshold"].tolist())
    for cov, prec, t in zip(*cols, strict=True):  # thresholds giving the same point share one label
        groups.setdefault((float(cov), float(prec)), []).append(float(t))
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
    fig.savefig(path)
    return path


def plot_reliability(result: EvalResult, path: Path) -> Path:
    """Accuracy per confidence bin against the diagonal, ECE in the title."""
    fig, ax = _new()
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
    fig.savefig(path)
    return path


def plot_level_accuracy(result: EvalResult, path: Path) -> Path:
    """Top-1 accuracy overall and at each hierarchy level."""
    fig, ax = _new()
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
    fig.savefig(path)
    return path


def plot_confidence_hist(result: EvalResult, path: Path) -> Path:
    """Histograms of the confidence of answered rows, right and wrong."""
    conf, correct = _confidence_and_correct(result)
    answered = result.rows["status"].isin(["coded", "review"]).to_numpy()
    fig, ax = _new()
    ax.hist(
        [conf[answered & correct], conf[answered & ~correct]],
        bins=np.linspace(0, 1, 21).tolist(),
        label=["correct", "incorrect"],
        color=["tab:green", "tab:red"],
        alpha=0.8,
    )
    ax.set(xlabel="confidence", ylabel="rows", title="Confidence of answered rows")
    ax.legend()
    fig.savefig(path)
    return path


def write_plots(result: EvalResult, out_dir: Path) -> dict[str, Path]:
    """The four plots as PNG files in ``out_dir``, by name."""
    return {
        "coverage_precision": plot_coverage_precision(result, out_dir / "coverage_precision.png"),
        "reliability": plot_reliability(result, out_dir / "reliability.png"),
        "level_accuracy": plot_level_accuracy(result, out_dir / "level_accuracy.png"),
        "confidence_hist": plot_confidence_hist(result, out_dir / "confidence_hist.png"),
    }
