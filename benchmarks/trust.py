"""Issue 19: real posting titles, calibrated confidence, target precision, partial codes.

Dev sets (``autocoder.evaluate.realdev``), each split by a seeded hash into a ``fit`` half (the
calibrators and thresholds are fitted on it) and a ``dev`` half (every figure below):

* ``clean``: the project's dev split of O*NET real-world titles (``autocoder dev-split``),
  held out of the index at import. NB: the packaged classifier was refit on these titles, so
  its figures on them are optimistic (retrieval has not seen them);
* ``messy``: JobBERT validation vacancy titles with O*NET codes through the ESCO crosswalk;
* ``posting``: the ``messy`` titles written as real postings are ("title, employer"): each
  followed by the employer part of a real title from ``tgre_posting_titles`` (composed from
  real strings; the TGRE titles themselves are unlabeled).

"before" is today's path (``titles.clean_title``, the mixture's top probability as confidence,
threshold 0.5); "after" codes the segment chosen against the index (``autocoder.segments``)
and calibrates per level (``autocoder.coding.trust``).

    export HF_HUB_OFFLINE=1 AUTOCODER_HOME=/tmp/trust/home
    autocoder dev-split ../shared/data/onet_29.2 -o /tmp/trust/dev.csv
    autocoder taxonomy import onet ../shared/data/onet_29.2 --holdout /tmp/trust/dev.csv
    K='index.kinds=["title","reported_title"]'   # the index measured (2 shared CPU cores)
    autocoder --set "$K" index build
    python benchmarks/trust.py --set "$K" --dev /tmp/trust/dev.csv --out /tmp/trust/out \\
        [--save autocoder/pretrained/onet-29.2]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from autocoder.coding import trust as tr
from autocoder.coding import trust_fit as tf
from autocoder.coding.loaded import PRETRAINED, load_coder
from autocoder.config import load_settings
from autocoder.evaluate import realdev
from autocoder.index import index_in_use
from autocoder.metrics import expected_calibration_error
from autocoder.records import JobRecord
from autocoder.taxonomy.store import load_taxonomy
from autocoder.titles import clean_title
from autocoder.workspace import Workspace

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
TARGETS = (0.95, 0.9)


def employers(tgre_csv: Path) -> list[str]:
    """The employer part (after the last comma) of each real TGRE title."""
    titles = pd.read_csv(tgre_csv)["sentence"].astype(str)
    return sorted({t.rsplit(",", 1)[1].strip() for t in titles if "," in t} - {""})


def datasets(dev_csv: Path, *, per_part: int, seed: int) -> dict[str, pd.DataFrame]:
    """The three dev sets (each at most ``per_part`` rows per half, sampled with ``seed``)."""
    messy = realdev.jobbert_onet(
        DATA / "jobbert_validation" / "titles.csv",
        DATA / "esco_onet_crosswalk" / "crosswalk_esco_onet.csv",
    )
    clean = realdev.clean_dev(dev_csv)

    def cap(df: pd.DataFrame) -> pd.DataFrame:
        parts = [g.sample(min(len(g), per_part), random_state=seed) for _, g in df.groupby("part")]
        return pd.concat(parts).sort_values("id").reset_index(drop=True)

    messy, clean = cap(messy), cap(clean)
    rng = np.random.default_rng(seed)
    names = employers(DATA / "tgre_posting_titles" / "job_titles_unlabeled.csv")
    posting = messy.assign(
        title=[
            f"{t}, {names[i]}"
            for t, i in zip(messy["title"], rng.integers(len(names), size=len(messy)), strict=True)
        ],
        id=[f"posting-{i}" for i in messy["id"]],
    )
    return {"clean": clean, "messy": messy, "posting": posting}


def topk(proba: np.ndarray, classes: np.ndarray, gold: list[frozenset[str]], k: int) -> float:
    order = np.argsort(-proba, axis=1)[:, :k]
    return float(np.mean([bool(set(classes[o]) & g) for o, g in zip(order, gold, strict=True)]))


def before(predictor: Any, df: pd.DataFrame, gold: list[frozenset[str]]) -> dict[str, Any]:
    records = [JobRecord(clean_title(t)) for t in df["title"]]
    proba = np.asarray(predictor.predict_proba(records), dtype=np.float64)
    classes = np.asarray(predictor.classes_, dtype=object)
    conf = proba.max(axis=1)
    right = np.asarray([classes[j] in g for j, g in zip(proba.argmax(axis=1), gold, strict=True)])
    coded = conf >= 0.5
    return {
        "top1": topk(proba, classes, gold, 1),
        "top5": topk(proba, classes, gold, 5),
        "ece": expected_calibration_error(conf, right),
        "coded_0.5": float(coded.mean()),
        "precision_0.5": float(right[coded].mean()) if coded.any() else float("nan"),
    }


def status_figures(a: tr.Assigned, correct_at: list[np.ndarray], n: int) -> dict[str, Any]:
    lv = a.level
    coded, partial = lv == 0, lv > 0
    right = np.asarray([bool(correct_at[v][i]) if v >= 0 else False for i, v in enumerate(lv)])
    return {
        "coded": float(coded.mean()),
        "coded_precision": float(right[coded].mean()) if coded.any() else float("nan"),
        "partial": float(partial.mean()),
        "partial_precision": float(right[partial].mean()) if partial.any() else float("nan"),
        "review": float((lv < 0).mean()),
        "coded_or_partial_precision": float(right[lv >= 0].mean())
        if (lv >= 0).any()
        else float("nan"),
        "partial_levels": pd.Series([a.level_name[i] for i in np.nonzero(partial)[0]])
        .value_counts()
        .to_dict(),
    }


def _pct(v: Any) -> str:
    return "–" if v is None or (isinstance(v, float) and np.isnan(v)) else f"{100 * v:.0f} %"


def markdown(results: dict[str, Any]) -> str:
    """The RESULTS.md tables: before/after per dev set, then statuses per target precision."""
    lines = [
        "| dev set (dev half) | before top-1 / top-5 | before ECE | before `coded` at 0.5 (precision) "
        "| after top-1 / top-5 | ECE raw → calibrated |",
        "|---|---|---|---|---|---|",
    ]
    for name, b in results["before"].items():
        a = results["after"][name]
        lines.append(
            f"| {name} (n={results['n'][name].get('dev', 0)}) | {b['top1']:.3f} / {b['top5']:.3f} "
            f"| {b['ece']:.3f} | {_pct(b['coded_0.5'])} ({b['precision_0.5']:.2f}) "
            f"| {a['top1']:.3f} / {a['top5']:.3f} | {a['ece_raw']:.3f} → {a['ece']:.3f} |"
        )
    lines += [
        "",
        "| dev set | target | `coded` (precision) | `partial` (precision) | review "
        "| coded + partial precision |",
        "|---|---|---|---|---|---|",
    ]
    for name, a in results["after"].items():
        for t in TARGETS:
            f = a[f"at_{t}"]
            lines.append(
                f"| {name} | {t} | {_pct(f['coded'])} ({f['coded_precision']:.3f}) "
                f"| {_pct(f['partial'])} ({f['partial_precision']:.3f}) | {_pct(f['review'])} "
                f"| {f['coded_or_partial_precision']:.3f} |"
            )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dev", type=Path, default=Path("/tmp/trust/dev.csv"))
    ap.add_argument("--out", type=Path, default=Path("/tmp/trust/out"))
    ap.add_argument("--per-part", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--set", action="append", default=[], help="section.key=value override")
    ap.add_argument("--save", type=Path, default=None, help="model dir to write calibration.json")
    ap.add_argument("--render", type=Path, default=None, help="print a trust.json as Markdown")
    ap.add_argument("--model", default=PRETRAINED, help="model to score (default: pretrained)")
    ap.add_argument(
        "--threshold-sets",
        default="clean",
        help="comma-separated sets whose fit halves choose the thresholds (their gold is "
        "trusted: the crosswalk gold of messy/posting is not); the calibrators use every set",
    )
    ap.add_argument(
        "--calibration",
        type=Path,
        default=None,
        help="evaluate this calibration.json instead of fitting one (e.g. one fitted on "
        "another model's scores)",
    )
    ap.add_argument(
        "--model-note",
        default=None,
        help="how the scored model was trained, recorded in the calibration's fitted_on "
        "(default: its directory name)",
    )
    args = ap.parse_args()
    if args.render:
        print(markdown(json.loads(args.render.read_text())))
        return
    args.out.mkdir(parents=True, exist_ok=True)
    settings, ws = load_settings(overrides=args.set), Workspace.resolve()
    taxonomy = load_taxonomy(ws, "onet")
    with index_in_use(ws):
        predictor = load_coder(settings, ws, model=args.model, taxonomy_name="onet").predictor
        results = run(
            predictor, taxonomy, datasets(args.dev, per_part=args.per_part, seed=args.seed), args
        )
    (args.out / "trust.json").write_text(json.dumps(results, indent=2, default=str))
    print(json.dumps(results, indent=2, default=str))
    print(markdown(results))


def fit_halves(
    sets: dict[str, pd.DataFrame],
    cands: dict[str, list[tr.CandidateScores]],
    golds: dict[str, list[frozenset[str]]],
) -> tuple[list[tr.CandidateScores], list[frozenset[str]]]:
    """The candidate scores (per chunk) and gold of every set's fit half, in set order."""
    fit_cs, fit_gold = [], []
    for name, df in sets.items():
        fit = (df["part"] == realdev.FIT).to_numpy()
        for cs, start in zip(cands[name], range(0, len(df), tr.CHUNK), strict=True):
            rows = np.nonzero(fit[start : start + tr.CHUNK])[0]
            fit_cs.append(tr.take_candidates(cs, rows))
            fit_gold += [golds[name][start + r] for r in rows]
    return fit_cs, fit_gold


def run(predictor: Any, taxonomy: Any, sets: dict[str, pd.DataFrame], args: Any) -> dict[str, Any]:
    results: dict[str, Any] = {
        "n": {k: v["part"].value_counts().to_dict() for k, v in sets.items()}
    }
    opts0 = tr.SegmentOptions()
    cands, golds = {}, {}
    for name, df in sets.items():
        gold = realdev.gold_sets(df)
        golds[name] = gold
        dev = (df["part"] == realdev.DEV).to_numpy()
        results.setdefault("before", {})[name] = before(
            predictor, df[dev], [g for g, d in zip(gold, dev, strict=True) if d]
        )
        records = [JobRecord(t) for t in df["title"]]
        cands[name] = [
            tr.candidate_scores(predictor, records[i : i + tr.CHUNK], opts0)
            for i in range(0, len(records), tr.CHUNK)
        ]
        print(name, "scored", flush=True)
    # segment choice tuned on the fit halves of every set
    fit_cs, fit_gold = fit_halves(sets, cands, golds)
    if args.calibration is not None:
        trust = json.loads(args.calibration.read_text())
        opts = tr.segment_options(trust)
        results["calibration"] = {"file": args.calibration.name, "fitted_on": trust["fitted_on"]}
    else:
        opts, results["segment_grid_fit_top1"] = tf.choose_segments(fit_cs, fit_gold)
    results["segment_options"] = {"whole_bonus": opts.whole_bonus, "first_bonus": opts.first_bonus}
    scores = {name: tr.concat([tr.choose(cs, opts) for cs in cands[name]]) for name in sets}
    levels = tr.hierarchy(taxonomy, [str(c) for c in scores["clean"].classes])
    fit_scores = tr.concat(
        [tr.take(scores[n], (sets[n]["part"] == realdev.FIT).to_numpy()) for n in sets]
    )
    fit_gold2 = [
        g for n in sets for g, p in zip(golds[n], sets[n]["part"], strict=True) if p == realdev.FIT
    ]
    trusted = [n.strip() for n in args.threshold_sets.split(",") if n.strip()]
    unknown = sorted(set(trusted) - set(sets))
    if unknown or not trusted:
        raise SystemExit(f"--threshold-sets: unknown sets {unknown} (have {list(sets)})")
    threshold_rows = np.concatenate(
        [np.full(int((sets[n]["part"] == realdev.FIT).sum()), n in trusted) for n in sets]
    )
    if args.calibration is None:
        trust = tr.fit_trust(
            fit_scores,
            fit_gold2,
            levels,
            options=opts,
            threshold_rows=threshold_rows,
            fitted_on={
                "sets": {n: int((sets[n]["part"] == realdev.FIT).sum()) for n in sets},
                "threshold_sets": trusted,
                "taxonomy": f"{taxonomy.name} {taxonomy.version}",
                "model": args.model_note
                or (PRETRAINED if args.model == PRETRAINED else Path(args.model).name),
                "note": "fit halves of clean (O*NET dev split), messy (JobBERT via crosswalk) "
                "and posting (JobBERT + real employer) titles; thresholds on the fit halves of "
                "threshold_sets only, out of fold",
                "settings_overrides": list(args.set),
            },
        )
    if args.save:
        tr.save_trust(trust, args.save)
    results["thresholds"] = {t: tr.thresholds_for(trust, t) for t in TARGETS}
    for name, df in sets.items():
        dev = (df["part"] == realdev.DEV).to_numpy()
        s, gold = (
            tr.take(scores[name], dev),
            [g for g, d in zip(golds[name], dev, strict=True) if d],
        )
        ls = tr.level_scores(s, levels)
        correct = tr.level_correct(ls, levels, gold)
        a = tr.assign_rows(trust, s, levels, target=0.95)
        row: dict[str, Any] = {
            "top1": topk(s.proba, s.classes, gold, 1),
            "top5": topk(s.proba, s.classes, gold, 5),
            "ece_raw": expected_calibration_error(s.proba.max(axis=1), correct[0]),
            "ece": expected_calibration_error(a.confidence, correct[0]),
        }
        for t in TARGETS:
            row[f"at_{t}"] = status_figures(
                tr.assign_rows(trust, s, levels, target=t), correct, len(gold)
            )
        results.setdefault("after", {})[name] = row
    return results


if __name__ == "__main__":
    main()
