"""Issue 18 (a): which rule should `examples fit` choose its vote settings by?

In the workspace of `benchmarks/examples_esco.py --train` (the JobBERT history in the ESCO
store, the models trained), for one coder: the held-out titles exactly as `examples fit` holds
them out (for a model trained on the store, its untrained titles; else 20 % of the store), the
dev split of examples_esco.py scored by the coder without examples, and the examples' nearest
neighbours of both. Every grid setting (`autocoder.examples.fit.VOTE_GRID`, extra weights) is
scored on the held-out titles and on dev, for the package's mixture blend and for a product of
experts (tried here, not in the package); each rule chooses on the held-out titles only and its
choice is reported on dev. The last row is the dev optimum (a bound, not a rule).

    HF_HUB_OFFLINE=1 PYTHONPATH=. .venv/bin/python benchmarks/examples_fit_rules.py \
        --home $BENCH/esco3 --recipe esco-history-head --coder model   # or retrieval, tuned-retrieval
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from examples_esco import DATA, split

from autocoder.coding.loaded import load_coder, make_embedder
from autocoder.config import load_settings
from autocoder.examples.fit import (
    VOTE_GRID,
    HeldOut,
    held_out_rows,
    log_loss,
    ranks,
    untrained_rows,
)
from autocoder.examples.index import MemoryExampleIndex
from autocoder.examples.store import ExampleStore
from autocoder.examples.vote import ExampleVoter, blend
from autocoder.metrics import expected_calibration_error
from autocoder.records import JobRecord, as_records
from autocoder.taxonomy.store import load_taxonomy
from autocoder.workspace import Workspace

WEIGHTS = VOTE_GRID["weight"]  # the grid `examples fit` searches
FLOOR = 1e-3  # the examples' probability floor of the product blend


def product(h: HeldOut, p_ex: np.ndarray, w: float) -> np.ndarray:
    """``p_base ** (1 - a) * (p_ex + FLOOR) ** a`` where only neighbours vote; exact-title rows
    and rows without examples as the package's blend has them."""
    p = blend(h.p_base, p_ex, h.has_exact, weight=w, exact_trust=0.95)
    near = (p_ex.sum(axis=1) > 0) & ~h.has_exact
    log_p = (1 - w) * np.log(np.clip(h.p_base[near], 1e-12, None)) + w * np.log(p_ex[near] + FLOOR)
    q = np.exp(log_p - log_p.max(axis=1, keepdims=True))
    p[near] = q / q.sum(axis=1, keepdims=True)
    return p


def held(coder: Any, embedder: Any, voting: pd.DataFrame, records: list[JobRecord],
         gold_codes: Any) -> HeldOut:  # fmt: skip
    classes = [str(c) for c in coder.predictor.classes_]
    voter = ExampleVoter(MemoryExampleIndex(candidates=max(VOTE_GRID["neighbours"])), embedder,
                         classes=classes).fit(voting, "rules")  # fmt: skip
    pos = {str(c): i for i, c in enumerate(voter.classes_)}
    base_pos = {str(c): j for j, c in enumerate(coder.predictor.classes_)}
    cols = np.asarray([base_pos[str(c)] for c in voter.classes_])
    p = np.asarray(coder.predictor.predict_proba(records), np.float64)[:, cols]
    found, exact = voter.evidence(records)
    return HeldOut(p, found, exact, np.asarray([pos[str(c)] for c in gold_codes]), voter)


def held_out_and_dev(
    home: str, recipe: str, coder_kind: str
) -> tuple[HeldOut, HeldOut, pd.DataFrame, pd.DataFrame]:
    """``(held-out titles, dev, the examples voting for the held-out titles, every stored
    example)`` for one coder of the ``examples_esco.py`` workspace at ``home``, held out as
    `examples fit` holds them out."""
    ws = Workspace.resolve(home)
    model_dir = Path(home) / "models" / recipe
    tuned = coder_kind != "retrieval"
    settings = load_settings(overrides=[
        'taxonomy.default="esco"', 'index.kinds=["title","alt_title"]', "examples.enabled=false",
        *([f'embedder.model="{model_dir / "embedder"}"'] if tuned else []),
    ])  # fmt: skip
    coder = load_coder(settings, ws, model=str(model_dir) if coder_kind == "model" else "retrieval",
                       taxonomy_name="esco")  # fmt: skip
    embedder = make_embedder(settings, ws)
    table = ExampleStore.of(ws, "esco").table()
    classes = {str(c) for c in coder.predictor.classes_}
    known = table[table["code"].astype(str).isin(classes)].reset_index(drop=True)
    if coder_kind == "model":
        pos = untrained_rows(known, coder.metadata["examples"]["untrained_keys"], rows=2000, seed=0)
    else:
        pos = held_out_rows(known, rows=2000, share=0.2, seed=0)
    out = known.iloc[pos]
    voting = known.drop(index=known.index[pos])
    fit = held(coder, embedder, voting,
               [JobRecord(str(t), str(d)) for t, d in zip(out["title"], out["description"],
                                                          strict=True)],
               out["code"])  # fmt: skip
    dev_df, _ = split(DATA / "jobbert_validation" / "titles.csv", load_taxonomy(ws, "esco"), 18,
                      0.25, 0)  # fmt: skip
    dev = held(coder, embedder, known, as_records(dev_df[["title"]]), dev_df["code"])
    return fit, dev, voting, known


def coder_args(doc: str | None) -> argparse.Namespace:
    """``--home``, ``--recipe`` and ``--coder`` of a study over one coder of the workspace."""
    ap = argparse.ArgumentParser(description=(doc or "").split("\n")[0])
    ap.add_argument("--home", required=True)
    ap.add_argument("--recipe", default="esco-history-head")
    ap.add_argument("--coder", choices=("model", "retrieval", "tuned-retrieval"), default="model")
    return ap.parse_args()


#: The vote settings `examples fit` chose for every coder of the workspace (the grid studies
#: history_prior.py and hierarchy_smoothing.py vote with them).
FITTED_VOTES = {"exact_weight": 0.8, "exact_trust": 0.95, "neighbours": 40, "temperature": 0.1,
                "min_similarity": 0.0}  # fmt: skip


def top_scores(h: HeldOut, p: np.ndarray) -> tuple[float, float, float]:
    """Top-1, top-5 and ECE (of the top probability) of ``p`` on the rows of ``h``."""
    hit1, hit5 = ranks(p, h.gold)
    ece = expected_calibration_error(p.max(axis=1), p.argmax(axis=1) == h.gold)
    return float(hit1.mean()), float(hit5.mean()), float(ece)


def by_fit_rule(frame: pd.DataFrame) -> pd.DataFrame:
    """The grid rows best first as `examples fit` ranks them: held-out top-1 + top-5, ties by
    held-out top-1 (columns ``fit_sum``, ``fit_top1``)."""
    return frame.sort_values(["fit_sum", "fit_top1"], ascending=False, kind="stable")


def report_choices(
    choices: dict[str, pd.DataFrame], setting: list[str], grid: pd.DataFrame, path: Path
) -> None:
    """Print the first row of each (sorted) frame of ``choices`` as a Markdown table row: the
    ``setting`` columns, held-out and dev top-1 / top-5 (ECE); save the whole ``grid``."""
    for name, frame in choices.items():
        x = frame.iloc[0]
        chosen = ", ".join(str(x[c]) for c in setting)
        print(f"| {name} | {chosen} | {x.fit_top1:.3f} / {x.fit_top5:.3f} ({x.fit_ece:.3f}) | "
              f"{x.dev_top1:.3f} / {x.dev_top5:.3f} ({x.dev_ece:.3f}) |")  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    grid.to_csv(path, index=False)
    print(f"every setting: {path}")


def main() -> None:
    args = coder_args(__doc__)
    fit, dev, _, _ = held_out_and_dev(args.home, args.recipe, args.coder)

    def scores(h: HeldOut, p: np.ndarray) -> tuple[float, float, float]:
        hit1, hit5 = ranks(p, h.gold)
        return float(hit1.mean()), float(hit5.mean()), float(log_loss(p, h.gold).mean())

    rows = []
    keys = [k for k in VOTE_GRID if k != "weight"]
    for combo in itertools.product(*(VOTE_GRID[k] for k in keys)):
        s = {"exact_weight": 0.8, "exact_trust": 0.95, **dict(zip(keys, combo, strict=True))}
        ex_fit, ex_dev = fit.p_examples(s), dev.p_examples(s)
        for kind, w in itertools.product(("mixture", "product"), WEIGHTS):
            if kind == "mixture":
                pf = blend(fit.p_base, ex_fit, fit.has_exact, weight=w, exact_trust=0.95)
                pd_ = blend(dev.p_base, ex_dev, dev.has_exact, weight=w, exact_trust=0.95)
            else:
                pf, pd_ = product(fit, ex_fit, w), product(dev, ex_dev, w)
            rows.append((kind, *combo, w, *scores(fit, pf), *scores(dev, pd_)))
    df = pd.DataFrame(rows, columns=["blend", *keys, "weight", "fit_top1", "fit_top5", "fit_loss",
                                     "dev_top1", "dev_top5", "dev_loss"])  # fmt: skip
    df["fit_sum"], df["dev_sum"] = df.fit_top1 + df.fit_top5, df.dev_top1 + df.dev_top5
    print(
        f"coder {args.coder} ({args.recipe}): {len(fit.gold)} held-out titles, {len(dev.gold)} dev"
    )
    print("| blends | rule | chosen | held-out top-1 / top-5 / log loss | dev top-1 / top-5 |")
    print("|---|---|---|---|---|")
    for blends in (("mixture",), ("mixture", "product")):
        m = df[df.blend.isin(blends)]
        rules = {
            "top-1, then top-5 (before)": m.sort_values(["fit_top1", "fit_top5"], ascending=False,
                                                        kind="stable"),
            "top-1 + top-5 (now)": m.sort_values(["fit_sum", "fit_top1"], ascending=False,
                                                 kind="stable"),
            "log loss": m.sort_values("fit_loss", kind="stable"),
            "dev optimum (bound)": m.sort_values("dev_sum", ascending=False, kind="stable"),
        }  # fmt: skip
        for name, ordered in rules.items():
            x = ordered.iloc[0]
            print(f"| {' + '.join(blends)} | {name} | {x.blend}, k {x.neighbours}, T "
                  f"{x.temperature}, min sim {x.min_similarity}, w {x.weight} | "
                  f"{x.fit_top1:.3f} / {x.fit_top5:.3f} / {x.fit_loss:.3f} | "
                  f"{x.dev_top1:.3f} / {x.dev_top5:.3f} |")  # fmt: skip


if __name__ == "__main__":
    main()
