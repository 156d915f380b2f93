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
from pathlib import Path
from typing import Any

import numpy as np

from autocoder.classify import data as D
from autocoder.classify.calibrate import plot_reliability
from autocoder.classify.recipe import (
    finetune_for_recipe,
    load_recipe,
    make_classifier,
    prepare_training_data,
)
from autocoder.config import load_settings
from autocoder.devsplit import apply_holdout, holdout_titles, make_dev_split
from autocoder.embed import Embedder
from autocoder.evaluate import (
    expected_calibration_error,
    macro_accuracy,
    top1_correct,
    top_k_accuracy,
)
from autocoder.index import make_index
from autocoder.records import JobRecord
from autocoder.retrieval import RetrievalCoder
from autocoder.taxonomy.onet import import_onet, read_alternate_titles
from autocoder.workspace import Workspace

REPO = Path(__file__).resolve().parent.parent
CDB_PARAMS = {"tau": 1.0, "min_difficulty": 0.05, "momentum": 0.5}


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
    log = logging.getLogger("bench")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    ws = Workspace.resolve(args.home)
    settings = load_settings(overrides=["index.backend=memory"])
    recipe = load_recipe(args.recipe)

    taxonomy = import_onet(args.release)
    dev = make_dev_split(
        read_alternate_titles(args.release),
        fraction=recipe.data.holdout_fraction,
        seed=recipe.data.holdout_seed,
    )
    removed = apply_holdout(taxonomy, holdout_titles(dev))
    classes = taxonomy.leaf_codes()
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
    title_rows = Counter(
        c
        for c, f in zip(
            list(train["code"]) + list(val["code"]),
            list(train["input_format"]) + list(val["input_format"]),
            strict=True,
        )
        if f == "title"
    )
    dev_records = [JobRecord(t) for t in dev["title"]]
    gold = [tuple(c.split(";")) for c in dev["codes"]]
    rare = np.array([any(title_rows.get(c, 0) <= 5 for c in g) for g in gold])
    log.info("rare dev rows (a code with <= 5 training titles): %d", int(rare.sum()))
    speed_records = dev_records[: args.speed_sample]
    train_X, train_y = D.dataset_records(train), list(train["code"])
    val_X, val_y = D.dataset_records(val), list(val["code"])
    val_ok = D.acceptable_codes(val)

    embedders: list[tuple[str, str, float]] = [("MiniLM", recipe.embedder.model, 0.0)]
    if not args.skip_finetune:
        t0 = time.perf_counter()
        ft_dir = finetune_for_recipe(recipe, train, taxonomy, ws, show_progress=False)
        ft_seconds = time.perf_counter() - t0
        meta = json.loads((ft_dir / "autocoder_finetune.json").read_text())
        ft_seconds = float(meta.get("seconds", ft_seconds))
        log.info("fine-tuned embedder %s (%.0fs)", ft_dir, ft_seconds)
        embedders.append(("MiniLM-ft", str(ft_dir), ft_seconds))

    rows: list[dict[str, Any]] = []
    best: tuple[float, str, np.ndarray, np.ndarray] | None = None
    for label, model_name, ft_seconds in embedders:
        emb = Embedder(
            model_name, batch_size=recipe.embedder.batch_size, cache_dir=ws.embedding_cache
        )
        t0 = time.perf_counter()
        index = make_index(settings, ws, taxonomy, emb)
        index.build(taxonomy, emb, show_progress=False)
        retr = RetrievalCoder(
            index, emb, classes=classes, temperature=settings.index.temperature
        ).fit()
        build_s = time.perf_counter() - t0
        proba = retr.predict_proba(dev_records)
        row = score(f"retrieval ({label})", proba, retr.classes_, gold, rare)
        cold = RetrievalCoder(
            index, Embedder(model_name), classes=classes, temperature=settings.index.temperature
        ).fit()
        row.update(
            train_seconds=ft_seconds,
            records_per_s=throughput(cold.predict_proba, speed_records),
            index_seconds=build_s,
        )
        rows.append(row)
        log.info("%s", row)
        # embed train/val/dev once, so the head timings below are training only
        t0 = time.perf_counter()
        probe = make_classifier(recipe, embedder=emb, classes=classes, cache_dir=None)
        E_tr, E_va, E_dev = probe.embed(train_X), probe.embed(val_X), probe.embed(dev_records)
        log.info(
            "%s: embedded %d texts in %.0fs",
            label,
            len(E_tr) + len(E_va) + len(E_dev),
            time.perf_counter() - t0,
        )
        for loss_name, loss_params in (("cross_entropy", {}), ("cdb", CDB_PARAMS)):
            r = recipe.model_copy(deep=True)
            r.loss.name, r.loss.params = loss_name, dict(loss_params)
            clf = make_classifier(r, embedder=emb, classes=classes, cache_dir=None)
            t0 = time.perf_counter()
            clf.fit(E_tr, train_y, X_val=E_va, y_val=val_y, val_acceptable=val_ok)
            fit_s = time.perf_counter() - t0
            proba = clf.predict_proba(E_dev)
            name = (
                f"network + {'CE' if loss_name == 'cross_entropy' else loss_name.upper()} ({label})"
            )
            row = score(
                name, proba, clf.classes_, gold, rare, sets=clf.predict_sets(None, proba=proba)
            )
            clf.embedder = Embedder(model_name)  # uncached: honest records/s
            row.update(
                train_seconds=fit_s + ft_seconds,
                records_per_s=throughput(clf.predict_proba, speed_records),
                temperature=clf.temperature_,
                best_epoch=clf.history_.best_epoch,
                conformal_threshold=clf.conformal_threshold_,
            )
            rows.append(row)
            log.info("%s", row)
            if best is None or row["top1"] > best[0]:
                correct = top1_correct(ranked_codes(proba, clf.classes_), gold)
                best = (row["top1"], name, proba.max(axis=1), correct)
    table = fmt_table(rows)
    print("\n" + table + "\n")
    (out / "table.md").write_text(table + "\n")
    (out / "results.json").write_text(
        json.dumps(
            {
                "rows": rows,
                "dev_titles": len(dev),
                "rare_dev_titles": int(rare.sum()),
                "train_rows": len(train),
                "validation_rows": len(val),
                "dataset": str(data_dir),
            },
            indent=2,
            default=float,
        )
    )
    if best is not None:
        plot_reliability(best[2], best[3], out / "reliability.png", title=best[1])
    print(
        f"dev titles: {len(dev)} ({int(rare.sum())} rare); train rows {len(train)}, "
        f"validation rows {len(val)}; report in {out}"
    )


if __name__ == "__main__":
    main()
