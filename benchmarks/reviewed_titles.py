"""Issue 18, done-when (b): do reviewed titles come back as answered, and do other titles improve?

Real O*NET titles (the project's dev split of real-world titles, held out of the taxonomy at
import; ``autocoder.evaluate.realdev.clean_dev`` splits them into a fit and a dev half):

1. code a sample of the fit half with the packaged model at ``--target-precision``;
2. take ``--reviewed`` of its records that were *not* coded (the review queue), answer each
   with its first gold code and store the answers as coded examples (source
   ``review:simulated``: what ``autocoder review pull`` stores for answered tasks);
3. code the reviewed titles again: the share coded as answered, and with status ``coded``;
4. code the dev half (other titles) before and after: top-1, top-5, ECE, share ``coded`` and
   its precision.

With ``--retrain`` the answers also go to ``autocoder retrain`` as pulled feedback (project
``simulated``; the store's other examples join as training rows), and the retrained model is
calibrated (``autocoder calibrate``) on the fit halves of benchmarks/trust.py's three dev sets,
the reviewed titles left out; "after" is then that model with the examples voting.

    export HF_HUB_OFFLINE=1 AUTOCODER_HOME=$BENCH/trust/home PYTHONPATH=$PWD
    # the workspace of benchmarks/trust.py (taxonomy imported with --holdout, default index)
    python benchmarks/reviewed_titles.py --dev $BENCH/trust/dev.csv --out $BENCH/reviewed
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from autocoder import api
from autocoder.config import load_settings
from autocoder.evaluate import realdev
from autocoder.examples.ops import add_rows, frame_rows
from autocoder.examples.store import AddSpec, ExampleStore
from autocoder.metrics import expected_calibration_error
from autocoder.taxonomy.store import load_taxonomy
from autocoder.workspace import Workspace

SOURCE = "review:simulated"


def code_rows(settings: Any, ws: Workspace, rows: pd.DataFrame, out: Path, target: float,
              model: str = "pretrained") -> pd.DataFrame:  # fmt: skip
    """Code ``rows`` (id, title) with ``model``; the output joined to the input."""
    inp = out.with_suffix(".in.csv")
    rows[["id", "title"]].to_csv(inp, index=False)
    api.code(settings, ws, inp, out, model_dir=model, target_precision=target,
             show_progress=False)  # fmt: skip
    coded = pd.read_csv(out, dtype=str, keep_default_na=False)
    return rows.merge(coded.drop(columns=["title"], errors="ignore"), on="id", how="left")


def figures(df: pd.DataFrame) -> dict[str, Any]:
    gold = realdev.gold_sets(df)
    top1 = np.asarray([c in g for c, g in zip(df["code_1"], gold, strict=True)])
    top5 = np.asarray(
        [any(df[f"code_{k}"].iloc[i] in g for k in range(1, 6)) for i, g in enumerate(gold)]
    )
    conf = df["confidence"].replace("", "0").astype(float).to_numpy()
    coded = (df["status"] == "coded").to_numpy()
    return {
        "n": len(df),
        "top1": float(top1.mean()),
        "top5": float(top5.mean()),
        "ece": float(expected_calibration_error(conf, top1)),
        "coded": float(coded.mean()),
        "coded_precision": float(top1[coded].mean()) if coded.any() else float("nan"),
        "partial": float((df["status"] == "partial").mean()),
    }


def calibration_titles(args: Any, left_out: set[str]) -> Path:
    """The fit halves of benchmarks/trust.py's dev sets (1,000 rows each, seed 13) as a
    ``title, codes`` table, the normalised titles ``left_out`` dropped."""
    import sys

    from autocoder.records import normalize_text

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import trust  # the benchmark's dev sets (clean, messy, posting)

    sets = trust.datasets(args.dev, per_part=1000, seed=13)
    fit = pd.concat([df[(df["part"] == realdev.FIT) & ~df["title"].map(normalize_text).isin(left_out)]
                     for df in sets.values()])  # fmt: skip
    path = args.out / f"calibration_titles_{len(left_out)}.csv"
    fit[["title", "codes"]].to_csv(path, index=False)
    return path


def retrain_and_calibrate(
    settings: Any, ws: Workspace, answers: pd.DataFrame, args: Any
) -> tuple[str, dict[str, Any]]:
    """``retrain --model pretrained`` on the answers as pulled feedback, then ``calibrate`` the
    new model on the fit halves of the trust benchmark's sets, the reviewed titles left out."""
    from autocoder.records import normalize_text
    from autocoder.review.retrain import retrain

    feedback = pd.DataFrame({"project": "simulated", "id": answers["id"], "title": answers["title"],
                             "description": "", "code": answers["code"],
                             "created_at": "2026-12-03T00:00:00"})  # fmt: skip
    out_dir = args.out / "retrained"
    shutil.rmtree(out_dir, ignore_errors=True)
    result = retrain(args.model, out_dir, feedback, workspace=ws, settings=settings,
                     epochs=args.epochs, feedback_weight=args.feedback_weight,
                     cache_dir=ws.embedding_cache)  # fmt: skip
    print("retrain:", json.dumps({"before": result.before, "after": result.after}), flush=True)
    cal_file = calibration_titles(args, set(answers["title"].map(normalize_text)))
    cal = api.calibrate(settings, ws, out_dir, [cal_file])
    print("calibrate:", json.dumps(cal["thresholds"]["0.95"]), flush=True)
    return str(out_dir), {"retrain": {"before": result.before, "after": result.after,
                                      "examples": result.examples},
                          "calibration_rows": cal["rows"], "thresholds_0.95": cal["thresholds"]["0.95"]}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dev", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--queue-sample", type=int, default=1500)
    ap.add_argument("--reviewed", type=int, default=400)
    ap.add_argument("--others", type=int, default=1000)
    ap.add_argument("--target", type=float, default=0.95)
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--set", action="append", default=[], help="section.key=value override")
    ap.add_argument(
        "--model",
        default="pretrained",
        help="the model reviewed from (one without a calibration is calibrated first)",
    )
    ap.add_argument("--retrain", action="store_true", help="retrain and calibrate on the answers")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--feedback-weight", type=float, default=5.0)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    settings, ws = load_settings(overrides=args.set), Workspace.resolve()
    store = ExampleStore.of(ws, "onet")
    if store.remove_source(SOURCE):
        print(f"removed the earlier {SOURCE} examples")
    table = realdev.clean_dev(args.dev)
    fit_part = table[table["part"] == realdev.FIT]
    fit = fit_part.sample(min(args.queue_sample, len(fit_part)), random_state=args.seed)
    data = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
    messy = realdev.jobbert_onet(
        data / "jobbert_validation" / "titles.csv",
        data / "esco_onet_crosswalk" / "crosswalk_esco_onet.csv",
    )
    others = {
        name: t[t["part"] == realdev.DEV].sample(args.others, random_state=args.seed)
        for name, t in (("clean", table), ("messy", messy))
    }

    if args.model != "pretrained" and not (Path(args.model) / "calibration.json").is_file():
        print("calibrate:", api.calibrate(settings, ws, args.model,
                                          [calibration_titles(args, set())])["rows"])  # fmt: skip
    before_fit = code_rows(settings, ws, fit, args.out / "queue.csv", args.target, args.model)
    before = {k: code_rows(settings, ws, v, args.out / f"{k}_before.csv", args.target, args.model)
              for k, v in others.items()}  # fmt: skip
    queue = before_fit[before_fit["status"] != "coded"].head(args.reviewed)
    answers = queue.assign(code=[c.split(";")[0].strip() for c in queue["codes"]],
                           annotator="simulated")  # fmt: skip
    report = add_rows(
        store,
        load_taxonomy(ws, "onet"),
        frame_rows(answers[["title", "code", "annotator"]], AddSpec("code"), source=SOURCE,
                   file="simulated answers"),
    )  # fmt: skip
    print(f"stored {report.added} answers of {len(queue)} reviewed titles")
    again = code_rows(settings, ws, queue.drop(columns=[c for c in before_fit.columns
                                                         if c not in table.columns]),
                      args.out / "reviewed_again.csv", args.target, args.model)  # fmt: skip
    wanted = [c.split(";")[0].strip() for c in again["codes"]]
    as_answered = np.asarray([c == w for c, w in zip(again["code_1"], wanted, strict=True)])
    model, retrained = args.model, None
    if args.retrain:
        model, retrained = retrain_and_calibrate(settings, ws, answers, args)
        again = code_rows(settings, ws, queue.drop(columns=[c for c in before_fit.columns
                                                             if c not in table.columns]),
                          args.out / "reviewed_again_retrained.csv", args.target, model)  # fmt: skip
        as_answered = np.asarray([c == w for c, w in zip(again["code_1"], wanted, strict=True)])
    after = {k: code_rows(settings, ws, v, args.out / f"{k}_after.csv", args.target, model)
             for k, v in others.items()}  # fmt: skip
    results = {
        "reviewed": len(queue),
        "stored": report.added,
        "reviewed_before_coded_as_answered": float(
            np.mean([c == w for c, w in zip(queue["code_1"], wanted, strict=True)])
        ),
        "reviewed_again_as_answered": float(as_answered.mean()),
        "reviewed_again_as_answered_and_coded": float(
            (as_answered & (again["status"] == "coded").to_numpy()).mean()
        ),
        "others": {k: {"before": figures(before[k]), "after": figures(after[k])} for k in others},
        "target_precision": args.target,
        "settings_overrides": list(args.set),
        "retrained": retrained,
    }
    store.remove_source(SOURCE)  # leave the workspace as it was
    (args.out / "reviewed.json").write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))
    print("| other titles | top-1 | top-5 | ECE | coded (precision) |\n|---|---|---|---|---|")
    for k, both in results["others"].items():
        for name, f in both.items():
            print(f"| {k} {name} (n={f['n']}) | {f['top1']:.3f} | {f['top5']:.3f} "
                  f"| {f['ece']:.3f} | {100 * f['coded']:.0f} % ({f['coded_precision']:.3f}) |")  # fmt: skip


if __name__ == "__main__":
    main()
