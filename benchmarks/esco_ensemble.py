"""Issue 18 (a): would averaging two coders beat the head coder alone?

``(1 - a) p_head + a p_mnrl`` (esco-history-head and esco-history, each mixed with its own
fine-tuned retrieval), the examples' votes blended on top with the head coder's fitted vote
settings; figures on the untrained history titles ("fit") and on dev. Run in the workspace of
``benchmarks/examples_esco.py --train`` after training both recipes:

    HF_HUB_OFFLINE=1 PYTHONPATH=. .venv/bin/python benchmarks/esco_ensemble.py --home $BENCH/esco3
"""

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from examples_esco import DATA, split
from examples_fit_rules import held

from autocoder.coding.loaded import load_coder, make_embedder
from autocoder.config import load_settings
from autocoder.examples.fit import log_loss, ranks, untrained_rows
from autocoder.examples.store import ExampleStore
from autocoder.examples.vote import blend
from autocoder.metrics import expected_calibration_error
from autocoder.records import JobRecord, as_records
from autocoder.taxonomy.store import load_taxonomy
from autocoder.workspace import Workspace

ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
ap.add_argument("--home", required=True)
home = ap.parse_args().home
ws = Workspace.resolve(home)


def coder_for(recipe):
    m = Path(home) / "models" / recipe
    s = load_settings(
        overrides=[
            'taxonomy.default="esco"',
            'index.kinds=["title","alt_title"]',
            "examples.enabled=false",
            f'embedder.model="{m / "embedder"}"',
        ]
    )
    return s, load_coder(s, ws, model=str(m), taxonomy_name="esco")


sh, head = coder_for("esco-history-head")
emb = make_embedder(sh, ws)
table = ExampleStore.of(ws, "esco").table()
classes = {str(c) for c in head.predictor.classes_}
known = table[table["code"].astype(str).isin(classes)].reset_index(drop=True)
pos = untrained_rows(known, head.metadata["examples"]["untrained_keys"], rows=2000, seed=0)
out = known.iloc[pos]
fit_rec = [JobRecord(str(t), str(d)) for t, d in zip(out["title"], out["description"], strict=True)]
fit = held(head, emb, known.drop(index=known.index[pos]), fit_rec, out["code"])
dev_df, _ = split(
    DATA / "jobbert_validation" / "titles.csv", load_taxonomy(ws, "esco"), 18, 0.25, 0
)
dev_rec = as_records(dev_df[["title"]])
dev = held(head, emb, known, dev_rec, dev_df["code"])
order = [str(c) for c in fit.voter.classes_]
del head
_, mnrl = coder_for("esco-history")
bp = {str(c): j for j, c in enumerate(mnrl.predictor.classes_)}
cols = np.asarray([bp[c] for c in order])
q_fit = np.asarray(mnrl.predictor.predict_proba(fit_rec), np.float64)[:, cols]
q_dev = np.asarray(mnrl.predictor.predict_proba(dev_rec), np.float64)[:, cols]
s = {
    "exact_weight": 0.8,
    "exact_trust": 0.95,
    "neighbours": 40,
    "temperature": 0.1,
    "min_similarity": 0.0,
}
ef, ed = fit.p_examples(s), dev.p_examples(s)


def sc(p, g):
    h1, h5 = ranks(p, g)
    return (
        h1.mean(),
        h5.mean(),
        log_loss(p, g).mean(),
        expected_calibration_error(p.max(1), p.argmax(1) == g),
    )


for a in (0.0, 0.2, 0.3, 0.4, 0.5, 0.6, 1.0):
    pf = (1 - a) * fit.p_base + a * q_fit
    pdv = (1 - a) * dev.p_base + a * q_dev
    for w in (0.0, 0.5, 0.6):
        for T in (1.0, 0.917):
            bf = blend(pf, ef, fit.has_exact, weight=w, exact_trust=0.95, temperature=T)
            bd = blend(pdv, ed, dev.has_exact, weight=w, exact_trust=0.95, temperature=T)
            print(
                f"a {a} w {w} T {T} fit %.3f/%.3f ll %.3f ece %.3f | dev %.4f/%.4f ll %.3f ece %.3f"
                % (*sc(bf, fit.gold), *sc(bd, dev.gold)),
                flush=True,
            )
