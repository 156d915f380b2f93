"""Issue 18 (b): how much of what ``retrain`` does to other titles comes from the answers?

The 400 review-queue titles of ``benchmarks/reviewed_titles.py`` (from its ``queue.csv``), given
to ``retrain`` as feedback at several weights, epochs and learning rates; a near-zero weight is
the control (warm training on the base rows alone). Prints ``retrain``'s before/after on its
dev split (the recipe's dev titles minus the reviewed ones; the classifier alone).

    export HF_HUB_OFFLINE=1 AUTOCODER_HOME=$BENCH/trust/home PYTHONPATH=$PWD
    python benchmarks/retrain_drift.py --model $BENCH/trust/norefit --dev $BENCH/trust/dev.csv \\
        --queue $BENCH/reviewed3/queue.csv --out $BENCH/rgrid
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd

from autocoder.config import load_settings
from autocoder.evaluate import realdev
from autocoder.review.retrain import retrain
from autocoder.workspace import Workspace

#: (feedback weight, epochs, learning rate as a share of the model's)
GRID = ((1e-6, 10, 0.25), (1.0, 10, 0.25), (5.0, 10, 0.25), (1.0, 3, 0.25), (2.0, 3, 0.25),
        (5.0, 3, 0.25), (1e-6, 10, 0.05), (5.0, 10, 0.05), (20.0, 10, 0.05))  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--dev", type=Path, required=True)
    ap.add_argument("--queue", type=Path, required=True, help="reviewed_titles.py's queue.csv")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--reviewed", type=int, default=400)
    args = ap.parse_args()
    settings, ws = load_settings(), Workspace.resolve()
    lr0 = json.loads((args.model / "config.json").read_text())["params"]["lr"]
    table = realdev.clean_dev(args.dev)
    fit = table[table["part"] == realdev.FIT]
    fit = fit.sample(min(1500, len(fit)), random_state=13)  # as reviewed_titles.py samples it
    coded = pd.read_csv(args.queue, dtype=str, keep_default_na=False)
    queue = fit.merge(coded[["id", "status"]], on="id", how="left")
    queue = queue[queue["status"] != "coded"].head(args.reviewed)
    feedback = pd.DataFrame({"project": "simulated", "id": queue["id"], "title": queue["title"],
                             "description": "", "code": [c.split(";")[0] for c in queue["codes"]],
                             "created_at": "2026-12-03T00:00:00"})  # fmt: skip
    print("| feedback weight | epochs | lr (share of the model's) | top-1 | top-5 | ECE |")
    print("|---|---|---|---|---|---|")
    for weight, epochs, share in GRID:
        r = retrain(args.model, args.out / f"m_{weight}_{epochs}_{share}", feedback,
                    workspace=ws, settings=settings, feedback_weight=weight, epochs=epochs,
                    lr=lr0 * share, cache_dir=ws.embedding_cache, use_examples=False)  # fmt: skip
        b, a = r.before, r.after
        print(f"| {weight:g} | {epochs} | {share} | {b['top1']:.3f} → {a['top1']:.3f} "
              f"| {b['top5']:.3f} → {a['top5']:.3f} | {b['ece']:.3f} → {a['ece']:.3f} |",
              flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
