"""Issue 18 (a): does the ISCO hierarchy, used to rescore the coder's blend, code better?

ESCO has 3,007 occupations, many of them near-synonyms under one ISCO unit group, and the
JobBERT gold is noisy between them. A code whose siblings also get probability is more likely
right than an isolated one, so the blend is rescored as
``p'(c) ∝ p(c) · P_4(g4(c)) ** b4 · P_3(g3(c)) ** b3`` where ``P_l`` is the blend's probability
summed over the ISCO group of level ``l`` (b4 = b3 = 0 is today's coder). Held-out titles and dev
as in ``examples_fit_rules.py`` (the workspace of ``benchmarks/examples_esco.py``, with
``--train`` for ``--coder model``); each setting (blend weight, b4, b3) is chosen on the held-out
titles by top-1 + top-5, as ``examples fit`` chooses, and reported on dev.

    HF_HUB_OFFLINE=1 PYTHONPATH=. .venv/bin/python benchmarks/hierarchy_smoothing.py \
        --home $BENCH/esco3 --coder model      # or --coder retrieval
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

from autocoder.coding.trust import hierarchy
from autocoder.examples.vote import blend
from autocoder.taxonomy.store import load_taxonomy
from autocoder.workspace import Workspace

WEIGHTS = (0.3, 0.5, 0.7)
B4 = (0.0, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0)
B3 = (0.0, 0.1, 0.2, 0.3, 0.5)


def membership(groups: dict[str, str], classes: list[str]) -> np.ndarray:
    """``(n_classes, n_groups)`` 0/1 from one level of ``trust.hierarchy`` (class -> group; a
    class with no group at that level is a group of its own)."""
    of = [groups.get(c, f"self:{c}") for c in classes]
    index = {g: j for j, g in enumerate(sorted(set(of)))}
    m = np.zeros((len(classes), len(index)))
    m[np.arange(len(classes)), [index[g] for g in of]] = 1.0
    return m


def smoothed(p: np.ndarray, m4: np.ndarray, m3: np.ndarray, b4: float, b3: float) -> np.ndarray:
    if b4 == 0 and b3 == 0:
        return p
    log = np.log(np.clip(p, 1e-12, None))
    if b4:
        log += b4 * np.log(np.clip((p @ m4) @ m4.T, 1e-12, None))
    if b3:
        log += b3 * np.log(np.clip((p @ m3) @ m3.T, 1e-12, None))
    log -= log.max(axis=1, keepdims=True)
    q = np.exp(log)
    return q / q.sum(axis=1, keepdims=True)


def main() -> None:
    args = coder_args(__doc__)
    fit, dev, _, _ = held_out_and_dev(args.home, args.recipe, args.coder)
    classes = [str(c) for c in fit.voter.classes_]
    tax = load_taxonomy(Workspace.resolve(args.home), "esco")
    levels = dict(hierarchy(tax, classes))
    m4, m3 = membership(levels["isco4"], classes), membership(levels["isco3"], classes)
    print(f"{len(classes)} classes in {m4.shape[1]} ISCO-4 and {m3.shape[1]} ISCO-3 groups")
    ex_fit, ex_dev = fit.p_examples(FITTED_VOTES), dev.p_examples(FITTED_VOTES)

    rows = []
    for w in WEIGHTS:
        pf = blend(
            fit.p_base, ex_fit, fit.has_exact, weight=w, exact_trust=FITTED_VOTES["exact_trust"]
        )
        pdv = blend(
            dev.p_base, ex_dev, dev.has_exact, weight=w, exact_trust=FITTED_VOTES["exact_trust"]
        )
        for b4, b3 in itertools.product(B4, B3):
            rows.append((w, b4, b3, *top_scores(fit, smoothed(pf, m4, m3, b4, b3)),
                         *top_scores(dev, smoothed(pdv, m4, m3, b4, b3))))  # fmt: skip
    df = pd.DataFrame(rows, columns=["weight", "b4", "b3", "fit_top1", "fit_top5", "fit_ece",
                                     "dev_top1", "dev_top5", "dev_ece"])  # fmt: skip
    df["fit_sum"], df["dev_sum"] = df.fit_top1 + df.fit_top5, df.dev_top1 + df.dev_top5
    print(f"coder {args.coder} ({args.recipe}): {len(fit.gold)} held-out titles, "
          f"{len(dev.gold)} dev; votes {FITTED_VOTES}")  # fmt: skip
    print("| rescoring | chosen on the held-out titles (w, b4, b3) | held-out top-1 / top-5 (ECE) "
          "| dev top-1 / top-5 (ECE) |")  # fmt: skip
    print("|---|---|---|---|")
    choices = {
        "none": by_fit_rule(df[(df.b4 == 0) & (df.b3 == 0)]),
        "ISCO smoothing": by_fit_rule(df),
        "ISCO smoothing, top-1 on held-out": df.sort_values("fit_top1", ascending=False),
        "ISCO smoothing, dev optimum (bound)": df.sort_values("dev_sum", ascending=False),
    }
    report_choices(choices, ["weight", "b4", "b3"], df,
                   Path(args.home) / "bench" / f"hierarchy_smoothing_{args.coder}.csv")  # fmt: skip


if __name__ == "__main__":
    main()
