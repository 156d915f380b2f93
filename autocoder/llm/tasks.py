"""LLM tasks as plain functions: render a request, parse and validate the answer.

* ``rag_pick`` — a job record and its retrieved candidate codes -> the chosen code (only a
  candidate is accepted), a relevance score per candidate and a rationale.
* ``synth`` — one occupation code -> synthetic job titles and job duties.

``run_requests`` sends a batch through a model with a disk cache and ``concurrency`` threads;
a failed item is returned as its exception, so one bad answer never stops a batch.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from tqdm.auto import tqdm

from autocoder.llm.cache import LLMCache, cache_key
from autocoder.llm.prompts import PromptTemplate
from autocoder.records import JobRecord
from autocoder.taxonomy.model import Taxonomy

log = logging.getLogger("autocoder.llm")

Model = Callable[..., dict[str, Any]]


class AnswerError(ValueError):
    """A parsed answer breaks the task's contract (e.g. a code that was not offered)."""

    def __init__(self, message: str, *, rejected_code: str | None = None) -> None:
        super().__init__(message)
        self.rejected_code = rejected_code


@dataclass(frozen=True)
class LLMRequest:
    prompt_id: str
    messages: list[dict[str, str]]
    schema: dict[str, Any] | None = None


def _short(text: str, limit: int) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3].rstrip() + "..."


# --- rag_pick -------------------------------------------------------------------------------


@dataclass
class RagPick:
    code: str
    scores: dict[str, float]
    rationale: str = ""


def render_record(record: JobRecord, *, max_chars: int = 1000) -> str:
    lines = []
    if record.title:
        lines.append(f"Job title: {_short(record.title, 200)}")
    if record.duties:
        lines.append(f"Job duties: {_short(record.duties, max_chars)}")
    return "\n".join(lines) if lines else "(empty record)"


def render_candidates(
    codes: Sequence[str], taxonomy: Taxonomy, *, max_definition_chars: int = 300
) -> str:
    lines = []
    for i, code in enumerate(codes, 1):
        node = taxonomy.get(code)
        definition = _short(node.description, max_definition_chars) if node.description else ""
        lines.append(f"{i}. {code} - {node.title}" + (f": {definition}" if definition else ""))
    return "\n".join(lines)


def rag_pick_schema(codes: Sequence[str], *, rationale_chars: int = 200) -> dict[str, Any]:
    """The answer schema; the code is an enum of the candidates so constrained decoding obeys."""
    score = {"type": "number", "minimum": 0, "maximum": 1}
    return {
        "type": "object",
        "properties": {
            "code": {"type": "string", "enum": list(codes)},
            "scores": {
                "type": "object",
                "properties": {c: dict(score) for c in codes},
                "required": list(codes),
            },
            "rationale": {"type": "string", "maxLength": rationale_chars},
        },
        "required": ["code", "scores", "rationale"],
    }


def rag_pick_request(
    prompt: PromptTemplate,
    record: JobRecord,
    candidates: Sequence[str],
    taxonomy: Taxonomy,
    *,
    max_definition_chars: int = 300,
) -> LLMRequest:
    if not candidates:
        raise ValueError("rag_pick needs at least one candidate code")
    messages = prompt.render(
        taxonomy=f"{taxonomy.name} {taxonomy.version}".strip(),
        record=render_record(record),
        candidates=render_candidates(
            candidates, taxonomy, max_definition_chars=max_definition_chars
        ),
        n_candidates=len(candidates),
    )
    return LLMRequest(prompt.id, messages, rag_pick_schema(candidates))


def _as_score(value: Any, code: str) -> float:
    try:
        score = float(value)
    except (TypeError, ValueError):
        raise AnswerError(f"relevance score for {code} is not a number: {value!r}") from None
    if math.isnan(score):
        raise AnswerError(f"relevance score for {code} is NaN")
    return min(1.0, max(0.0, score))


def parse_rag_pick(answer: dict[str, Any], candidates: Sequence[str]) -> RagPick:
    """Validate an answer: the code must be one of ``candidates`` (else ``AnswerError``).

    Scores may be an object ``{code: score}`` or a list of ``{"code", "score"}``; they are
    clipped to [0, 1]; candidates without a score get 0; scores of other codes are dropped.
    """
    raw = answer.get("code")
    if not isinstance(raw, str) or not raw.strip():
        raise AnswerError(
            f"answer has no code: {answer!r}", rejected_code=None if raw is None else str(raw)
        )
    code = raw.strip()
    if code not in candidates:
        raise AnswerError(
            f"answer code {code!r} is not among the offered candidates {list(candidates)}",
            rejected_code=code,
        )
    given = answer.get("scores", {})
    if isinstance(given, list):
        pairs = {}
        for item in given:
            if not isinstance(item, dict) or "code" not in item:
                raise AnswerError(f"scores list item is not {{code, score}}: {item!r}")
            pairs[str(item["code"]).strip()] = item.get("score", item.get("relevance"))
        given = pairs
    if not isinstance(given, dict):
        raise AnswerError(f"scores must be an object of code -> number, got {given!r}")
    given = {str(k).strip(): v for k, v in given.items()}
    scores = {c: _as_score(given[c], c) if c in given else 0.0 for c in candidates}
    rationale = answer.get("rationale", "")
    return RagPick(code, scores, str(rationale).strip() if rationale is not None else "")


# --- synth ----------------------------------------------------------------------------------


@dataclass
class SynthAnswer:
    titles: list[str] = field(default_factory=list)
    duties: list[str] = field(default_factory=list)


def synth_examples(
    code: str, taxonomy: Taxonomy, *, max_titles: int = 10, max_tasks: int = 5
) -> str:
    node = taxonomy.get(code)
    titles = list(dict.fromkeys([*node.alt_titles, *node.reported_titles]))[:max_titles]
    lines = [f"- job title: {_short(t, 100)}" for t in titles]
    lines += [f"- task: {_short(t, 200)}" for t in node.tasks[:max_tasks]]
    return "\n".join(lines) if lines else "- (none)"


def synth_schema(n: int, *, title_chars: int = 80, duties_chars: int = 300) -> dict[str, Any]:
    def strings(limit: int) -> dict[str, Any]:
        return {
            "type": "array",
            "items": {"type": "string", "maxLength": limit},
            "minItems": 1,
            "maxItems": n,
        }

    return {
        "type": "object",
        "properties": {"job title": strings(title_chars), "job duties": strings(duties_chars)},
        "required": ["job title", "job duties"],
    }


def synth_request(
    prompt: PromptTemplate, code: str, taxonomy: Taxonomy, *, n: int = 30
) -> LLMRequest:
    if n < 1:
        raise ValueError("synth needs n >= 1")
    node = taxonomy.get(code)
    messages = prompt.render(
        taxonomy=f"{taxonomy.name} {taxonomy.version}".strip(),
        code=code,
        title=node.title,
        definition=_short(node.description, 600) if node.description else "(none)",
        examples=synth_examples(code, taxonomy),
        n=n,
    )
    return LLMRequest(prompt.id, messages, synth_schema(n))


def _strings(value: Any, key: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        raise AnswerError(f"{key!r} must be a list of strings, got {type(value).__name__}")
    out = []
    for item in value:
        if not isinstance(item, str):
            raise AnswerError(f"{key!r} has a non-string item {item!r}")
        text = " ".join(item.split())
        if re.search(r"\w", text):  # drops "", "..." and other placeholder echoes
            out.append(text)
    return out


def parse_synth(answer: dict[str, Any], *, n: int | None = None) -> SynthAnswer:
    """``{"job title": [...], "job duties": [...]}`` (also ``job_title``/``titles`` keys)."""

    def pick(*keys: str) -> Any:
        for key in keys:
            if key in answer:
                return answer[key]
        return None

    titles = _strings(pick("job title", "job titles", "job_title", "titles"), "job title")
    duties = _strings(pick("job duties", "job duty", "job_duties", "duties"), "job duties")
    if not titles and not duties:
        raise AnswerError(f"answer has neither job titles nor job duties: {answer!r}")
    if n is not None:
        titles, duties = titles[:n], duties[:n]
    return SynthAnswer(titles, duties)


# --- batch runner ---------------------------------------------------------------------------


@dataclass
class RunStats:
    requests: int = 0
    cache_hits: int = 0
    errors: int = 0


def cached_call(
    model: Model, request: LLMRequest, *, cache: LLMCache | None
) -> tuple[dict[str, Any], bool]:
    """One request: ``(answer, cache_hit)``; the cached answer when there is one, else the
    model's, which is then cached."""
    key = None
    model_id = str(getattr(model, "model_id", getattr(model, "model", type(model).__name__)))
    if cache is not None:
        options = getattr(model, "request_options", None)
        sent = options(request.schema) if callable(options) else {}
        key = cache_key(
            request.prompt_id,
            model_id,
            {
                "messages": request.messages,
                "schema": request.schema,
                "grammar": None,  # keeps the keys of answers cached before grammars went
                "options": sent,
            },
        )
        hit = cache.get(key)
        if hit is not None:
            log.info("llm call model=%s prompt=%s cache_hit=True", model_id, request.prompt_id)
            return hit, True
    answer = model(request.messages, schema=request.schema)
    if cache is not None and key is not None:
        cache.put(key, answer, prompt_id=request.prompt_id, model_id=model_id)
    return answer, False


def run_requests(
    model: Model,
    requests: Sequence[LLMRequest],
    *,
    cache: LLMCache | None = None,
    concurrency: int | None = None,
    show_progress: bool = False,
    desc: str = "llm",
) -> tuple[list[dict[str, Any] | Exception], RunStats]:
    """Answers in request order; an item that failed holds its exception instead."""
    workers = concurrency or int(getattr(model, "concurrency", 1) or 1)

    def one(request: LLMRequest) -> tuple[dict[str, Any] | Exception, bool]:
        try:
            return cached_call(model, request, cache=cache)
        except Exception as exc:  # noqa: BLE001 - recorded per item, the batch goes on
            log.warning("llm request %s failed: %s", request.prompt_id, exc)
            return exc, False

    stats = RunStats(requests=len(requests))
    results: list[dict[str, Any] | Exception] = []
    bar = tqdm(total=len(requests), desc=desc, unit="call", disable=not show_progress)
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for answer, hit in pool.map(one, requests):
            results.append(answer)
            stats.cache_hits += hit
            stats.errors += isinstance(answer, Exception)
            bar.update(1)
    bar.close()
    return results, stats
