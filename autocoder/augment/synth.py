"""Synthetic job titles and duties for codes with few training examples (prompt ``synth.v1``).

For every leaf code with fewer than ``min_per_code`` examples — counted in a training table
(column ``code``) or, without one, among the taxonomy's own titles (title, alternate and
reported titles) — the LLM writes ``n_per_code`` job titles and job duties. Generated records
that duplicate existing data are dropped, and so is every record whose own code is not among
the top-k codes retrieved for it (a cheap check that the text really describes that code).
Each kept row records its provenance: ``source="synthetic"``, the prompt version, the model and
the rank at which retrieval found its code. The classifier's data builder reads the output
(columns ``code, title, duties, source``).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from itertools import zip_longest
from pathlib import Path
from typing import Any

import pandas as pd

from autocoder.coding.predictor import Retriever
from autocoder.io import InputError, read_table, write_table
from autocoder.llm.cache import LLMCache
from autocoder.llm.prompts import PromptTemplate, load_prompt
from autocoder.llm.tasks import AnswerError, Model, parse_synth, run_requests, synth_request
from autocoder.records import JobRecord, clean_text, duties_column, normalize_text, table_texts
from autocoder.taxonomy.model import Taxonomy

log = logging.getLogger("autocoder.synth")

SYNTH_COLUMNS = ["code", "title", "duties", "source", "prompt_version", "model", "retrieved_rank"]


def taxonomy_titles(taxonomy: Taxonomy, code: str) -> list[str]:
    node = taxonomy.get(code)
    return [t for t in [node.title, *node.alt_titles, *node.reported_titles] if t]


def count_examples(taxonomy: Taxonomy, training: pd.DataFrame | None = None) -> Counter[str]:
    """Examples per leaf code: rows of ``training`` (column ``code``), else distinct titles."""
    counts: Counter[str] = Counter({c: 0 for c in taxonomy.leaf_codes()})
    if training is not None:
        if "code" not in training.columns:
            raise InputError(
                f"training data needs a 'code' column; columns are {list(training.columns)}"
            )
        for code, n in Counter(clean_text(c) for c in training["code"]).items():
            if code in counts:
                counts[code] = n
        return counts
    for code in counts:
        counts[code] = len(
            {normalize_text(t, keep_punctuation=False) for t in taxonomy_titles(taxonomy, code)}
        )
    return counts


def rare_codes(
    counts: Counter[str],
    min_per_code: int,
    *,
    codes: Iterable[str] | None = None,
    max_codes: int | None = None,
) -> list[str]:
    """Codes below ``min_per_code``, fewest examples first (then by code)."""
    pool = list(counts) if codes is None else list(dict.fromkeys(codes))
    unknown = [c for c in pool if c not in counts]
    if unknown:
        raise ValueError(f"codes not among the taxonomy's leaf codes: {unknown[:10]}")
    below = sorted((c for c in pool if counts[c] < min_per_code), key=lambda c: (counts[c], c))
    return below[:max_codes] if max_codes is not None else below


class ExistingTexts:
    """Normalised texts already known: (title, duties) pairs, titles and duties."""

    def __init__(self) -> None:
        self.pairs: set[tuple[str, str]] = set()
        self.titles: set[str] = set()
        self.duties: set[str] = set()

    def add(self, title: str, duties: str) -> None:
        t, d = (
            normalize_text(title, keep_punctuation=False),
            normalize_text(duties, keep_punctuation=False),
        )
        self.pairs.add((t, d))
        if t:
            self.titles.add(t)
        if d:
            self.duties.add(d)

    def is_duplicate(self, title: str, duties: str) -> bool:
        t, d = (
            normalize_text(title, keep_punctuation=False),
            normalize_text(duties, keep_punctuation=False),
        )
        if (t, d) in self.pairs:
            return True
        if not d:
            return t in self.titles
        if not t:
            return d in self.duties
        return False


def existing_data(taxonomy: Taxonomy, training: pd.DataFrame | None) -> ExistingTexts:
    known = ExistingTexts()
    for node in taxonomy.leaves():
        for title in taxonomy_titles(taxonomy, node.code):
            known.add(title, "")
        for task in node.tasks:
            known.add("", task)
    if training is not None and ("title" in training.columns or duties_column(training.columns)):
        titles, duties = table_texts(training, source="training data")
        for t, d in zip(titles, duties, strict=True):
            known.add(t, d)
    return known


@dataclass
class SynthPlan:
    """Which codes get synthetic examples, and what they were counted against."""

    taxonomy: Taxonomy
    min_per_code: int
    targets: list[str]
    codes_below_min: int
    counted_from: str = "taxonomy titles"
    training: pd.DataFrame | None = None


def plan_synth(
    taxonomy: Taxonomy,
    min_per_code: int,
    *,
    training_data: str | Path | None = None,
    codes: Sequence[str] | None = None,
    max_codes: int | None = None,
) -> SynthPlan:
    """The rare codes (fewest examples first) among ``codes`` (default: every leaf code)."""
    if min_per_code < 1:
        raise ValueError("min_per_code must be at least 1")
    training = read_table(training_data, string_columns=("code",)) if training_data else None
    counts = count_examples(taxonomy, training)
    return SynthPlan(
        taxonomy,
        min_per_code,
        rare_codes(counts, min_per_code, codes=codes, max_codes=max_codes),
        len(rare_codes(counts, min_per_code, codes=codes)),
        str(training_data) if training_data else "taxonomy titles",
        training,
    )


@dataclass
class _Generated:
    """The LLM's new (code, title, duties) candidates, after the duplicate filter."""

    candidates: list[tuple[str, str, str]] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    generated: int = 0
    dropped_duplicates: int = 0
    requests: int = 0
    cache_hits: int = 0


def _generate(
    plan: SynthPlan,
    model: Model,
    prompt: PromptTemplate,
    *,
    cache: LLMCache | None,
    n_per_code: int,
    show_progress: bool,
) -> _Generated:
    requests = [synth_request(prompt, c, plan.taxonomy, n=n_per_code) for c in plan.targets]
    answers, stats = run_requests(
        model, requests, cache=cache, show_progress=show_progress, desc="synth"
    )
    out = _Generated(requests=stats.requests, cache_hits=stats.cache_hits)
    known = existing_data(plan.taxonomy, plan.training)
    for code, answer in zip(plan.targets, answers, strict=True):
        if isinstance(answer, Exception):
            out.failed[code] = f"{type(answer).__name__}: {answer}"
            continue
        try:
            parsed = parse_synth(answer, n=n_per_code)
        except AnswerError as exc:
            out.failed[code] = f"AnswerError: {exc}"
            continue
        for title, duties in zip_longest(parsed.titles, parsed.duties, fillvalue=""):
            out.generated += 1
            if known.is_duplicate(title, duties):
                out.dropped_duplicates += 1
                continue
            known.add(title, duties)  # also drops repeats within the generated set
            out.candidates.append((code, title, duties))
    return out


def _retrieved(
    candidates: list[tuple[str, str, str]], retriever: Retriever, k: int
) -> list[tuple[str, str, str, int]]:
    """The candidates whose code is among the top ``k`` retrieved for them, with its rank."""
    if not candidates:
        return []
    found, _, _ = retriever.rank([JobRecord(t, d) for _, t, d in candidates])
    kept = []
    for (code, title, duties), top in zip(candidates, found, strict=True):
        top = [str(c) for c in top[:k]]
        if code in top:
            kept.append((code, title, duties, top.index(code) + 1))
    return kept


def synth_file(
    output_path: str | Path,
    plan: SynthPlan,
    *,
    model: Model | None,
    retriever: Retriever | None,
    cache: LLMCache | None = None,
    n_per_code: int = 30,
    k: int = 5,
    prompt_version: str = "v1",
    prompt_dir: str | Path | None = None,
    show_progress: bool = True,
) -> dict[str, Any]:
    """Generate synthetic examples for ``plan.targets`` into ``output_path``; returns a summary.

    ``model`` and ``retriever`` may be None only when the plan has no target codes.
    """
    output_path = Path(output_path)
    prompt = load_prompt("synth", prompt_version, override=prompt_dir)
    gen, kept, name = _Generated(), [], ""
    if plan.targets:
        if model is None or retriever is None:
            raise ValueError(f"{len(plan.targets)} codes need examples: give a model and retriever")
        name = str(getattr(model, "model", type(model).__name__))
        gen = _generate(
            plan, model, prompt, cache=cache, n_per_code=n_per_code, show_progress=show_progress
        )
        kept = _retrieved(gen.candidates, retriever, k)
    out = pd.DataFrame(
        [(c, t, d, "synthetic", prompt.id, name, rank) for c, t, d, rank in kept],
        columns=SYNTH_COLUMNS,
    )
    out["retrieved_rank"] = out["retrieved_rank"].astype("int64")
    write_table(out, output_path)
    for code, reason in gen.failed.items():
        log.warning("synth: no examples for %s: %s", code, reason)
    return {
        "output": str(output_path),
        "min_per_code": plan.min_per_code,
        "counted_from": plan.counted_from,
        "codes_below_min": plan.codes_below_min,
        "codes_requested": len(plan.targets),
        "prompt_version": prompt.id,
        "model": name,
        "generated": gen.generated,
        "dropped_duplicates": gen.dropped_duplicates,
        "dropped_not_retrieved": len(gen.candidates) - len(kept),
        "kept": len(out),
        "codes_with_examples": int(out["code"].nunique()),
        "codes_failed": gen.failed,
        "llm_requests": gen.requests,
        "cache_hits": gen.cache_hits,
    }
