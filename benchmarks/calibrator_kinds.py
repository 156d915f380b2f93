"""Issue 19: would another kind of calibrator code more at the target precision? On the cached
scores of benchmarks/trust_cache.py (fit halves fit, dev halves measured), calibrators fitted
on the clean fit half per hierarchy level, thresholds out of fold (margins 0 and 1 sd) and the
dev-half bound, for: the package's boosted trees; histogram boosting monotone in every
confidence signal (hgb_mono) or in p1 / margin / log-odds only (hgb_p1); a logistic regression;
isotonic regression on the top probability alone (iso_p1).

    python benchmarks/calibrator_kinds.py scores.pkl boosted,hgb_mono,hgb_p1,logistic,iso_p1
"""

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import cached_halves as H
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression

from autocoder.coding import calibration as cal

sets, F, D, levels = H.load(sys.argv[1])
L = len(levels)
F_ = list(cal.FEATURES)
SIGN = {
    "p1": 1,
    "margin": 1,
    "log_odds_p1": 1,
    "entropy": -1,
    "model_p1": 1,
    "retrieval_p1": 1,
    "agree": 1,
    "max_similarity": 1,
}


def make(kind):
    if kind == "boosted":
        return lambda x, y: (lambda p: lambda z: cal.calibrate(p, z))(cal.fit_calibrator(x, y))
    if kind.startswith("hgb"):
        cst = (
            [SIGN.get(f, 0) for f in F_]
            if kind == "hgb_mono"
            else [1 if f in ("p1", "margin", "log_odds_p1") else 0 for f in F_]
        )

        def fit(x, y):
            m = HistGradientBoostingClassifier(
                max_iter=150,
                learning_rate=0.05,
                max_leaf_nodes=15,
                min_samples_leaf=40,
                monotonic_cst=cst,
                random_state=0,
            ).fit(x, y)
            return lambda z: m.predict_proba(z)[:, 1]

        return fit
    if kind == "iso_p1":

        def fit(x, y):
            m = IsotonicRegression(out_of_bounds="clip", y_min=0, y_max=1).fit(x[:, 0], y)
            return lambda z: m.predict(z[:, 0])

        return fit
    if kind == "logistic":

        def fit(x, y):
            mu, sd = x.mean(0), x.std(0)
            sd[sd == 0] = 1
            m = LogisticRegression(max_iter=2000).fit((x - mu) / sd, y)
            return lambda z: m.predict_proba((z - mu) / sd)[:, 1]

        return fit
    raise SystemExit(f"unknown calibrator kind {kind!r}")


def oof(fit, x, y, folds=5, seed=0):
    _, g = np.unique(x, axis=0, return_inverse=True)
    g = np.asarray(g).reshape(-1)
    order = np.random.default_rng(seed).permutation(int(g.max()) + 1)
    fold = order[g] % folds
    out = np.zeros(len(y))
    for f in range(folds):
        h = fold == f
        if len(set(y[~h].tolist())) < 2:
            out[h] = y[~h].mean()
            continue
        out[h] = fit(x[~h], y[~h])(x[h])
    return out


for kind in sys.argv[2].split(","):
    fit = make(kind)
    models, oo, right = [], [], []
    for lv in range(L):
        x = F["clean"][0].x[lv]
        y = np.asarray(F["clean"][1][lv]).astype(int)
        if len(set(y.tolist())) < 2:
            v = (y.sum() + 1) / (len(y) + 2)
            models.append(lambda z, v=v: np.full(len(z), v))
            oo.append(np.full(len(y), 0.0))
            right.append(y)
            continue
        models.append(fit(x, y))
        oo.append(oof(fit, x, y))
        right.append(y)
    conf = {n: [models[lv](D[n][0].x[lv]) for lv in range(L)] for n in sets}
    for t in (0.95, 0.9):
        for m in (0.0, 1.0):
            thr = [
                e["threshold"] for e in cal.fit_level_thresholds(oo, right, target=t, margin_sd=m)
            ]
            H.report(f"{kind} t={t} m={m}", D, conf, thr)
        thr = [
            e["threshold"] for e in cal.fit_level_thresholds(conf["clean"], D["clean"][1], target=t)
        ]
        H.report(f"{kind} t={t} ORACLE", D, conf, thr)
