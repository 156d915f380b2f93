"""Issue 19: do the target-precision thresholds hold on new titles? Rules compared on the
cached scores of benchmarks/trust_cache.py (fit halves fit, dev halves measured):

* calibrators fitted on every set (clean, messy, posting) or on clean only;
* thresholds chosen on the clean fit half (its gold is trusted): on the calibrator's in-sample
  confidence (the rule before), out of fold, or out of fold with the one-sigma margin
  (``calibration.THRESHOLD_MARGIN_SD``, what ``fit_trust`` does now).

    python benchmarks/trust_cache.py MODEL scores.pkl DEV.csv
    python benchmarks/threshold_rules.py scores.pkl
"""

import pickle
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import trust as B  # noqa: E402

from autocoder.coding import calibration as cal  # noqa: E402
from autocoder.coding import trust as tr  # noqa: E402
from autocoder.coding import trust_fit as tf  # noqa: E402
from autocoder.evaluate import realdev  # noqa: E402
from autocoder.metrics import expected_calibration_error  # noqa: E402

d = pickle.load(open(sys.argv[1], "rb"))
sets, cands, golds, levels = d["sets"], d["cands"], d["golds"], d["levels"]
opts, _ = tf.choose_segments(*B.fit_halves(sets, cands, golds))
scores = {n: tr.concat([tr.choose(cs, opts) for cs in cands[n]]) for n in sets}


def half(n: str, p: str):
    m = (sets[n]["part"] == p).to_numpy()
    s = tr.take(scores[n], m)
    ls = tr.level_scores(s, levels)
    return ls, tr.level_correct(ls, levels, [g for g, x in zip(golds[n], m, strict=True) if x])


F = {n: half(n, realdev.FIT) for n in sets}
D = {n: half(n, realdev.DEV) for n in sets}
print(
    "| calibrators on | thresholds | target | clean `coded` (precision) | clean coded + partial "
    "(precision) | messy `coded` (precision) | ECE clean / messy / posting |"
)
print("|---|---|---|---|---|---|---|")
for cal_sets in (list(sets), ["clean"]):
    params, conf_in, conf_oof, right = [], [], [], []
    for lv in range(len(levels)):
        x = np.vstack([F[n][0].x[lv] for n in cal_sets])
        y = np.concatenate([F[n][1][lv] for n in cal_sets])
        clean = np.concatenate([[n == "clean"] * len(F[n][1][lv]) for n in cal_sets])
        p = cal.fit_calibrator(x, y)
        params.append(p)
        conf_in.append(cal.calibrate(p, x)[clean])
        conf_oof.append(cal.out_of_fold(x, y, kind=p["kind"])[clean])
        right.append(y[clean])
    dev_conf = {
        n: [cal.calibrate(params[lv], D[n][0].x[lv]) for lv in range(len(levels))] for n in sets
    }
    ece = " / ".join(f"{expected_calibration_error(dev_conf[n][0], D[n][1][0]):.3f}" for n in sets)
    for rule, conf, margin in (
        ("in-sample", conf_in, 0.0),
        ("out of fold", conf_oof, 0.0),
        ("out of fold + margin", conf_oof, cal.THRESHOLD_MARGIN_SD),
    ):
        for t in (0.95, 0.9):
            thr = [
                e["threshold"]
                for e in cal.fit_level_thresholds(conf, right, target=t, margin_sd=margin)
            ]
            cells = []
            for n in ("clean", "messy"):
                level = cal.assign(dev_conf[n], thr)
                ok = np.array(
                    [bool(D[n][1][v][i]) if v >= 0 else False for i, v in enumerate(level)]
                )
                c, cp = level == 0, level >= 0
                cells.append(f"{c.mean():.0%} ({ok[c].mean():.3f})")
                if n == "clean":
                    cells.append(f"{cp.mean():.0%} ({ok[cp].mean():.3f})")
            print(
                f"| {', '.join(cal_sets)} | {rule} | {t} | {' | '.join(cells)} | {ece} |",
                flush=True,
            )
