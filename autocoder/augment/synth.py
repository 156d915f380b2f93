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
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from itertools import zip_longest
from pathlib import Path
from typing import Any

import pandas as pd

from autocoder.io import InputError, read_table, write_table
from autocoder.llm.cache import LLMCache
from autocoder.llm.prompts import load_prompt
from autocoder.llm.tasks import AnswerError, parse_synth, run_requests, synth_request
from autocoder.records import JobRecord, clean_text
from autocoder.taxonomy.model import Taxonomy

log = logging.getLogger("autocoder.synth")

SYNTH_COLUMNS = ["code", "title", "duties", "source", "prompt_version", "model", "retrieved_rank"]


def normalize_text(text: str) -> str:
    """Lower case, punctuation removed, whitespace collapsed: the key for duplicate checks."""
    return " ".join(re.sub(r"[^\w\s]", " ", str(text).lower()).split())


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
        counts[code] = len({normalize_text(t) for t in taxonomy_titles(taxonomy, code)})
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


class _Existing:
    """Normalised texts already known: (title, duties) pairs, titles and duties."""

    def __init__(self) -> None:
        self.pairs: set[tuple[str, str]] = set()
        self.titles: set[str] = set()
        self.duties: set[str] = set()

    def add(self, title: str, duties: str) -> None:
        t, d = normalize_text(title), normalize_text(duties)
        self.pairs.add((t, d))
        if t:
            self.titles.add(t)
        if d:
            self.duties.add(d)

    def is_duplicate(self, title: str, duties: str) -> bool:
        t, d = normalize_text(title), normalize_text(duties)
        if (t, d) in self.pairs:
            return True
        if not d:
            return t in self.titles
        if not t:
            return d in self.duties
        return False


def _existing_data(taxonomy: Taxonomy, training: pd.DataFrame | None) -> _Existing:
    known = _Existing()
    for node in taxonomy.leaves():
        for title in taxonomy_titles(taxonomy, node.code):
            known.add(title, "")
        for task in node.tasks:
            known.add("", task)
    if training is not None:
        titles = training["title"] if "title" in training.columns else [""] * len(training)
        duty_col = next((c for c in ("duties", "description") if c in training.columns), None)
        duties = training[duty_col] if duty_col else [""] * len(training)
        for t, d in zip(titles, duties, strict=True):
            known.add(clean_text(t), clean_text(d))
    return known


def synth_file(
    output_path: str | Path,
    *,
    min_per_code: int,
    settings: Any,
    workspace: Any,
    training_data: str | Path | None = None,
    taxonomy: Taxonomy | None = None,
    model: Any = None,
    cache: LLMCache | None = None,
    retriever: Any = None,
    codes: Sequence[str] | None = None,
    max_codes: int | None = None,
    n_per_code: int = 30,
    k: int = 5,
    prompt_version: str = "v1",
    prompt_dir: str | Path | None = None,
    show_progress: bool = True,
) -> dict[str, Any]:
    """Generate synthetic examples for rare codes into ``output_path``; returns a summary."""
    from autocoder.labeler import llm_from_settings, resolve_taxonomy, retriever_from_settings

    if min_per_code < 1:
        raise ValueError("min_per_code must be at least 1")
    output_path = Path(output_path)
    taxonomy = resolve_taxonomy(settings, workspace, taxonomy)
    training = read_table(training_data, string_columns=("code",)) if training_data else None
    counts = count_examples(taxonomy, training)
    targets = rare_codes(counts, min_per_code, codes=codes, max_codes=max_codes)
    prompt = load_prompt("synth", prompt_version, override=prompt_dir)
    summary: dict[str, Any] = {
        "output": str(output_path),
        "min_per_code": min_per_code,
        "counted_from": str(training_data) if training_data else "taxonomy titles",
        "codes_below_min": len(rare_codes(counts, min_per_code, codes=codes)),
        "codes_requested": len(targets),
        "prompt_version": prompt.id,
    }
    rows: list[dict[str, Any]] = []
    failed: dict[str, str] = {}
    generated = dropped_dup = dropped_ret = 0
    model_name = ""
    run: dict[str, int] = {"requests": 0, "cache_hits": 0}
    if targets:
        if model is None:
            model = llm_from_settings(settings, workspace)
        if cache is None and settings.llm.cache:
            cache = LLMCache(workspace.llm_cache)
        model_name = str(getattr(model, "model", type(model).__name__))
        requests = [synth_request(prompt, c, taxonomy, n=n_per_code) for c in targets]
        answers, stats = run_requests(
            model, requests, cache=cache, show_progress=show_progress, desc="synth"
        )
        run = {"requests": stats.requests, "cache_hits": stats.cache_hits}
        known = _existing_data(taxonomy, training)
        candidates: list[tuple[str, str, str]] = []
        for code, answer in zip(targets, answers, strict=True):
            if isinstance(answer, Exception):
                failed[code] = f"{type(answer).__name__}: {answer}"
                continue
            try:
                parsed = parse_synth(answer, n=n_per_code)
            except AnswerError as exc:
                failed[code] = f"AnswerError: {exc}"
                continue
            for title, duties in zip_longest(parsed.titles, parsed.duties, fillvalue=""):
                generated += 1
                if known.is_duplicate(title, duties):
                    dropped_dup += 1
                    continue
                known.add(title, duties)  # also drops repeats within the generated set
                candidates.append((code, title, duties))
        if candidates:
            if retriever is None:
                retriever = retriever_from_settings(settings, workspace, taxonomy, k=k)
            found, _, _ = retriever.rank([JobRecord(t, d) for _, t, d in candidates])
            for (code, title, duties), top in zip(candidates, found, strict=True):
                top = [str(c) for c in top[:k]]
                if code not in top:
                    dropped_ret += 1
                    continue
                rows.append(
                    {
                        "code": code,
                        "title": title,
                        "duties": duties,
                        "source": "synthetic",
                        "prompt_version": prompt.id,
                        "model": model_name,
                        "retrieved_rank": top.index(code) + 1,
                    }
                )
    out = pd.DataFrame(rows, columns=SYNTH_COLUMNS)
    out["retrieved_rank"] = out["retrieved_rank"].astype("int64")
    write_table(out, output_path)
    for code, reason in failed.items():
        log.warning("synth: no examples for %s: %s", code, reason)
    summary.update(
        {
            "model": model_name,
            "generated": generated,
            "dropped_duplicates": dropped_dup,
            "dropped_not_retrieved": dropped_ret,
            "kept": len(out),
            "codes_with_examples": int(out["code"].nunique()),
            "codes_failed": failed,
            "llm_requests": run["requests"],
            "cache_hits": run["cache_hits"],
        }
    )
    return summary
