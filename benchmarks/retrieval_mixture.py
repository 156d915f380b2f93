"""Does soft-voting retrieval help a model's mixture? On the cached issue 19 scores of a model
(benchmarks/trust_cache.py), retrieval's probabilities of every candidate segment are computed
again with another aggregation; then top-1 / top-5 of the mixture on each set's fit and dev
halves, at the model's own weight and temperature and over a grid of weights.

    export HF_HUB_OFFLINE=1 AUTOCODER_HOME=$BENCH/trust/home PYTHONPATH=$PWD
    python benchmarks/trust_cache.py $BENCH/trust/norefit $BENCH/norefit.pkl $BENCH/trust/dev.csv
    python benchmarks/retrieval_mixture.py $BENCH/norefit.pkl [--aggregation softmax_sum --temperature 0.05]
"""

from __future__ import annotations

import argparse
import dataclasses
import pickle

import numpy as np

from autocoder.coding import trust as tr
from autocoder.coding.loaded import retrieval_coder
from autocoder.config import load_settings
from autocoder.evaluate import realdev
from autocoder.index import index_in_use
from autocoder.records import JobRecord
from autocoder.taxonomy.store import load_taxonomy
from autocoder.workspace import Workspace

WEIGHTS = (None, 0.3, 0.5, 0.7, 1.0)  # None: the model's fitted weight


def rescored(cands: dict, aggregation: str, temperature: float) -> dict:
    ws = Workspace.resolve()
    settings = load_settings(overrides=[f'index.aggregation="{aggregation}"',
                                        f"index.temperature={temperature}"])  # fmt: skip
    with index_in_use(ws):
        ret = retrieval_coder(settings, ws, load_taxonomy(ws, "onet"))
        return {
            n: [dataclasses.replace(cs, retrieval_proba=tr.retrieval_scores(
                ret, [JobRecord(t) for t in cs.texts], cs.classes)[0]) for cs in chunks]
            for n, chunks in cands.items()
        }  # fmt: skip


def figures(sets: dict, cands: dict, golds: dict, weight: float | None) -> str:
    cells = []
    for n in sets:
        chunks = (
            cands[n]
            if weight is None
            else [dataclasses.replace(c, weight=weight) for c in cands[n]]
        )
        sc = tr.concat([tr.choose(c, tr.SegmentOptions()) for c in chunks])
        for half in (realdev.FIT, realdev.DEV):
            m = (sets[n]["part"] == half).to_numpy()
            top = np.argsort(-sc.proba[m], axis=1)[:, :5]
            gold = [g for g, x in zip(golds[n], m, strict=True) if x]
            t1 = np.mean([sc.classes[o[0]] in g for o, g in zip(top, gold, strict=True)])
            t5 = np.mean(
                [bool({sc.classes[j] for j in o} & set(g)) for o, g in zip(top, gold, strict=True)]
            )
            cells.append(f"{t1:.3f} / {t5:.3f}")
    return " | ".join(cells)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("cache")
    ap.add_argument("--aggregation", default="softmax_sum")
    ap.add_argument("--temperature", type=float, default=0.05)
    args = ap.parse_args()
    d = pickle.load(open(args.cache, "rb"))
    sets, golds = d["sets"], d["golds"]
    first = d["cands"]["clean"][0]
    print(f"model weight {first.weight}, temperature {first.temperature:.3f}")
    head = " | ".join(f"{n} {h}" for n in sets for h in (realdev.FIT, realdev.DEV))
    print(f"| retrieval | weight | {head} |")
    print("|---|---|" + "---|" * (2 * len(sets)))
    variants = {"as cached": d["cands"],
                f"{args.aggregation} @ {args.temperature:g}": rescored(d["cands"], args.aggregation, args.temperature)}  # fmt: skip
    for name, cands in variants.items():
        for w in WEIGHTS:
            print(
                f"| {name} | {'model' if w is None else w} | {figures(sets, cands, golds, w)} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
