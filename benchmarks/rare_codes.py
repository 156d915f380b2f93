"""Accuracy on dev titles of rare codes: codes with few titles left in the (held-out) taxonomy.

    .venv/bin/python benchmarks/rare_codes.py --home /tmp/autocoder-bench/home \\
        --gold /tmp/autocoder-bench/dev.csv \\
        --pred retrieval=/tmp/autocoder-bench/dev_pred.csv --pred model=/tmp/autocoder-bench/dev_model.csv
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd

from autocoder.taxonomy.store import load_taxonomy
from autocoder.workspace import Workspace


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--home", required=True, help="Workspace whose taxonomy has the dev holdout.")
    ap.add_argument("--taxonomy", default="onet")
    ap.add_argument("--gold", required=True)
    ap.add_argument("--pred", action="append", required=True, help="NAME=coder output file")
    ap.add_argument("--max-titles", type=int, nargs="+", default=[10, 20, 40])
    args = ap.parse_args()
    tax = load_taxonomy(Workspace.resolve(args.home), args.taxonomy)
    n_titles = {c.code: 1 + len(c.alt_titles) + len(c.reported_titles) for c in tax.leaves()}
    dev = pd.read_csv(args.gold, dtype=str, keep_default_na=False)
    gold = [c.split(";") for c in dev["codes"]]
    fewest = np.array([min(n_titles.get(c, 0) for c in g) for g in gold])
    print(
        "| coder | " + " | ".join(f"≤ {n} titles: top-1 (n)" for n in args.max_titles) + " | all |"
    )
    print("|---" * (len(args.max_titles) + 2) + "|")
    for spec in args.pred:
        name, path = spec.split("=", 1)
        pred = pd.read_csv(path, dtype=str, keep_default_na=False).set_index("id").loc[dev["id"]]
        hit = np.array([p in g for p, g in zip(pred["code_1"], gold, strict=True)])
        cells = [
            f"{hit[fewest <= n].mean():.3f} ({int((fewest <= n).sum())})" for n in args.max_titles
        ]
        print(f"| {name} | " + " | ".join(cells) + f" | {hit.mean():.3f} |")


if __name__ == "__main__":
    main()
