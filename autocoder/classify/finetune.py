"""Contrastive fine-tuning of the sentence embedder on (record text, code text) pairs.

The category-embedding approach: pull each training record (a title, a task, a title + duties)
towards the text of its code (the official occupation title) with a multiple-negatives ranking
loss (InfoNCE with in-batch negatives). Batches are built so that a code appears at most once
per batch, so no in-batch "negative" is secretly a positive. Runs on CPU; the result is a
sentence-transformers model directory that ``Embedder(model=<dir>)`` loads.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from autocoder.embed import resolve_model

log = logging.getLogger(__name__)

META_FILE = "autocoder_finetune.json"


def round_robin_order(codes: Sequence[str], *, seed: int = 0) -> list[int]:
    """Indices ordered so consecutive items cycle through codes (distinct codes per batch)."""
    rng = random.Random(seed)
    by_code: dict[str, list[int]] = defaultdict(list)
    for i, c in enumerate(codes):
        by_code[c].append(i)
    queues = list(by_code.values())
    for q in queues:
        rng.shuffle(q)
    order: list[int] = []
    depth = 0
    while True:
        layer = [q[depth] for q in queues if depth < len(q)]
        if not layer:
            return order
        rng.shuffle(layer)
        order.extend(layer)
        depth += 1


def distinct_batches(order: list[int], codes: Sequence[str], batch_size: int) -> list[list[int]]:
    """Cut ``order`` into batches, pushing a repeated code to a later batch."""
    batches: list[list[int]] = []
    current: list[int] = []
    seen: set[str] = set()
    carry: list[int] = []
    for i in order:
        if codes[i] in seen:
            carry.append(i)
            continue
        current.append(i)
        seen.add(codes[i])
        if len(current) == batch_size:
            batches.append(current)
            current, seen = [], set()
            pending, carry = carry, []
            for j in pending:
                if codes[j] in seen or len(current) >= batch_size:
                    carry.append(j)
                else:
                    current.append(j)
                    seen.add(codes[j])
    rest = current + carry
    if len(rest) >= 2:
        batches.append(rest)
    return batches


def finetune_embedder(
    anchors: Sequence[str],
    positives: Sequence[str],
    codes: Sequence[str],
    *,
    base_model: str,
    output_dir: str | Path,
    epochs: int = 1,
    batch_size: int = 64,
    lr: float = 3e-5,
    scale: float = 20.0,
    warmup_fraction: float = 0.1,
    max_seq_length: int | None = 64,
    seed: int = 0,
    show_progress: bool = False,
    meta: dict[str, Any] | None = None,
) -> Path:
    """Fine-tune ``base_model`` on ``(anchor, positive)`` pairs; save to ``output_dir``."""
    import torch
    from sentence_transformers import SentenceTransformer

    try:
        from sentence_transformers.sentence_transformer.losses import (
            MultipleNegativesRankingLoss,
        )
    except ImportError:  # older layout
        from sentence_transformers.losses import MultipleNegativesRankingLoss  # type: ignore

    if not (len(anchors) == len(positives) == len(codes)):
        raise ValueError("anchors, positives and codes must have the same length")
    if len(anchors) < 2:
        raise ValueError("fine-tuning needs at least two pairs")
    torch.manual_seed(seed)
    started = time.perf_counter()
    model = SentenceTransformer(resolve_model(base_model), device="cpu")
    original_length = model.max_seq_length
    if max_seq_length:  # titles and task statements are short; shorter batches train faster
        model.max_seq_length = min(max_seq_length, original_length or max_seq_length)
    loss_fn = MultipleNegativesRankingLoss(model, scale=scale)
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    plans = [
        distinct_batches(round_robin_order(codes, seed=seed + e), codes, batch_size)
        for e in range(epochs)
    ]
    total = sum(len(p) for p in plans)
    warmup = max(1, int(total * warmup_fraction))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warmup) * max(0.0, (total - s) / max(1, total - warmup))
    )
    from tqdm.auto import tqdm

    bar = tqdm(total=total, desc="finetune", unit="batch", disable=not show_progress)
    model.train()
    losses: list[float] = []
    for plan in plans:
        for batch in plan:
            feats_a = model.preprocess([anchors[i] for i in batch])
            feats_p = model.preprocess([positives[i] for i in batch])
            loss = loss_fn([feats_a, feats_p], None)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            losses.append(float(loss.item()))
            bar.update(1)
    bar.close()
    model.eval()
    model.max_seq_length = original_length
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    model.save(str(output_dir))
    info = {
        "base_model": base_model,
        "pairs": len(anchors),
        "codes": len(set(codes)),
        "epochs": epochs,
        "batch_size": batch_size,
        "lr": lr,
        "scale": scale,
        "max_seq_length": max_seq_length,
        "steps": total,
        "first_loss": losses[0] if losses else None,
        "last_loss": sum(losses[-20:]) / max(1, len(losses[-20:])) if losses else None,
        "seconds": round(time.perf_counter() - started, 2),
        **(meta or {}),
    }
    (output_dir / META_FILE).write_text(json.dumps(info, indent=2))
    log.info("fine-tuned %s on %d pairs in %.0fs", base_model, len(anchors), info["seconds"])
    return output_dir
