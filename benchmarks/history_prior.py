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

import itertools
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from examples_fit_rules import (
    FITTED_VOTES,
    by_fit_rule,
    coder_args,
    held_out_and_dev,
    report_choices,
    top_scores,
)

from autocoder.examples.fit import HeldOut
from autocoder.examples.vote import blend

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
    args = coder_args(__doc__)
    fit, dev, voting, known = held_out_and_dev(args.home, args.recipe, args.coder)
    classes = [str(c) for c in fit.voter.classes_]
    ex_fit, ex_dev = fit.p_examples(FITTED_VOTES), dev.p_examples(FITTED_VOTES)

    def final(h: HeldOut, ex: np.ndarray, pi: np.ndarray, w: float, where: str, a: float):
        base = shifted(h.p_base, pi, a) if where == "base" else h.p_base
        p = blend(base, ex, h.has_exact, weight=w, exact_trust=FITTED_VOTES["exact_trust"])
        return shifted(p, pi, a) if where == "final" else p

    rows = []
    for beta in BETAS:
        pi_fit, pi_dev = prior(voting["code"], classes, beta), prior(known["code"], classes, beta)
        for w, where, a in itertools.product(WEIGHTS, ("final", "base"), ALPHAS):
            pf = final(fit, ex_fit, pi_fit, w, where, a)
            pd_ = final(dev, ex_dev, pi_dev, w, where, a)
            rows.append((beta, w, where, a, *top_scores(fit, pf), *top_scores(dev, pd_)))
    df = pd.DataFrame(rows, columns=["beta", "weight", "where", "alpha", "fit_top1", "fit_top5",
                                     "fit_ece", "dev_top1", "dev_top5", "dev_ece"])  # fmt: skip
    df["fit_sum"], df["dev_sum"] = df.fit_top1 + df.fit_top5, df.dev_top1 + df.dev_top5
    print(f"coder {args.coder} ({args.recipe}): {len(fit.gold)} held-out titles, "
          f"{len(dev.gold)} dev; votes {FITTED_VOTES}")  # fmt: skip
    print("| prior | chosen on the held-out titles (w, where, alpha, beta) | held-out top-1 / top-5 "
          "(ECE) | dev top-1 / top-5 (ECE) |")  # fmt: skip
    print("|---|---|---|---|")
    choices = {
        "none": by_fit_rule(df[df.alpha == 0]),
        "history prior": by_fit_rule(df),
        "history prior, dev optimum (bound)": df.sort_values("dev_sum", ascending=False),
    }
    report_choices(choices, ["weight", "where", "alpha", "beta"], df,
                   Path(args.home) / "bench" / f"history_prior_{args.coder}.csv")  # fmt: skip


if __name__ == "__main__":
    main()
