"""Noisy posting-style dev titles, and what the title normaliser buys the retrieval coder.

``make``: reads the dev split (``autocoder dev-split``: ``id, title, codes``; real incumbent and
posting titles held out of everything the coder learns from) and appends to each title the noise
job boards add, drawn with a seeded RNG: employer names, locations, remote/hybrid, shifts, pay,
requisition numbers, contract terms, sign-on bonus and "urgently hiring" phrasing, and seniority
words. The gold codes stay those of the clean title. Writes ``noisy_dev.csv`` (``id, title,
codes``), row for row with the dev split.

``eval``: top-1 / top-5 of the retrieval coder (in-memory index over the workspace's current
O*NET taxonomy, imported with ``--holdout`` the dev split; the workspace's embedding cache is
reused) on a sample of the clean titles, the same titles noisy, and the noisy titles through
``autocoder.titles.clean_title`` (and the clean titles through it, to check it costs nothing).

Run from the repository root (about 20 minutes on 2 loaded cores for the index's embeddings the
first time; then a minute)::

    export HF_HUB_OFFLINE=1 AUTOCODER_HOME=/tmp/nt10/home
    .venv/bin/autocoder dev-split ../shared/data/onet_29.2 -o /tmp/nt10/dev.csv
    .venv/bin/autocoder taxonomy import onet ../shared/data/onet_29.2 --holdout /tmp/nt10/dev.csv
    .venv/bin/python benchmarks/noisy_dev.py make /tmp/nt10/dev.csv -o /tmp/nt10/noisy_dev.csv
    nice -n 5 .venv/bin/python benchmarks/noisy_dev.py eval /tmp/nt10/dev.csv \\
        /tmp/nt10/noisy_dev.csv --sample 500 --out /tmp/nt10/noisy_eval.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

from autocoder.devsplit import make_noisy


def _topk(coder: object, titles: list[str], gold: list[set[str]]) -> dict[str, float]:
    proba = np.asarray(coder.predict_proba(titles))  # type: ignore[attr-defined]
    classes = np.asarray(coder.classes_)  # type: ignore[attr-defined]
    order = np.argsort(-proba, axis=1, kind="stable")[:, :5]
    ranked = classes[order]
    hit1 = [r[0] in g for r, g in zip(ranked, gold, strict=True)]
    hit5 = [bool(set(r) & g) for r, g in zip(ranked, gold, strict=True)]
    return {"top1": round(float(np.mean(hit1)), 4), "top5": round(float(np.mean(hit5)), 4)}


def evaluate(dev_path: Path, noisy_path: Path, *, sample: int, seed: int) -> dict[str, object]:
    from autocoder.api import retrieval_coder
    from autocoder.config import load_settings
    from autocoder.taxonomy.store import load_taxonomy
    from autocoder.titles import clean_title
    from autocoder.workspace import Workspace

    dev, noisy = pd.read_csv(dev_path, dtype=str), pd.read_csv(noisy_path, dtype=str)
    if list(dev["id"]) != list(noisy["id"]):
        raise ValueError(f"{noisy_path} is not row for row with {dev_path}")
    rows = np.random.default_rng(seed).permutation(len(dev))[: min(sample, len(dev))]
    dev, noisy = dev.iloc[rows], noisy.iloc[rows]
    gold = [set(str(c).split(";")) for c in dev["codes"]]
    settings = load_settings(overrides=["index.backend=memory"])
    ws = Workspace.resolve()
    t0 = time.time()
    coder = retrieval_coder(settings, ws, load_taxonomy(ws, "onet"))
    out: dict[str, object] = {"n": len(dev), "index_seconds": round(time.time() - t0, 1)}
    sets = {
        "clean": list(dev["title"]),
        "clean+normaliser": [clean_title(t) for t in dev["title"]],
        "noisy": list(noisy["title"]),
        "noisy+normaliser": [clean_title(t) for t in noisy["title"]],
    }
    for name, titles in sets.items():
        out[name] = _topk(coder, titles, gold)
        print(name, out[name], flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    mk = sub.add_parser("make", help="write noisy_dev.csv from a dev split")
    mk.add_argument("dev", type=Path)
    mk.add_argument("-o", "--out", type=Path, required=True)
    mk.add_argument("--seed", type=int, default=7)
    ev = sub.add_parser("eval", help="retrieval top-1/top-5: clean, noisy, noisy+normaliser")
    ev.add_argument("dev", type=Path)
    ev.add_argument("noisy", type=Path)
    ev.add_argument("--sample", type=int, default=500)
    ev.add_argument("--seed", type=int, default=0)
    ev.add_argument("--out", type=Path)
    args = parser.parse_args()
    if args.cmd == "make":
        noisy = make_noisy(pd.read_csv(args.dev, dtype=str), seed=args.seed)
        noisy.to_csv(args.out, index=False)
        print(f"wrote {len(noisy)} noisy titles to {args.out}")
        return
    result = evaluate(args.dev, args.noisy, sample=args.sample, seed=args.seed)
    if args.out:
        args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
