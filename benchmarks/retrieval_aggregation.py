"""Retrieval alone: ``max`` aggregation (a code is as good as its best code text) against soft
voting (``softmax_sum``: every retrieved text votes exp(sim / T); a code's probability is its
share of the vote), on the issue 19 dev sets (benchmarks/trust.py: clean O*NET titles held out
of the index, JobBERT vacancy titles through the crosswalk, and those with a real employer
appended). Titles go through ``titles.clean_title`` (no segment choice). The temperature is
chosen on the fit halves; the dev halves are the held-out figures.

    export HF_HUB_OFFLINE=1 AUTOCODER_HOME=$BENCH/trust/home PYTHONPATH=$PWD
    python benchmarks/retrieval_aggregation.py --dev $BENCH/trust/dev.csv
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import trust as B  # benchmarks/ is on sys.path when run as a script

from autocoder.coding.loaded import retrieval_coder
from autocoder.config import load_settings
from autocoder.evaluate import realdev
from autocoder.index import index_in_use
from autocoder.metrics import expected_calibration_error
from autocoder.records import JobRecord
from autocoder.taxonomy.store import load_taxonomy
from autocoder.titles import clean_title
from autocoder.workspace import Workspace

SETTINGS = (("max", 0.05), ("softmax_sum", 0.05), ("softmax_sum", 0.07), ("softmax_sum", 0.1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dev", type=Path, required=True, help="autocoder dev-split output")
    ap.add_argument("--per-part", type=int, default=1000)
    args = ap.parse_args()
    ws = Workspace.resolve()
    sets = B.datasets(args.dev, per_part=args.per_part, seed=13)
    print("| set | half | aggregation @ T | top-1 | top-5 | ECE | coded at 0.5 (precision) |")
    print("|---|---|---|---|---|---|---|")
    with index_in_use(ws):
        for name, df in sets.items():
            for half in (realdev.FIT, realdev.DEV):
                part = df[df["part"] == half]
                gold = realdev.gold_sets(part)
                records = [JobRecord(clean_title(t)) for t in part["title"]]
                for aggregation, temperature in SETTINGS:
                    settings = load_settings(overrides=[f'index.aggregation="{aggregation}"',
                                                        f"index.temperature={temperature}"])  # fmt: skip
                    coder = retrieval_coder(settings, ws, load_taxonomy(ws, "onet"))
                    codes, probs, _ = coder.rank(records)
                    hit = np.array(
                        [bool(c) and c[0] in g for c, g in zip(codes, gold, strict=True)]
                    )
                    top5 = np.mean(
                        [bool(set(c[:5]) & set(g)) for c, g in zip(codes, gold, strict=True)]
                    )
                    conf = np.array([float(p[0]) if len(p) else 0.0 for p in probs])
                    coded = conf >= 0.5
                    print(f"| {name} | {half} | {aggregation} @ {temperature:g} | {hit.mean():.3f} | "
                          f"{top5:.3f} | {expected_calibration_error(conf, hit):.3f} | "
                          f"{coded.mean():.0%} ({hit[coded].mean() if coded.any() else float('nan'):.3f}) |",
                          flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
