"""Contrastive fine-tuning of the sentence embedder on (record text, code text) pairs.

The category-embedding approach: pull each training record (a title, a task, a title + duties)
towards the text of its code (the official occupation title) with sentence-transformers'
``MultipleNegativesRankingLoss`` (InfoNCE with in-batch negatives), trained by its own
``SentenceTransformerTrainer`` on CPU. Batches come from ``CodeDistinctBatchSampler``: a code
appears at most once per batch, so no in-batch "negative" is secretly a positive. With
``hard_negatives`` (one ``(text, code)`` per pair, e.g. the nearest wrong code's title) the rows
become (anchor, positive, negative) triplets for the same loss, and a batch also never holds a
row whose negative's code is another row's code. The result is a sentence-transformers model
directory that ``Embedder(model=<dir>)`` loads.

The other objective (``finetune.objective = "codes"``, :func:`finetune_code_classifier`) trains
the embedder end to end as a classifier over the codes: a cosine-softmax head (``CodeSoftmaxLoss``,
one row per code, started at the mean base embedding of the code's training texts) on coded
texts, by the same trainer; the embedder is saved with the trained head beside it
(``code_head.safetensors``, ``autocoder.classify.codehead``), which a linear classifier can start from
(``EmbeddingClassifier(head_init="embedder")``). On real ESCO vacancy titles the embedder alone
is level with MNRL pairs once mixed into a coder (benchmarks/RESULTS.md, "Issue 18 (a): the
embedder fine-tuned as a classifier").
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from sentence_transformers.base.sampler import DefaultBatchSampler
from torch import nn

from autocoder.classify.codehead import HEAD_FILE, CodeHead, save_code_head
from autocoder.embed import resolve_model

if TYPE_CHECKING:
    from autocoder.classify.recipe import FinetuneSection

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


def distinct_batches(
    order: list[int],
    codes: Sequence[str],
    batch_size: int,
    *,
    negative_codes: Sequence[str] | None = None,
) -> list[list[int]]:
    """Cut ``order`` into batches, pushing a repeated code to a later batch.

    No batch holds a code twice: the rows of codes too frequent to spread over the full batches
    end in smaller batches of distinct codes; rows of a single code left at the end (no
    in-batch negative) are dropped.

    With ``negative_codes`` (the code of each row's hard negative) a row's code and its
    negative's code must both be new to the batch, so no negative is another row's positive.
    """

    def keys(i: int) -> set[str]:
        return {codes[i]} if negative_codes is None else {codes[i], negative_codes[i]}

    batches: list[list[int]] = []
    current: list[int] = []
    seen: set[str] = set()
    carry: list[int] = []
    for i in order:
        if keys(i) & seen:
            carry.append(i)
            continue
        current.append(i)
        seen |= keys(i)
        while len(current) == batch_size:  # a refill from the carry can fill a batch too
            batches.append(current)
            current, carry, seen = _take(carry, keys, batch_size)
    rest = current + carry
    while rest:  # the rows of codes too frequent to spread: smaller distinct batches
        batch, rest, _ = _take(rest, keys, batch_size)
        if len(batch) < 2:  # one code left: no in-batch negative, nothing to learn
            break
        batches.append(batch)
    return batches


def _take(
    rows: list[int], keys: Callable[[int], set[str]], batch_size: int
) -> tuple[list[int], list[int], set[str]]:
    """(batch, left, keys in batch): ``rows`` in order into one batch while their keys are new
    to it and it has room; the others are left, in order."""
    batch: list[int] = []
    left: list[int] = []
    seen: set[str] = set()
    for j in rows:
        if keys(j) & seen or len(batch) >= batch_size:
            left.append(j)
        else:
            batch.append(j)
            seen |= keys(j)
    return batch, left, seen


class CodeDistinctBatchSampler(DefaultBatchSampler):
    """Batches with distinct codes: epoch ``e`` cuts ``round_robin_order(codes, seed + e)``.

    The trainer builds it with the dataset and its batch settings and calls ``set_epoch``
    before each epoch; ``codes`` gives the code of every dataset row, ``negative_codes`` (if
    any) the code of its hard negative.
    """

    def __init__(
        self,
        dataset: Any,
        *,
        codes: Sequence[str],
        batch_size: int,
        negative_codes: Sequence[str] | None = None,
        drop_last: bool = False,
        valid_label_columns: list[str] | None = None,
        generator: Any = None,
        seed: int = 0,
    ) -> None:
        if len(codes) != len(dataset):
            raise ValueError(f"{len(codes)} codes for a dataset of {len(dataset)} rows")
        super().__init__(
            dataset,
            batch_size=batch_size,
            drop_last=drop_last,
            valid_label_columns=valid_label_columns,
            generator=generator,
            seed=seed,
        )
        self.codes = list(codes)
        self.negative_codes = None if negative_codes is None else list(negative_codes)

    def plan(self) -> list[list[int]]:
        order = round_robin_order(self.codes, seed=self.seed + self.epoch)
        return distinct_batches(
            order, self.codes, self.batch_size, negative_codes=self.negative_codes
        )

    def __iter__(self) -> Iterator[list[int]]:
        yield from self.plan()

    def __len__(self) -> int:
        return len(self.plan())


@dataclass(frozen=True)
class Pairs:
    """Training pairs: ``codes[i]`` is the code of ``(anchors[i], positives[i])`` (no two pairs
    of a batch share one); ``hard_negatives[i]``, when given, is ``(text, code)`` of a wrong
    code's text for pair ``i`` (MNRL on triplets)."""

    anchors: Sequence[str]
    positives: Sequence[str]
    codes: Sequence[str]
    hard_negatives: Sequence[tuple[str, str]] | None = None

    def check(self) -> None:
        _check_pairs(self.anchors, self.positives, self.codes, self.hard_negatives)


def _check_pairs(
    anchors: Sequence[str],
    positives: Sequence[str],
    codes: Sequence[str],
    hard_negatives: Sequence[tuple[str, str]] | None = None,
) -> None:
    if not (len(anchors) == len(positives) == len(codes)):
        raise ValueError(
            f"anchors ({len(anchors)}), positives ({len(positives)}) and codes ({len(codes)}) "
            "must have the same length"
        )
    if len(anchors) < 2:
        raise ValueError("fine-tuning needs at least two pairs")
    if hard_negatives is None:
        return
    if len(hard_negatives) != len(anchors):
        raise ValueError(f"{len(hard_negatives)} hard negatives for {len(anchors)} pairs")
    for i, (_, neg_code) in enumerate(hard_negatives):
        if neg_code == codes[i]:
            raise ValueError(
                f"pair {i} ({anchors[i]!r}): hard negative has its own code {neg_code!r}"
            )


def _training_args(
    output_dir: str,
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    warmup_fraction: float,
    seed: int,
    show_progress: bool,
) -> Any:
    from sentence_transformers import SentenceTransformerTrainingArguments

    return SentenceTransformerTrainingArguments(
        output_dir=output_dir,
        num_train_epochs=epochs,
        per_device_train_batch_size=batch_size,
        learning_rate=lr,
        weight_decay=0.01,  # torch AdamW's default, as before the trainer
        warmup_steps=warmup_fraction,  # a float below 1 is a fraction of the steps
        lr_scheduler_type="linear",
        max_grad_norm=1.0,
        seed=seed,
        use_cpu=True,
        report_to=[],
        save_strategy="no",
        logging_strategy="steps",
        logging_steps=1,
        disable_tqdm=not show_progress,
        push_to_hub=False,
    )


def _train(model: Any, pairs: Pairs, *, scale: float, args: Any) -> list[float]:
    """Run ``SentenceTransformerTrainer`` with MNRL; returns the per-step training losses."""
    from datasets import Dataset
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    columns = {"anchor": list(pairs.anchors), "positive": list(pairs.positives)}
    codes, negative_codes = pairs.codes, None
    if pairs.hard_negatives is not None:
        columns["negative"] = [text for text, _ in pairs.hard_negatives]
        negative_codes = [code for _, code in pairs.hard_negatives]

    def sampler(dataset: Any, **kwargs: Any) -> CodeDistinctBatchSampler:
        return CodeDistinctBatchSampler(
            dataset, codes=codes, negative_codes=negative_codes, **kwargs
        )

    args.batch_sampler = sampler
    return _run_trainer(
        model, args, Dataset.from_dict(columns), MultipleNegativesRankingLoss(model, scale=scale)
    )


def _run_trainer(model: Any, args: Any, dataset: Any, loss: Any) -> list[float]:
    """``SentenceTransformerTrainer`` on ``dataset`` with ``loss``, quiet on stdout; returns
    the per-step training losses."""
    from sentence_transformers import SentenceTransformerTrainer
    from transformers import PrinterCallback

    trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=dataset, loss=loss)
    trainer.remove_callback(PrinterCallback)  # per-step loss dicts on stdout
    # the progress bar writes each step's loss dict with tqdm.write, to stdout by default:
    # the CLI's stdout is its JSON answer, so the trainer talks on stderr
    with contextlib.redirect_stdout(sys.stderr):
        trainer.train()
    return [float(e["loss"]) for e in trainer.state.log_history if "loss" in e]


def _fine_tune(
    base_model: str,
    ft: FinetuneSection,
    *,
    seed: int,
    show_progress: bool,
    step: Callable[[Any, Any], list[float]],
) -> tuple[Any, list[float]]:
    """Load ``base_model`` at the recipe's sequence length and run ``step(model, training
    arguments)`` in a scratch directory; returns the model (its own sequence length back) and
    the per-step losses."""
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(resolve_model(base_model), device="cpu")
    original_length = model.max_seq_length
    # titles and task statements are short; shorter batches train faster
    model.max_seq_length = min(ft.max_seq_length, original_length or ft.max_seq_length)
    with tempfile.TemporaryDirectory(prefix="autocoder-finetune-") as scratch:
        args = _training_args(
            scratch, epochs=ft.epochs, batch_size=ft.batch_size, lr=ft.lr,
            warmup_fraction=WARMUP_FRACTION, seed=seed, show_progress=show_progress,
        )  # fmt: skip
        losses = step(model, args)
    model.max_seq_length = original_length
    return model, losses


def _info(
    base_model: str,
    ft: FinetuneSection,
    what: dict[str, Any],
    losses: list[float],
    started: float,
    meta: dict[str, Any] | None,
) -> dict[str, Any]:
    """``autocoder_finetune.json``: the base, ``what`` was trained on, the settings, the
    losses, the time and ``meta``."""
    return {
        "base_model": base_model,
        **what,
        **ft.model_dump(include={"epochs", "batch_size", "lr", "scale", "max_seq_length"}),
        **_loss_summary(losses),
        "seconds": round(time.perf_counter() - started, 2),
        **(meta or {}),
    }


class CodeSoftmaxLoss(nn.Module):
    """Cross-entropy over the codes of a cosine-softmax head on the sentence embedding.

    ``prototypes`` (codes x dimension) starts the head; logits are ``scale`` x the cosine of
    the embedding and each code's head row. The trainer optimises the head with the model
    (``learning_rate_mapping`` gives it its own learning rate, ``HEAD_LR``: at the body's
    1e-5 .. 1e-4 a head barely moves).
    """

    def __init__(
        self, model: Any, prototypes: Any, *, scale: float = 20.0, label_smoothing: float = 0.1
    ) -> None:
        super().__init__()
        self.model = model
        self.head = nn.Parameter(torch.as_tensor(prototypes, dtype=torch.float32).clone())
        self.scale = scale
        self.label_smoothing = label_smoothing

    def forward(self, sentence_features: Any, labels: torch.Tensor) -> torch.Tensor:
        emb = nn.functional.normalize(
            self.model(sentence_features[0])["sentence_embedding"], dim=-1
        )
        logits = self.scale * emb @ nn.functional.normalize(self.head, dim=-1).T
        return nn.functional.cross_entropy(logits, labels, label_smoothing=self.label_smoothing)

    def get_config_dict(self) -> dict[str, Any]:
        return {"scale": self.scale, "label_smoothing": self.label_smoothing}

    def head_vectors(self) -> np.ndarray:
        """The head's rows, normalised (codes x dimension)."""
        return nn.functional.normalize(self.head.detach(), dim=-1).cpu().numpy()


def code_prototypes(model: Any, texts: Sequence[str], labels: np.ndarray, n_codes: int) -> Any:
    """Per code the normalised mean of its texts' normalised embeddings (codes x dimension)."""
    emb = np.asarray(model.encode(list(texts), batch_size=256, normalize_embeddings=True))
    proto = np.zeros((n_codes, emb.shape[1]), np.float32)
    np.add.at(proto, labels, emb)
    return proto / np.maximum(np.linalg.norm(proto, axis=1, keepdims=True), 1e-9)


#: The head's learning rate in the ``codes`` objective (the body's is ``finetune.lr``).
HEAD_LR = 2e-3


def finetune_code_classifier(
    texts: Sequence[str],
    codes: Sequence[str],
    *,
    base_model: str,
    output_dir: str | Path,
    options: FinetuneSection,
    seed: int = 0,
    show_progress: bool = False,
    meta: dict[str, Any] | None = None,
) -> Path:
    """Fine-tune ``base_model`` end to end as a classifier of ``texts`` into ``codes``
    (``CodeSoftmaxLoss``; random batches; the recipe's epochs, batch size, body learning
    rate, scale and sequence length); save the embedder to ``output_dir`` with
    ``autocoder_finetune.json`` and the trained head (``HEAD_FILE``: the sorted codes, the
    normalised head rows and the scale)."""
    from datasets import Dataset

    if len(texts) != len(codes) or len(texts) < 2:
        raise ValueError(f"{len(texts)} texts and {len(codes)} codes: need two or more of each")
    empty = [i for i, t in enumerate(texts) if not str(t).strip()]
    if empty:
        raise ValueError(f"text {empty[0]} (code {codes[empty[0]]!r}) is empty")
    started = time.perf_counter()
    classes = sorted(set(codes))
    pos = {c: i for i, c in enumerate(classes)}
    labels = np.asarray([pos[c] for c in codes], dtype=np.int64)
    dataset = Dataset.from_dict({"anchor": list(texts), "label": labels.tolist()})

    trained: list[CodeSoftmaxLoss] = []

    def step(model: Any, args: Any) -> list[float]:
        prototypes = code_prototypes(model, texts, labels, len(classes))
        args.learning_rate_mapping = {r"^head$": HEAD_LR}
        loss = CodeSoftmaxLoss(model, prototypes, scale=options.scale)
        trained.append(loss)
        return _run_trainer(model, args, dataset, loss)

    model, losses = _fine_tune(
        base_model, options, seed=seed, show_progress=show_progress, step=step
    )
    what = {
        "objective": "codes", "texts": len(texts), "codes": len(classes), "head_lr": HEAD_LR,
        "head_file": HEAD_FILE,
    }  # fmt: skip
    out = _save(model, Path(output_dir), _info(base_model, options, what, losses, started, meta))
    save_code_head(out, CodeHead(classes, trained[0].head_vectors(), options.scale))
    return out


#: Share of the training steps the learning rate warms up over.
WARMUP_FRACTION = 0.1


def finetune_embedder(
    pairs: Pairs,
    *,
    base_model: str,
    output_dir: str | Path,
    options: FinetuneSection,
    seed: int = 0,
    show_progress: bool = False,
    meta: dict[str, Any] | None = None,
) -> Path:
    """Fine-tune ``base_model`` on ``pairs`` with the recipe's ``[finetune]`` section
    (``options``: epochs, batch size, learning rate, MNRL scale, sequence length); save to
    ``output_dir``. The model directory gets ``autocoder_finetune.json`` with the settings,
    first/last loss and time."""
    ft = options
    pairs.check()
    negative_codes = None if pairs.hard_negatives is None else [c for _, c in pairs.hard_negatives]
    plan = distinct_batches(round_robin_order(pairs.codes, seed=seed), pairs.codes, ft.batch_size,
                            negative_codes=negative_codes)  # fmt: skip
    if not plan:
        raise ValueError(
            f"no batch of two pairs with distinct codes (and hard negatives of other codes) can "
            f"be made from {len(pairs.anchors)} pairs over {len(set(pairs.codes))} codes"
        )
    started = time.perf_counter()
    model, losses = _fine_tune(
        base_model, ft, seed=seed, show_progress=show_progress,
        step=lambda model, args: _train(model, pairs, scale=ft.scale, args=args),
    )  # fmt: skip
    what = {
        "pairs": len(pairs.anchors),
        "hard_negatives": pairs.hard_negatives is not None,
        "codes": len(set(pairs.codes)),
    }
    return _save(model, Path(output_dir), _info(base_model, ft, what, losses, started, meta))


def _save(model: Any, output_dir: Path, info: dict[str, Any]) -> Path:
    """Save the model directory with ``META_FILE`` describing the fine-tuning."""
    model.eval()
    output_dir.mkdir(parents=True, exist_ok=True)
    model.save(str(output_dir))
    (output_dir / META_FILE).write_text(json.dumps(info, indent=2))
    log.info(
        "fine-tuned %s on %d rows in %.0fs",
        info["base_model"],
        info.get("pairs", info.get("texts")),
        info["seconds"],
    )
    return output_dir


def _loss_summary(losses: list[float]) -> dict[str, Any]:
    """Steps, the first step's loss and the mean of the last 20 (None without steps)."""
    tail = losses[-20:]
    return {
        "steps": len(losses),
        "first_loss": losses[0] if losses else None,
        "last_loss": sum(tail) / len(tail) if tail else None,
    }
