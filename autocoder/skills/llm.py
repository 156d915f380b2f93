"""Optional LLM step of skill extraction (prompt ``extract_skills.v1``).

When an OpenAI-compatible endpoint is configured, the matcher's top candidates for each text are
shown to the LLM, which lists the ones the text asks for; those move to the top (in the LLM's
order), the rest keep the matcher's order. A failed or invalid answer leaves the matcher's
ranking unchanged, so the LLM can only reorder, never lose a record.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from autocoder.llm.prompts import PromptTemplate
from autocoder.llm.tasks import LLMRequest, run_requests
from autocoder.skills.extract import SkillHit

log = logging.getLogger(__name__)


def skills_schema(n: int) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "skills": {"type": "array", "items": {"type": "integer", "minimum": 1, "maximum": n}}
        },
        "required": ["skills"],
    }


def skills_request(prompt: PromptTemplate, text: str, hits: Sequence[SkillHit]) -> LLMRequest:
    lines = "\n".join(f"{i}. {h.label}" for i, h in enumerate(hits, 1))
    messages = prompt.render(text=text[:2000], candidates=lines, n_candidates=len(hits))
    return LLMRequest(prompt.id, messages, schema=skills_schema(len(hits)))


def parse_skills(answer: Any, n: int) -> list[int]:
    """1-based candidate numbers → 0-based indices; anything else is an error."""
    picks = answer.get("skills") if isinstance(answer, dict) else None
    if not isinstance(picks, list):
        raise ValueError(f"answer has no 'skills' list: {answer!r}")
    out: list[int] = []
    for p in picks:
        if not isinstance(p, int) or isinstance(p, bool) or not 1 <= p <= n:
            raise ValueError(f"skill number {p!r} is not one of the {n} candidates")
        if p - 1 not in out:
            out.append(p - 1)
    return out


class LLMSkillRanker:
    """Wraps a fitted extractor: ``rank`` = matcher candidates re-ordered by the LLM."""

    def __init__(
        self,
        extractor: Any,
        model: Any,
        prompt: PromptTemplate,
        *,
        candidates: int = 20,
        cache: Any = None,
    ) -> None:
        self.extractor = extractor
        self.model = model
        self.prompt = prompt
        self.candidates = candidates
        self.cache = cache

    def rank(self, texts: Sequence[str], top_k: int | None = None) -> list[list[SkillHit]]:
        k = top_k or self.extractor.top_k
        pools = self.extractor.rank(texts, top_k=max(k, self.candidates))
        requests = [skills_request(self.prompt, t, p) for t, p in zip(texts, pools, strict=True)]
        answers, _ = run_requests(self.model, requests, cache=self.cache)
        out = []
        for pool, answer in zip(pools, answers, strict=True):
            try:
                picks = parse_skills(answer, len(pool)) if not isinstance(answer, Exception) else []
            except ValueError as exc:
                log.warning("extract_skills answer ignored: %s", exc)
                picks = []
            chosen = [pool[i] for i in picks]
            rest = [h for i, h in enumerate(pool) if i not in set(picks)]
            out.append((chosen + rest)[:k])
        return out
