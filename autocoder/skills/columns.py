"""Skills in the coding output: ``autocoder code --skills K`` adds each coded record's top-K
ESCO skills (``skills``: labels joined by ``"; "``, ``skill_uris``: URIs joined by ``";"``),
extracted from its title and duties in the same pass (an ``ExtraColumns`` of the coder)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from autocoder.records import JobRecord

SKILL_COLUMNS = ("skills", "skill_uris")


class SkillColumns:
    """The ``skills`` and ``skill_uris`` columns from a fitted extractor's ``rank``."""

    columns = SKILL_COLUMNS

    def __init__(self, extractor: Any, top_k: int, extractor_id: str) -> None:
        if top_k < 1:
            raise ValueError(f"--skills must be at least 1, not {top_k}")
        self.extractor = extractor
        self.top_k = top_k
        self.extractor_id = extractor_id

    @property
    def key(self) -> str:
        return f"skills:{self.top_k}:{self.extractor_id}"

    def annotate(self, records: Sequence[JobRecord]) -> list[list[str]]:
        texts = [". ".join(t for t in (r.title, r.duties) if t) for r in records]
        ranked = self.extractor.rank(texts, top_k=self.top_k)
        return [
            ["; ".join(h.label for h in hits) for hits in ranked],
            [";".join(h.uri for h in hits) for hits in ranked],
        ]
