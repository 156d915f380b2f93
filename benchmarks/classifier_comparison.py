"""Compare the retrieval baseline and the embedding classifier on the O*NET dev split.

Rows: retrieval (MiniLM index), network + cross-entropy, network + CDB, each with the packaged
MiniLM and with the contrastively fine-tuned MiniLM. Columns: top-1, top-5, macro top-1, top-1
on dev titles whose code has <= 5 training titles, ECE of the top-1 confidence, coverage and
mean size of the conformal sets, training seconds, records/s at inference (uncached embedder).

Training data come from the taxonomy with the dev titles removed (``apply_holdout``); the dev
split is never trained on. Run from the repository root::

    HF_HUB_OFFLINE=1 python benchmarks/classifier_comparison.py \\
        --release ../shared/data/onet_29.2 --home /tmp/ac-bench-home --out /tmp/ac-bench-report
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from autocoder.classify import data as D
from autocoder.classify.recipe import (
    Recipe,
    dev_table,
    finetune_for_recipe,
    load_recipe,
    make_classifier,
    prepare_training_data,
)
from autocoder.coding.retrieval import RetrievalCoder
from autocoder.config import Settings, load_settings
from autocoder.devsplit import apply_holdout, holdout_titles
from autocoder.embed import Embedder
from autocoder.index import make_index
from autocoder.metrics import (
    expected_calibration_error,
    macro_accuracy,
    reliability_table,
    top1_correct,
    top_k_accuracy,
)
from autocoder.records import JobRecord
from autocoder.taxonomy.model import Taxonomy
from autocoder.taxonomy.onet import import_onet
from autocoder.workspace import Workspace

REPO = Path(__file__).resolve().parent.parent
CDB_PARAMS = {"tau": 1.0, "min_difficulty": 0.05, "momentum": 0.5}
log = logging.getLogger("bench")


def ranked_codes(proba: np.ndarray, classes: np.ndarray, k: int = 5) -> np.ndarray:
    order = np.argsort(-proba, axis=1)[:, :k]
    return classes[order]


def score(
    name: str,
    proba: np.ndarray,
    classes: np.ndarray,
    gold: list[tuple[str, ...]],
    rare: np.ndarray,
    *,
    sets: list[list[str]] | None = None,
) -> dict[str, Any]:
    ranked = ranked_codes(proba, classes)
    correct = top1_correct(ranked, gold)
    conf = proba.max(axis=1)
    row: dict[str, Any] = {
        "config": name,
        "top1": top_k_accuracy(ranked, gold, k=1),
        "top5": top_k_accuracy(ranked, gold, k=5),
        "macro_top1": macro_accuracy(ranked, gold),
        "rare_top1": float(correct[rare].mean()) if rare.any() else float("nan"),
        "ece": expected_calibration_error(conf, correct),
        "set_coverage": float("nan"),
        "set_size": float("nan"),
    }
    if sets is not None:
        row["set_coverage"] = float(
            np.mean([bool(set(s) & set(g)) for s, g in zip(sets, gold, strict=True)])
        )
        row["set_size"] = float(np.mean([len(s) for s in sets]))
    return row


def throughput(predict: Any, records: list[JobRecord]) -> float:
    start = time.perf_counter()
    predict(records)
    return len(records) / (time.perf_counter() - start)


def fmt_table(rows: list[dict[str, Any]]) -> str:
    head = (
        "| configuration | top-1 | top-5 | macro top-1 | top-1 rare (≤5 titles) | ECE "
        "| set cov. | set size | train s | rec/s |"
    )
    lines = [head, "|" + "---|" * 10]
    for r in rows:

        def f(x: float, d: int = 3) -> str:
            return "–" if x != x else f"{x:.{d}f}"

        lines.append(
            f"| {r['config']} | {f(r['top1'])} | {f(r['top5'])} | {f(r['macro_top1'])} "
            f"| {f(r['rare_top1'])} | {f(r['ece'])} | {f(r['set_coverage'])} "
            f"| {f(r['set_size'], 1)} | {f(r['train_seconds'], 0)} | {f(r['records_per_s'], 0)} |"
        )
    return "\n".join(lines)


def plot_reliability(confidence: np.ndarray, correct: np.ndarray, path: Path, title: str) -> Path:
    """Reliability diagram (accuracy per confidence bin, ``autocoder.metrics`` bins)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    table = reliability_table(confidence, correct)
    rows = table[table["count"] > 0]
    fig = Figure(figsize=(4.5, 4.5))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    ax.plot([0, 1], [0, 1], "--", color="grey", label="perfect calibration")
    width = float(table["upper"].iloc[0] - table["lower"].iloc[0])
    ax.bar(
        rows["lower"],
        rows["accuracy"],
        width=width,
        align="edge",
        edgecolor="black",
        alpha=0.7,
        label="accuracy",
    )
    ax.plot(rows["mean_confidence"], rows["accuracy"], "o-", color="C3", label="mean confidence")
    ece = expected_calibration_error(confidence, correct)
    ax.set(
        xlabel="top-1 confidence",
        ylabel="top-1 accuracy",
        xlim=(0, 1),
        ylim=(0, 1),
        title=f"{title} (ECE {ece:.3f})",
    )
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return path


@dataclass
class Bench:
    """Everything the configurations are scored on: data, dev split, rare-code mask."""

    recipe: Recipe
    settings: Settings
    ws: Workspace
    taxonomy: Taxonomy
    splits: Any
    data_dir: Path
    dev_records: list[JobRecord]
    gold: list[tuple[str, ...]]
    rare: np.ndarray

    @property
    def classes(self) -> list[str]:
        return self.taxonomy.leaf_codes()


def prepare(args: argparse.Namespace) -> Bench:
    """Import the release, hold the dev split out of it, build the training set."""
    recipe = load_recipe(args.recipe)
    ws = Workspace.resolve(args.home)
    taxonomy = import_onet(args.release)
    dev = dev_table(recipe, taxonomy)
    assert dev is not None, "the recipe's holdout is 'none': nothing to score on"
    removed = apply_holdout(taxonomy, holdout_titles(dev))
    splits, data_dir = prepare_training_data(recipe, taxonomy, ws, holdout_info="onet-dev")
    train, val = splits["train"], splits["validation"]
    log.info(
        "dev %d titles, %d removed from taxonomy; train %d rows, val %d rows (%s)",
        len(dev),
        removed,
        len(train),
        len(val),
        data_dir,
    )
    formats = list(train["input_format"]) + list(val["input_format"])
    codes = list(train["code"]) + list(val["code"])
    title_rows = Counter(c for c, f in zip(codes, formats, strict=True) if f == "title")
    gold = [tuple(c.split(";")) for c in dev["codes"]]
    rare = np.array([any(title_rows.get(c, 0) <= 5 for c in g) for g in gold])
    log.info("rare dev rows (a code with <= 5 training titles): %d", int(rare.sum()))
    settings = load_settings(overrides=["index.backend=memory"])
    return Bench(
        recipe,
        settings,
        ws,
        taxonomy,
        splits,
        data_dir,
        [JobRecord(t) for t in dev["title"]],
        gold,
        rare,
    )


def embedders(b: Bench, skip_finetune: bool) -> list[tuple[str, str, float]]:
    """``(label, model, fine-tuning seconds)``: the packaged MiniLM and its fine-tuned copy."""
    out = [("MiniLM", b.recipe.embedder.model, 0.0)]
    if not skip_finetune:
        t0 = time.perf_counter()
        ft_dir = finetune_for_recipe(
            b.recipe,
            b.splits["train"],
            b.taxonomy,
            b.ws,
            held_out=list(b.splits["validation"]["title"]),
        )
        meta = json.loads((ft_dir / "autocoder_finetune.json").read_text())
        ft_seconds = float(meta.get("seconds", time.perf_counter() - t0))
        log.info("fine-tuned embedder %s (%.0fs)", ft_dir, ft_seconds)
        out.append(("MiniLM-ft", str(ft_dir), ft_seconds))
    return out


def retrieval_row(
    b: Bench, label: str, model_name: str, ft_seconds: float, emb: Embedder, speed: list[JobRecord]
) -> dict[str, Any]:
    temperature = b.settings.index.temperature
    t0 = time.perf_counter()
    index = make_index(b.settings, b.ws, b.taxonomy, emb)
    index.build(b.taxonomy, emb, show_progress=False)
    retr = RetrievalCoder(index, emb, classes=b.classes, temperature=temperature).fit()
    build_s = time.perf_counter() - t0
    row = score(
        f"retrieval ({label})", retr.predict_proba(b.dev_records), retr.classes_, b.gold, b.rare
    )
    cold = RetrievalCoder(
        index, Embedder(model_name), classes=b.classes, temperature=temperature
    ).fit()
    row.update(
        train_seconds=ft_seconds,
        records_per_s=throughput(cold.predict_proba, speed),
        index_seconds=build_s,
    )
    return row


def network_rows(
    b: Bench, label: str, model_name: str, ft_seconds: float, emb: Embedder, speed: list[JobRecord]
) -> list[tuple[dict[str, Any], np.ndarray, np.ndarray]]:
    """CE and CDB heads on embeddings computed once; rows with their dev probabilities."""
    train, val = b.splits["train"], b.splits["validation"]
    probe = make_classifier(b.recipe, embedder=emb, classes=b.classes, cache_dir=None)
    t0 = time.perf_counter()
    E_tr, E_va = probe.embed(D.dataset_records(train)), probe.embed(D.dataset_records(val))
    E_dev = probe.embed(b.dev_records)
    log.info(
        "%s: embedded %d texts in %.0fs",
        label,
        len(E_tr) + len(E_va) + len(E_dev),
        time.perf_counter() - t0,
    )
    out = []
    for loss_name, loss_params in (("cross_entropy", {}), ("cdb", CDB_PARAMS)):
        r = b.recipe.model_copy(deep=True)
        r.loss.name, r.loss.params = loss_name, dict(loss_params)
        clf = make_classifier(r, embedder=emb, classes=b.classes, cache_dir=None)
        t0 = time.perf_counter()
        clf.fit(
            E_tr,
            list(train["code"]),
            X_val=E_va,
            y_val=list(val["code"]),
            val_acceptable=D.acceptable_codes(val),
        )
        fit_s = time.perf_counter() - t0
        proba = clf.predict_proba(E_dev)
        name = f"network + {'CE' if loss_name == 'cross_entropy' else loss_name.upper()} ({label})"
        row = score(
            name, proba, clf.classes_, b.gold, b.rare, sets=clf.predict_sets(None, proba=proba)
        )
        clf.embedder = Embedder(model_name)  # uncached: honest records/s
        row.update(
            train_seconds=fit_s + ft_seconds,
            records_per_s=throughput(clf.predict_proba, speed),
            temperature=clf.temperature_,
            best_epoch=clf.history_.best_epoch,
            conformal_threshold=clf.conformal_threshold_,
        )
        out.append((row, proba, clf.classes_))
    return out


def write_report(b: Bench, rows: list[dict[str, Any]], best: Any, out: Path) -> None:
    table = fmt_table(rows)
    print("\n" + table + "\n")
    (out / "table.md").write_text(table + "\n")
    train, val = b.splits["train"], b.splits["validation"]
    summary = {
        "rows": rows,
        "dev_titles": len(b.gold),
        "rare_dev_titles": int(b.rare.sum()),
        "train_rows": len(train),
        "validation_rows": len(val),
        "dataset": str(b.data_dir),
    }
    (out / "results.json").write_text(json.dumps(summary, indent=2, default=float))
    if best is not None:
        plot_reliability(best[2], best[3], out / "reliability.png", title=best[1])
    print(
        f"dev titles: {len(b.gold)} ({int(b.rare.sum())} rare); train rows {len(train)}, "
        f"validation rows {len(val)}; report in {out}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--release", default=str(REPO.parent / "shared" / "data" / "onet_29.2"))
    ap.add_argument("--home", default="/tmp/ac-bench-home")
    ap.add_argument("--recipe", default=str(REPO / "training" / "classifier.toml"))
    ap.add_argument("--out", default="/tmp/ac-bench-report")
    ap.add_argument("--speed-sample", type=int, default=300)
    ap.add_argument("--skip-finetune", action="store_true")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    b = prepare(args)
    speed = b.dev_records[: args.speed_sample]
    rows: list[dict[str, Any]] = []
    best: tuple[float, str, np.ndarray, np.ndarray] | None = None
    for label, model_name, ft_seconds in embedders(b, args.skip_finetune):
        emb = Embedder(
            model_name, batch_size=b.recipe.embedder.batch_size, cache_dir=b.ws.embedding_cache
        )
        rows.append(retrieval_row(b, label, model_name, ft_seconds, emb, speed))
        log.info("%s", rows[-1])
        for row, proba, classes in network_rows(b, label, model_name, ft_seconds, emb, speed):
            rows.append(row)
            log.info("%s", row)
            if best is None or row["top1"] > best[0]:
                correct = top1_correct(ranked_codes(proba, classes), b.gold)
                best = (row["top1"], row["config"], proba.max(axis=1), correct)
    write_report(b, rows, best, out)


if __name__ == "__main__":
    main()
