"""Issue 18 (a): does the coded history's code frequency, used as a prior, code better?

An office's coded history says how often each code occurs in its stream; the coders were
trained on taxonomy texts whose codes are near-uniform. The label-shift correction
``p'(c) ∝ p(c) · ((n_c + beta) / (N + beta · K)) ** alpha`` (n_c: stored examples of code c) is
applied to the coder's blend with the examples' votes (``final``) or to the coder alone before
the blend (``base``). Held-out titles and dev as in ``examples_fit_rules.py`` (the workspace of
``benchmarks/examples_esco.py``, with ``--train`` for ``--coder model``); the prior of the
held-out titles is counted without them. Each setting (blend weight, where, alpha, beta) is
chosen on the held-out titles by top-1 + top-5, as ``examples fit`` chooses, and reported on dev.

    HF_HUB_OFFLINE=1 PYTHONPATH=. .venv/bin/python benchmarks/history_prior.py \
        --home $BENCH/esco3 --coder retrieval      # or --coder model --recipe esco-history-head
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from examples_esco import DATA, split
from examples_fit_rules import held

from autocoder.coding.loaded import load_coder, make_embedder
from autocoder.config import load_settings
from autocoder.examples.fit import HeldOut, held_out_rows, ranks, untrained_rows
from autocoder.examples.store import ExampleStore
from autocoder.examples.vote import blend
from autocoder.metrics import expected_calibration_error
from autocoder.records import JobRecord, as_records
from autocoder.taxonomy.store import load_taxonomy
from autocoder.workspace import Workspace

VOTES = {"exact_weight": 0.8, "exact_trust": 0.95, "neighbours": 40, "temperature": 0.1,
         "min_similarity": 0.0}  # fmt: skip  # what `examples fit` chose for every coder
WEIGHTS = (0.3, 0.5, 0.7)
ALPHAS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.7, 1.0)
BETAS = (0.5, 2.0, 10.0)


def prior(codes: pd.Series, classes: list[str], beta: float) -> np.ndarray:
    counts = codes.astype(str).value_counts()
    n = np.asarray([counts.get(c, 0) for c in classes], np.float64)
    return (n + beta) / (n.sum() + beta * len(classes))


def shifted(p: np.ndarray, pi: np.ndarray, alpha: float) -> np.ndarray:
    if alpha == 0:
        return p
    q = p * pi[None, :] ** alpha
    return q / q.sum(axis=1, keepdims=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--home", required=True)
    ap.add_argument("--recipe", default="esco-history-head")
    ap.add_argument("--coder", choices=("model", "retrieval", "tuned-retrieval"), default="model")
    args = ap.parse_args()
    ws = Workspace.resolve(args.home)
    model_dir = Path(args.home) / "models" / args.recipe
    tuned = args.coder != "retrieval"
    settings = load_settings(overrides=[
        'taxonomy.default="esco"', 'index.kinds=["title","alt_title"]', "examples.enabled=false",
        *([f'embedder.model="{model_dir / "embedder"}"'] if tuned else []),
    ])  # fmt: skip
    coder = load_coder(settings, ws, model=str(model_dir) if args.coder == "model" else "retrieval",
                       taxonomy_name="esco")  # fmt: skip
    embedder = make_embedder(settings, ws)
    table = ExampleStore.of(ws, "esco").table()
    known_classes = {str(c) for c in coder.predictor.classes_}
    known = table[table["code"].astype(str).isin(known_classes)].reset_index(drop=True)
    if args.coder == "model":
        pos = untrained_rows(known, coder.metadata["examples"]["untrained_keys"], rows=2000, seed=0)
    else:
        pos = held_out_rows(known, rows=2000, share=0.2, seed=0)
    out, voting = known.iloc[pos], known.drop(index=known.index[pos])
    records = [JobRecord(str(t), str(d)) for t, d in zip(out["title"], out["description"],
                                                         strict=True)]  # fmt: skip
    fit = held(coder, embedder, voting, records, out["code"])
    dev_df, _ = split(DATA / "jobbert_validation" / "titles.csv", load_taxonomy(ws, "esco"), 18,
                      0.25, 0)  # fmt: skip
    dev = held(coder, embedder, known, as_records(dev_df[["title"]]), dev_df["code"])
    classes = [str(c) for c in fit.voter.classes_]
    ex_fit, ex_dev = fit.p_examples(VOTES), dev.p_examples(VOTES)

    def final(h: HeldOut, ex: np.ndarray, pi: np.ndarray, w: float, where: str, a: float):
        base = shifted(h.p_base, pi, a) if where == "base" else h.p_base
        p = blend(base, ex, h.has_exact, weight=w, exact_trust=VOTES["exact_trust"])
        return shifted(p, pi, a) if where == "final" else p

    def score(h: HeldOut, p: np.ndarray) -> tuple[float, float, float]:
        hit1, hit5 = ranks(p, h.gold)
        ece = expected_calibration_error(p.max(axis=1), p.argmax(axis=1) == h.gold)
        return float(hit1.mean()), float(hit5.mean()), float(ece)

    rows = []
    for beta in BETAS:
        pi_fit, pi_dev = prior(voting["code"], classes, beta), prior(known["code"], classes, beta)
        for w, where, a in itertools.product(WEIGHTS, ("final", "base"), ALPHAS):
            pf = final(fit, ex_fit, pi_fit, w, where, a)
            pd_ = final(dev, ex_dev, pi_dev, w, where, a)
            rows.append((beta, w, where, a, *score(fit, pf), *score(dev, pd_)))
    df = pd.DataFrame(rows, columns=["beta", "weight", "where", "alpha", "fit_top1", "fit_top5",
                                     "fit_ece", "dev_top1", "dev_top5", "dev_ece"])  # fmt: skip
    df["fit_sum"], df["dev_sum"] = df.fit_top1 + df.fit_top5, df.dev_top1 + df.dev_top5
    print(f"coder {args.coder} ({args.recipe}): {len(fit.gold)} held-out titles, "
          f"{len(dev.gold)} dev; votes {VOTES}")  # fmt: skip
    print("| prior | chosen on the held-out titles (w, where, alpha, beta) | held-out top-1 / top-5 "
          "(ECE) | dev top-1 / top-5 (ECE) |")  # fmt: skip
    print("|---|---|---|---|")
    choices = {
        "none": df[df.alpha == 0],
        "history prior": df,
        "history prior, dev optimum (bound)": df.sort_values("dev_sum", ascending=False),
    }
    for name, frame in choices.items():
        if "bound" not in name:
            frame = frame.sort_values(["fit_sum", "fit_top1"], ascending=False, kind="stable")
        x = frame.iloc[0]
        chosen = f"{x['weight']}, {x['where']}, {x['alpha']}, {x['beta']}"
        print(f"| {name} | {chosen} | {x.fit_top1:.3f} / "
              f"{x.fit_top5:.3f} ({x.fit_ece:.3f}) | {x.dev_top1:.3f} / {x.dev_top5:.3f} "
              f"({x.dev_ece:.3f}) |")  # fmt: skip
    path = Path(args.home) / "bench" / f"history_prior_{args.coder}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(path, index=False)
    print(f"every setting: {path}")


if __name__ == "__main__":
    main()
