"""The fit and dev halves of the issue 19 dev sets from a benchmarks/trust_cache.py pickle,
per hierarchy level, with the segments chosen on the fit halves; and the one-line report of
`coded` / `coded` + `partial` shares and precision that calibration_bounds.py and
calibrator_kinds.py print."""

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
from autocoder.metrics import expected_calibration_error as ece  # noqa: E402


def load(path):
    """``(sets, fit, dev, levels)``: per set name the (level scores, per-level correctness) of
    its fit and dev halves."""
    d = pickle.load(open(path, "rb"))
    sets, cands, golds, levels = d["sets"], d["cands"], d["golds"], d["levels"]
    opts, _ = tf.choose_segments(*B.fit_halves(sets, cands, golds))
    scores = {n: tr.concat([tr.choose(cs, opts) for cs in cands[n]]) for n in sets}

    def half(n, p):
        m = (sets[n]["part"] == p).to_numpy()
        ls = tr.level_scores(tr.take(scores[n], m), levels)
        return ls, tr.level_correct(ls, levels, [g for g, x in zip(golds[n], m, strict=True) if x])

    return (
        sets,
        {n: half(n, realdev.FIT) for n in sets},
        {n: half(n, realdev.DEV) for n in sets},
        levels,
    )


def report(tag, dev, dev_conf, thr):
    """Print each set's `coded` and `coded` + `partial` share (precision) and its ECE."""
    cells = []
    for n in ("clean", "messy", "posting"):
        level = cal.assign(dev_conf[n], thr)
        ok = np.array([bool(dev[n][1][v][i]) if v >= 0 else False for i, v in enumerate(level)])
        c, cp = level == 0, level >= 0
        cells.append(
            f"{n} {c.mean():.0%} ({ok[c].mean() if c.any() else float('nan'):.3f}) +p {cp.mean():.0%} ({ok[cp].mean() if cp.any() else float('nan'):.3f})"
        )
    e = " / ".join(f"{ece(dev_conf[n][0], dev[n][1][0]):.3f}" for n in dev)
    print(f"{tag}: {' | '.join(cells)} | ECE {e}", flush=True)
