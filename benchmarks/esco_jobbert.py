"""Retrieval baseline on ESCO: real vacancy titles (JobBERT validation set) → ESCO occupations.

Imports the ESCO v1.1.1 CSV export, builds the Chroma index, codes the vacancy titles with
`autocoder code` (the same plain functions), evaluates with `autocoder eval` and prints the
headline metrics, including accuracy at the ISCO-08 levels.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/esco_jobbert.py --home /tmp/ac-esco --out /tmp/ac-esco-report
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import pandas as pd

from autocoder import api
from autocoder.config import load_settings
from autocoder.evaluate import run_eval
from autocoder.taxonomy.store import load_taxonomy
from autocoder.workspace import Workspace

REPO = Path(__file__).resolve().parent.parent
DATA = REPO.parent / "shared" / "data"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--esco", default=str(DATA / "esco_v1.1.1"))
    ap.add_argument("--titles", default=str(DATA / "jobbert_validation" / "titles.csv"))
    ap.add_argument("--home", default="/tmp/ac-esco")
    ap.add_argument("--out", default="/tmp/ac-esco-report")
    ap.add_argument("--limit", type=int, default=0, help="Code only the first N titles (0 = all).")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    ws = Workspace.resolve(args.home)
    settings = load_settings(overrides=['taxonomy.default="esco"'])

    print(json.dumps(api.import_taxonomy("esco", args.esco, ws).__dict__, default=str))
    tax = load_taxonomy(ws, "esco")
    t0 = time.perf_counter()
    _, n_docs = api.build_index(settings, ws, "esco")
    print(f"indexed {n_docs} ESCO texts in {time.perf_counter() - t0:.0f} s")

    raw = pd.read_csv(args.titles, dtype=str, keep_default_na=False)
    known = raw["conceptUri"].map(tax.has_uri)
    # JobBERT was tagged with ESCO v1.0; a few of its occupations are not in v1.1.1
    print(f"{int((~known).sum())} of {len(raw)} titles dropped: occupation URI not in ESCO {tax.version}")
    raw = raw[known]
    if args.limit:
        raw = raw.head(args.limit)
    records = pd.DataFrame(
        {"id": [f"jb-{i}" for i in raw.iloc[:, 0]], "title": raw["vacancyTitle"]}
    )
    gold = pd.DataFrame(
        {"id": records["id"], "codes": [tax.by_uri(u).code for u in raw["conceptUri"]]}
    )
    records.to_csv(out / "titles.csv", index=False)
    gold.to_csv(out / "gold.csv", index=False)

    t0 = time.perf_counter()
    summary = api.code(settings, ws, out / "titles.csv", out / "pred.csv", taxonomy_name="esco")
    seconds = time.perf_counter() - t0
    result = run_eval(out / "gold.csv", out / "pred.csv", out / "report", taxonomy=tax)
    m = result.metrics
    print(f"coded {summary.rows} titles in {seconds:.0f} s ({summary.rows / seconds:.0f} rec/s)")
    for key in ("top1_accuracy", "top3_accuracy", "top5_accuracy", "mrr", "macro_accuracy", "ece"):
        print(f"{key}: {m[key]:.4f}")
    print("level accuracy:", json.dumps(m["level_accuracy"]))
    print(f"report: {out / 'report' / 'report.md'}")


if __name__ == "__main__":
    main()
