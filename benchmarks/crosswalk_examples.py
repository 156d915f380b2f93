"""Do real vacancy titles coded through a crosswalk teach an O*NET coder? (issue 19 note)

The ``messy`` fit half (JobBERT validation vacancy titles, their ESCO occupation mapped to
O*NET-SOC through the official crosswalk; :func:`autocoder.evaluate.realdev.jobbert_onet`) is
stored as coded examples of the O*NET taxonomy, one row per linked O*NET code, weight 1 / the
number of linked codes (source ``crosswalk:jobbert``). The packaged model at
``--target-precision`` then codes the **dev** halves of ``benchmarks/trust.py``'s three sets (1,000 rows each): clean
(O*NET real-world titles held out of the taxonomy at import), messy (JobBERT titles never
stored: the halves are split by normalised title) and posting (those messy titles followed by a
real employer), before and after. The examples are removed again at the end. ``--set`` changes
the ``[examples]`` vote settings (e.g. those ``examples fit`` chooses for a large history).

    export HF_HUB_OFFLINE=1 AUTOCODER_HOME=$BENCH/trust/home PYTHONPATH=$PWD
    # the workspace of benchmarks/trust.py (taxonomy imported with --holdout, default index)
    python benchmarks/crosswalk_examples.py --dev $BENCH/trust/dev.csv --out $BENCH/xwalk \
        [--set examples.min_similarity=0.0 --set examples.weight=0.7]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd

from autocoder.config import load_settings
from autocoder.evaluate import realdev
from autocoder.examples.ops import add_rows, frame_rows
from autocoder.examples.store import AddSpec, ExampleStore
from autocoder.taxonomy.store import load_taxonomy
from autocoder.workspace import Workspace

sys.path.insert(0, str(Path(__file__).resolve().parent))
from reviewed_titles import code_rows, figures  # noqa: E402  (the same coding and figures)
from trust import datasets  # noqa: E402  (the issue 19 dev sets)

SOURCE = "crosswalk:jobbert"
DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"


def crosswalk_rows(messy: pd.DataFrame) -> pd.DataFrame:
    """One ``title, code, weight`` row per linked O*NET code of each fit-half title."""
    rows = [
        {"title": title, "code": code, "weight": 1.0 / len(codes)}
        for title, joined in zip(messy["title"], messy["codes"], strict=True)
        for codes in [[c for c in joined.split(";") if c]]
        for code in codes
    ]
    return pd.DataFrame(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dev", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--per-set", type=int, default=1000)
    ap.add_argument("--set", action="append", default=[], help="section.key=value override")
    ap.add_argument("--target", type=float, default=0.95)
    ap.add_argument("--seed", type=int, default=13)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    settings, ws = load_settings(overrides=args.set), Workspace.resolve()
    store = ExampleStore.of(ws, "onet")
    store.remove_source(SOURCE)
    messy = realdev.jobbert_onet(
        DATA / "jobbert_validation" / "titles.csv",
        DATA / "esco_onet_crosswalk" / "crosswalk_esco_onet.csv",
    )
    sets = {name: t[t["part"] == realdev.DEV]
            for name, t in datasets(args.dev, per_part=args.per_set, seed=args.seed).items()}  # fmt: skip
    before = {k: figures(code_rows(settings, ws, v, args.out / f"{k}_before.csv", args.target))
              for k, v in sets.items()}  # fmt: skip
    examples = crosswalk_rows(messy[messy["part"] == realdev.FIT])
    rows = frame_rows(examples, AddSpec("code"), source=SOURCE, file="jobbert fit half")
    rows["weight"] = examples["weight"].to_numpy()
    report = add_rows(store, load_taxonomy(ws, "onet"), rows)
    print(f"stored {report.added} of {report.rows} rows ({len(report.rejected)} rejected)")
    try:
        after = {k: figures(code_rows(settings, ws, v, args.out / f"{k}_after.csv", args.target))
                 for k, v in sets.items()}  # fmt: skip
    finally:
        store.remove_source(SOURCE)  # leave the workspace as it was
    results = {"stored": report.added, "target_precision": args.target, "overrides": args.set,
               "sets": {k: {"before": before[k], "after": after[k]} for k in sets}}  # fmt: skip
    (args.out / "crosswalk_examples.json").write_text(json.dumps(results, indent=2))
    for k in sets:
        for when, f in (("before", before[k]), ("after", after[k])):
            print(f"{k:7s} {when:6s} top-1 {f['top1']:.3f} top-5 {f['top5']:.3f} ECE {f['ece']:.3f} "
                  f"coded {f['coded']:.1%} ({f['coded_precision']:.3f}) partial {f['partial']:.1%}")  # fmt: skip


if __name__ == "__main__":
    main()
