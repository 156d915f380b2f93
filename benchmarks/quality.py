"""Coding quality on the O*NET dev split (issue 10): what each training source and model change adds.

Each variant is ``autocoder train`` (``train_from_recipe``) with recipe overrides, refit off (the
dev figures are those of the model before any refit), scored on the 2,520 real-world dev titles
held out at import (clean, and with posting noise appended, both through the title normaliser
as ``autocoder code`` does): top-1/3/5, macro top-1, top-1 on rare codes (dev titles whose
code has <= 20 titles in the training taxonomy), ECE, training minutes and records/s at coding
time (dev titles, embedding cache off). Rows marked "+ retrieval" are the model mixed with
retrieval's probabilities (``autocoder.coding.mixture``) as ``autocoder train`` fits the mixture
(weight and temperature on the dev titles, figures cross-fitted over two halves of the dev
split, ``autocoder.coding.mixture``); the retrieval row is the index alone.

Setup (the workspace of ``benchmarks/baseline.sh``: taxonomy imported with ``--holdout``, index
built)::

    export HF_HUB_OFFLINE=1 AUTOCODER_HOME=/tmp/autocoder-bench/home
    nice -n 5 .venv/bin/python benchmarks/quality.py --out /tmp/autocoder-bench/quality \\
        [--variants taxonomy,bls,esco,both,both_mix]

Writes ``quality.json`` and prints a Markdown table. Embeddings are cached in the workspace,
so variants after the first cost mostly the network's training.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from autocoder.classify.model import load_model
from autocoder.classify.recipe import train_from_recipe
from autocoder.coding.loaded import retrieval_coder
from autocoder.coding.mixture import CombinedPredictor, mix
from autocoder.config import load_settings
from autocoder.devsplit import dev_gold, dev_inputs, score_proba
from autocoder.taxonomy.store import load_taxonomy
from autocoder.workspace import Workspace

NO_SOURCES: dict[str, Any] = {"data.sources": []}
VARIANTS: dict[str, dict[str, Any]] = {
    "taxonomy": {**NO_SOURCES, "finetune.enabled": False},
    "bls": {"data.sources": ["bls"], "finetune.enabled": False},
    "esco": {"data.sources": ["esco_crosswalk"], "finetune.enabled": False},
    "both": {"data.sources": ["bls", "esco_crosswalk"], "finetune.enabled": False},
    "both_ft": {"data.sources": ["bls", "esco_crosswalk"], "finetune.enabled": True},
}
RARE_MAX_TITLES = 20


def rare_mask(dev: pd.DataFrame, taxonomy: Any) -> np.ndarray:
    """Dev rows whose (first) code has at most RARE_MAX_TITLES titles in the taxonomy."""
    n_titles = {c.code: 1 + len(c.alt_titles) + len(c.reported_titles) for c in taxonomy.leaves()}
    first = [str(c).split(";")[0] for c in dev["codes"]]
    return np.asarray([n_titles.get(c, 0) <= RARE_MAX_TITLES for c in first])


def figures(proba: dict[str, np.ndarray], classes: Any, gold: list, rare: np.ndarray) -> dict:
    out: dict[str, Any] = {}
    for name, P in proba.items():
        out[name] = score_proba(P, classes, gold)
        rare_gold = [g for g, r in zip(gold, rare, strict=True) if r]
        out[name]["rare_top1"] = score_proba(P[rare], classes, rare_gold)["top1"]
    return out


def records_per_second(model: Any, records: list) -> float:
    start = time.perf_counter()
    model.predict_proba(records)
    return round(len(records) / (time.perf_counter() - start), 1)


def run_variant(name: str, out: Path, ws: Workspace, settings: Any, ctx: dict) -> list[dict]:
    overrides = {**VARIANTS[name], "train.refit": False}
    start = time.perf_counter()
    model_dir = train_from_recipe(
        None, out / name, settings=settings, workspace=ws, overrides=overrides,
        retrieval=ctx["retrieval"],
    )  # fmt: skip
    minutes = round((time.perf_counter() - start) / 60, 1)
    model = load_model(model_dir, cache_dir=None)
    inputs, gold, rare = ctx["inputs"], ctx["gold"], ctx["rare"]
    proba = {k: np.asarray(model.predict_proba(v)) for k, v in inputs.items()}
    rows = [
        {
            "config": name,
            "train_minutes": minutes,
            "records_per_s": records_per_second(model, inputs["clean"]),
            **figures(proba, model.classes_, gold, rare),
        }
    ]
    meta = model.metadata_
    if "dev_combined" in meta:
        w, t = meta["combine"]["retrieval_weight"], meta["combine"]["temperature"]
        cols = CombinedPredictor(model, ctx["retrieval"], retrieval_weight=1.0).fit()
        mixed = {  # the shipped parameters, for the rare-code column
            k: mix(proba[k], ctx["ret_proba"][k][:, cols.retrieval_columns_], w, t) for k in proba
        }
        row = {"config": f"{name} + retrieval (w={w}, T={t:.2f})", "train_minutes": minutes}
        row |= {k: dict(meta["dev_combined"][k]) for k in ("clean", "noisy")}  # cross-fitted
        for k in ("clean", "noisy"):
            rare_gold = [g for g, r in zip(gold, rare, strict=True) if r]
            row[k]["rare_top1"] = score_proba(mixed[k][rare], model.classes_, rare_gold)["top1"]
        rows.append(row)
    return rows


def table(rows: list[dict]) -> str:
    head = "| configuration | set | top-1 | top-3 | top-5 | macro | rare top-1 | ECE | train min | rec/s |"
    lines = [head, "|" + "---|" * 10]
    for r in rows:
        for s in ("clean", "noisy"):
            f = r[s]
            lines.append(
                f"| {r['config']} | {s} | {f['top1']:.3f} | {f['top3']:.3f} | {f['top5']:.3f} "
                f"| {f['macro_top1']:.3f} | {f['rare_top1']:.3f} | {f['ece']:.3f} "
                f"| {r.get('train_minutes', '–')} | {r.get('records_per_s', '–')} |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--variants", default="taxonomy,bls,esco,both")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    args.out.mkdir(parents=True, exist_ok=True)
    settings, ws = load_settings(), Workspace.resolve()
    taxonomy = load_taxonomy(ws, "onet")
    if not taxonomy.holdout_file:
        raise SystemExit("import the taxonomy with --holdout DEV (benchmarks/baseline.sh)")
    dev = pd.read_csv(taxonomy.holdout_file, dtype=str)
    retrieval = retrieval_coder(settings, ws, taxonomy)
    inputs = dev_inputs(dev)
    ctx = {"inputs": inputs, "gold": dev_gold(dev), "rare": rare_mask(dev, taxonomy)}
    ctx |= {"retrieval": retrieval}
    ctx["ret_proba"] = {k: np.asarray(retrieval.predict_proba(v)) for k, v in inputs.items()}
    rows = [
        {
            "config": "retrieval",
            **figures(ctx["ret_proba"], retrieval.classes_, ctx["gold"], ctx["rare"]),
        }
    ]
    for name in args.variants.split(","):
        rows += run_variant(name, args.out, ws, settings, ctx)
        (args.out / "quality.json").write_text(json.dumps(rows, indent=2))
        print(table(rows), flush=True)


if __name__ == "__main__":
    main()
