"""Issue 19: how far can the target-precision thresholds go on new titles? On the cached
scores of benchmarks/trust_cache.py (a model that never saw the dev sets; fit halves fit, dev
halves measured), detailed-level and coded + partial shares and their precision on the dev
halves for:

* one calibrator per level (what ``fit_trust`` keeps) against the mean of its five fold
  calibrators ("bagged"), thresholds out of fold with margins 0, 0.5 and 1 sd;
* the bound: thresholds chosen on the clean dev half itself (in-sample, optimistic);
* no calibrator: a threshold on the raw top probability / margin, chosen on the clean fit half;
* the packaged calibration's recipe: pooled calibrators, thresholds on their own fit rows.

    python benchmarks/trust_cache.py MODEL scores.pkl DEV.csv
    python benchmarks/calibration_bounds.py scores.pkl
"""

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import cached_halves as H

from autocoder.coding import calibration as cal

sets, F, D, levels = H.load(sys.argv[1])
L = len(levels)
print("levels", [lv[0] for lv in levels])
for n in sets:
    print(n, "dev acc per level", [round(float(D[n][1][lv].mean()), 3) for lv in range(L)])


def bagged(x, y, kind, folds=5, seed=0):
    """fold calibrators as out_of_fold builds them; returns oof conf and the list of params"""
    x = np.asarray(x, float)
    y = np.asarray(y).astype(int)
    _, g = np.unique(x, axis=0, return_inverse=True)
    g = np.asarray(g).reshape(-1)
    order = np.random.default_rng(seed).permutation(int(g.max()) + 1)
    fold = order[g] % folds
    out = np.zeros(len(y))
    ps = []
    for f in range(folds):
        h = fold == f
        p = cal.fit_calibrator(x[~h], y[~h], kind="auto" if kind == "constant" else kind)
        out[h] = cal.calibrate(p, x[h])
        ps.append(p)
    return out, ps


for cal_sets in (["clean"], list(sets)):
    params, oof, bags, right = [], [], [], []
    for lv in range(L):
        x = np.vstack([F[n][0].x[lv] for n in cal_sets])
        y = np.concatenate([F[n][1][lv] for n in cal_sets])
        clean = np.concatenate([[n == "clean"] * len(F[n][1][lv]) for n in cal_sets])
        p = cal.fit_calibrator(x, y)
        params.append(p)
        o, ps = bagged(x, y, p["kind"])
        oof.append(o[clean])
        bags.append(ps)
        right.append(y[clean])
    single = {n: [cal.calibrate(params[lv], D[n][0].x[lv]) for lv in range(L)] for n in sets}
    bag = {
        n: [np.mean([cal.calibrate(q, D[n][0].x[lv]) for q in bags[lv]], axis=0) for lv in range(L)]
        for n in sets
    }
    for t in (0.95, 0.9):
        for m in (0.0, 0.5, 1.0):
            thr = [
                e["threshold"] for e in cal.fit_level_thresholds(oof, right, target=t, margin_sd=m)
            ]
            H.report(f"cal {'+'.join(cal_sets)} t={t} margin={m} single", D, single, thr)
            H.report(f"cal {'+'.join(cal_sets)} t={t} margin={m} bagged", D, bag, thr)
        # oracle: thresholds chosen on the clean dev half itself with the single calibrator
        thr = [
            e["threshold"]
            for e in cal.fit_level_thresholds(single["clean"], D["clean"][1], target=t)
        ]
        H.report(f"cal {'+'.join(cal_sets)} t={t} ORACLE(dev in-sample)", D, single, thr)
# raw-p1 oracle bound on clean dev detailed
x = D["clean"][0].x[0]
y = D["clean"][1][0]
for col, name in ((0, "p1"), (1, "margin")):
    thr, prec, rows = cal.threshold_for_precision(x[:, col], y, target=0.95)
    print(f"oracle on raw {name}: coverage {rows / len(y):.0%} at {prec:.3f}")
for col, name in ((0, "p1"), (1, "margin")):
    for t in (0.95, 0.9):
        for m in (0.0, 1.0):
            xf, yf = F["clean"][0].x[0][:, col], F["clean"][1][0]
            thr, prec, rows = cal.threshold_for_precision(xf, yf, target=t, margin_sd=m)
            cells = []
            for n in sets:
                x, y = D[n][0].x[0][:, col], D[n][1][0]
                c = x >= thr if thr is not None else np.zeros(len(y), bool)
                cells.append(f"{n} {c.mean():.0%} ({y[c].mean() if c.any() else float('nan'):.3f})")
            print(
                f"raw {name} t={t} margin={m} thr={thr}: fit {rows / len(yf):.0%} ({prec:.3f}) -> dev "
                + " | ".join(cells)
            )
# the packaged calibration's recipe (fitted before out-of-fold thresholds): calibrators and
# thresholds pooled over the three fit halves, thresholds on the calibrators' own fit rows
params, conf_in, right = [], [], []
for lv in range(L):
    x = np.vstack([F[n][0].x[lv] for n in sets])
    y = np.concatenate([F[n][1][lv] for n in sets])
    p = cal.fit_calibrator(x, y)
    params.append(p)
    conf_in.append(cal.calibrate(p, x))
    right.append(y)
single = {n: [cal.calibrate(params[lv], D[n][0].x[lv]) for lv in range(L)] for n in sets}
for t in (0.95, 0.9):
    thr = [e["threshold"] for e in cal.fit_level_thresholds(conf_in, right, target=t)]
    H.report(f"packaged recipe (pooled, in-sample) t={t}", D, single, thr)
