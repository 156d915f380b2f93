"""Score the issue 19 dev sets (benchmarks/trust.py) once with a model and pickle the
candidate scores, for benchmarks/threshold_rules.py.

    python benchmarks/trust_cache.py MODEL OUT.pkl DEV.csv [section.key=value ...]

The optional settings overrides are those of `--set` (e.g. the embedder a fine-tuned
model's retrieval index was built with).
"""

import pickle
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import trust as B  # noqa: E402

from autocoder.coding import trust as tr  # noqa: E402
from autocoder.coding.loaded import load_coder  # noqa: E402
from autocoder.config import load_settings  # noqa: E402
from autocoder.evaluate import realdev  # noqa: E402
from autocoder.index import index_in_use  # noqa: E402
from autocoder.records import JobRecord  # noqa: E402
from autocoder.taxonomy.store import load_taxonomy  # noqa: E402
from autocoder.workspace import Workspace  # noqa: E402

model, out, dev_csv = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
settings, ws = load_settings(overrides=sys.argv[4:]), Workspace.resolve()
taxonomy = load_taxonomy(ws, "onet")
sets = B.datasets(dev_csv, per_part=1000, seed=13)
with index_in_use(ws):
    predictor = load_coder(settings, ws, model=model, taxonomy_name="onet").predictor
    cands, golds = {}, {}
    for name, df in sets.items():
        golds[name] = realdev.gold_sets(df)
        recs = [JobRecord(t) for t in df["title"]]
        cands[name] = [
            tr.candidate_scores(predictor, recs[i : i + tr.CHUNK], tr.SegmentOptions())
            for i in range(0, len(recs), tr.CHUNK)
        ]
        print(name, flush=True)
levels = tr.hierarchy(taxonomy, [str(c) for c in cands["clean"][0].classes])
pickle.dump({"sets": sets, "cands": cands, "golds": golds, "levels": levels}, out.open("wb"))
print("saved", out)
