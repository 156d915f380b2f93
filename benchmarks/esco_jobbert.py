"""ESCO on real vacancy titles (JobBERT validation set): retrieval and the trained ESCO model.

Imports the ESCO v1.1.1 CSV export, codes the vacancy titles with `autocoder code` (the same
plain functions) by retrieval (builds the Chroma index) and/or with trained models, evaluates
with `autocoder eval` and prints the headline metrics, including accuracy at the ISCO-08 levels.

    # retrieval baseline
    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/esco_jobbert.py --home /tmp/ac-esco --out /tmp/ac-esco-report
    # train the packaged ESCO recipe (`autocoder train --recipe esco`), then evaluate it
    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/esco_jobbert.py --no-retrieval --train /tmp/ac-esco-model
    # a variant: recipe keys overridden (dotted key = TOML value)
    ... --train /tmp/m512 --recipe-set model.hidden=512 --recipe-set 'data.sources=[]'
    # an existing model directory
    ... --no-retrieval --model /tmp/ac-esco-model

Training records wall-clock and CPU minutes (the machine may be shared: CPU minutes divided by
the cores used is the unshared time).
"""

from __future__ import annotations

import argparse
import json
import resource
import time
import tomllib
from pathlib import Path
from typing import Any

import pandas as pd

from autocoder import api
from autocoder.config import Settings, load_settings
from autocoder.evaluate import run_eval
from autocoder.taxonomy.model import Taxonomy
from autocoder.taxonomy.store import load_taxonomy
from autocoder.workspace import Workspace

REPO = Path(__file__).resolve().parent.parent
DATA = REPO.parent / "shared" / "data"
KEYS = ("top1_accuracy", "top3_accuracy", "top5_accuracy", "mrr", "macro_accuracy", "ece")


def _cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    return own.ru_utime + own.ru_stime


def prepare_titles(titles_csv: str | Path, tax: Taxonomy, out: Path, limit: int = 0) -> Path:
    """Write ``titles.csv`` (id, title) and ``gold.csv`` (id, codes) under ``out``; returns
    the gold path. Titles whose occupation URI is not in this ESCO version are dropped."""
    raw = pd.read_csv(titles_csv, dtype=str, keep_default_na=False)
    known = raw["conceptUri"].map(tax.has_uri)
    # JobBERT was tagged with ESCO v1.0; a few of its occupations are not in v1.1.1
    print(
        f"{int((~known).sum())} of {len(raw)} titles dropped: occupation URI not in ESCO {tax.version}"
    )
    raw = raw[known]
    if limit:
        raw = raw.head(limit)
    records = pd.DataFrame(
        {"id": [f"jb-{i}" for i in raw.iloc[:, 0]], "title": raw["vacancyTitle"]}
    )
    gold = pd.DataFrame(
        {"id": records["id"], "codes": [tax.by_uri(u).code for u in raw["conceptUri"]]}
    )
    records.to_csv(out / "titles.csv", index=False)
    gold.to_csv(out / "gold.csv", index=False)
    return out / "gold.csv"


def evaluate(
    settings: Settings, ws: Workspace, tax: Taxonomy, out: Path, name: str, model: str | None
) -> dict[str, Any]:
    """Code the titles (retrieval when ``model`` is None), evaluate, print and return figures."""
    t0 = time.perf_counter()
    pred = out / f"pred-{name}.csv"
    summary = api.code(
        settings,
        ws,
        out / "titles.csv",
        pred,
        taxonomy_name="esco",
        model_dir=model,
        show_progress=False,
    )
    seconds = time.perf_counter() - t0
    result = run_eval(out / "gold.csv", pred, out / f"report-{name}", taxonomy=tax)
    m = result.metrics
    print(
        f"[{name}] coded {summary.rows} titles in {seconds:.0f} s ({summary.rows / seconds:.0f} rec/s)"
    )
    figures = {key: round(float(m[key]), 4) for key in KEYS}
    for key, value in figures.items():
        print(f"[{name}] {key}: {value:.4f}")
    print(f"[{name}] level accuracy:", json.dumps(m["level_accuracy"]))
    uris = pd.read_csv(pred, dtype=str, nrows=5).filter(like="uri_").columns.tolist()
    print(f"[{name}] URI columns: {uris}")
    return {"name": name, **figures, "rec_per_s": round(summary.rows / seconds, 1)}


def train(
    settings: Settings, ws: Workspace, output: str, recipe: str, sets: list[str]
) -> dict[str, Any]:
    """Train ``recipe`` (a packaged name or a file) with dotted-key overrides into ``output``."""
    from autocoder.classify.recipe import train_from_recipe

    overrides = {
        k.strip(): tomllib.loads(f"v = {v}")["v"] for k, v in (s.split("=", 1) for s in sets)
    }
    t0, c0 = time.perf_counter(), _cpu_seconds()
    train_from_recipe(recipe, output, settings=settings, workspace=ws, overrides=overrides)
    info = {
        "train_min": round((time.perf_counter() - t0) / 60, 1),
        "train_cpu_min": round((_cpu_seconds() - c0) / 60, 1),
        "overrides": overrides,
    }
    print(f"trained {recipe} into {output}: {json.dumps(info)}")
    return info


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--esco", default=str(DATA / "esco_v1.1.1"))
    ap.add_argument("--titles", default=str(DATA / "jobbert_validation" / "titles.csv"))
    ap.add_argument("--home", default="/tmp/ac-esco")
    ap.add_argument("--out", default="/tmp/ac-esco-report")
    ap.add_argument("--limit", type=int, default=0, help="Code only the first N titles (0 = all).")
    ap.add_argument("--no-retrieval", action="store_true", help="Skip the retrieval baseline.")
    ap.add_argument("--model", action="append", default=[], help="Evaluate a model directory.")
    ap.add_argument("--train", default="", help="Train the recipe into this directory first.")
    ap.add_argument("--recipe", default="esco", help="Recipe name or file for --train.")
    ap.add_argument("--recipe-set", action="append", default=[], help="key=value override.")
    ap.add_argument(
        "--set",
        action="append",
        default=[],
        dest="overrides",
        help="A config override (e.g. index.aggregation=...).",
    )
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    ws = Workspace.resolve(args.home)
    settings = load_settings(overrides=['taxonomy.default="esco"', *args.overrides])

    print(json.dumps(api.import_taxonomy("esco", args.esco, ws).__dict__, default=str))
    tax = load_taxonomy(ws, "esco")
    prepare_titles(args.titles, tax, out, args.limit)
    rows = []
    if not args.no_retrieval:
        t0 = time.perf_counter()
        _, n_docs = api.build_index(settings, ws, "esco")
        print(f"indexed {n_docs} ESCO texts in {time.perf_counter() - t0:.0f} s")
        rows.append(evaluate(settings, ws, tax, out, "retrieval", None))
    models = list(args.model)
    if args.train:
        info = train(settings, ws, args.train, args.recipe, args.recipe_set)
        models.append(args.train)
    for model in models:
        row = evaluate(settings, ws, tax, out, Path(model).name, model)
        rows.append(row | (info if args.train and model == args.train else {}))
    with (out / "results.jsonl").open("a") as fh:
        for row in rows:
            fh.write(json.dumps(row, default=str) + "\n")
    print(f"reports: {out}/report-*/report.md; figures appended to {out / 'results.jsonl'}")


if __name__ == "__main__":
    main()
