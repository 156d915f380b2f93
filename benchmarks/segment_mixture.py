"""Issue 19: posting titles scored as a soft mixture over their segments instead of one chosen
segment. On the cached scores of benchmarks/trust_cache.py, dev halves: the package's choice
(bonuses fitted on the fit halves), the whole title only, the first segment only, and a mixture
of every candidate's distribution weighted by softmax((similarity + bonuses) / tau).

    python benchmarks/segment_mixture.py scores.pkl
"""

import pickle
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import trust as B

from autocoder.coding import trust as tr
from autocoder.coding import trust_fit as tf
from autocoder.coding.mixture import mix
from autocoder.evaluate import realdev
from autocoder.metrics import expected_calibration_error as ece

d = pickle.load(open(sys.argv[1], "rb"))
sets, cands, golds, levels = d["sets"], d["cands"], d["golds"], d["levels"]
opts, grid = tf.choose_segments(*B.fit_halves(sets, cands, golds))
print("chosen opts", opts)


def flatp(cs):
    return (
        cs.retrieval_proba
        if cs.model_proba is None
        else mix(cs.model_proba, cs.retrieval_proba, cs.weight, cs.temperature)
    )


def soft(cs, tau, wb, fb, pos_only=None):
    p = flatp(cs)
    s = cs.similarity + np.where(cs.position == 0, wb, 0) + np.where(cs.position == 1, fb, 0)
    n = int(cs.owner.max()) + 1
    out = np.zeros((n, p.shape[1]))
    for r in range(n):
        idx = np.nonzero(cs.owner == r)[0]
        if pos_only is not None:
            sel = idx[np.isin(cs.position[idx], pos_only)]
            idx = sel if len(sel) else idx[:1]
            w = np.ones(len(idx)) / len(idx)
        else:
            z = (s[idx] - s[idx].max()) / tau
            w = np.exp(z)
            w /= w.sum()
        out[r] = w @ p[idx]
    return out


def evaluate(name, fn):
    cells = []
    for n in sets:
        dev = (sets[n]["part"] == realdev.DEV).to_numpy()
        P = np.vstack([fn(cs) for cs in cands[n]])[dev]
        cls = cands[n][0].classes
        g = [golds[n][i] for i in np.nonzero(dev)[0]]
        top = np.argsort(-P, axis=1)[:, :5]
        ok = np.array([[cls[j] in gg for j in row] for row, gg in zip(top, g, strict=True)])
        cells.append(
            f"{n} {ok[:, 0].mean():.3f}/{ok.any(1).mean():.3f} ece {ece(P.max(1), ok[:, 0]):.3f}"
        )
    print(name, " | ".join(cells), flush=True)


evaluate("chosen", lambda cs: tr.choose(cs, opts).proba)
evaluate("whole", lambda cs: soft(cs, 1, 0, 0, pos_only=[0]))
evaluate("first", lambda cs: soft(cs, 1, 0, 0, pos_only=[1]))
for tau in (0.02, 0.05, 0.1, 0.2, 1.0):
    evaluate(
        f"soft tau={tau}", lambda cs, tau=tau: soft(cs, tau, opts.whole_bonus, opts.first_bonus)
    )
