"""The record a coder sees: a job title and optional duties, and the three MOM input formats."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

InputFormat = Literal["title_duties", "title", "duties"]


@dataclass(frozen=True)
class JobRecord:
    title: str
    duties: str = ""

    def text(self, fmt: InputFormat = "title_duties") -> str:
        """Render as ``job_title=… job_duties=…``, ``job_title=…`` or ``job_duties=…``."""
        if fmt == "title":
            return f"job_title={self.title}"
        if fmt == "duties":
            return f"job_duties={self.duties}"
        if not self.duties:
            return f"job_title={self.title}"
        if not self.title:
            return f"job_duties={self.duties}"
        return f"job_title={self.title} job_duties={self.duties}"

    def query(self, max_duties_chars: int = 300) -> str:
        """Plain text for retrieval: the title, then the start of the duties."""
        if not self.duties:
            return self.title
        if not self.title:
            return self.duties[:max_duties_chars]
        return f"{self.title}: {self.duties[:max_duties_chars]}"


def clean_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value != value:  # NaN
        return ""
    return " ".join(str(value).split())


def as_records(X: Any) -> list[JobRecord]:
    """Accept JobRecords, strings (titles), (title, duties) pairs, dicts, or a DataFrame."""
    if hasattr(X, "to_dict") and hasattr(X, "columns"):
        cols = set(X.columns)
        title_col = "title" if "title" in cols else None
        duties_col = next((c for c in ("duties", "description") if c in cols), None)
        if title_col is None and duties_col is None:
            raise ValueError("DataFrame input needs a 'title' and/or 'duties'/'description' column")
        return [
            JobRecord(
                clean_text(r.get(title_col)) if title_col else "",
                clean_text(r.get(duties_col)) if duties_col else "",
            )
            for r in X.to_dict("records")
        ]
    out: list[JobRecord] = []
    items: Iterable[Any] = X
    for i, item in enumerate(items):
        if isinstance(item, JobRecord):
            out.append(item)
        elif isinstance(item, str):
            out.append(JobRecord(clean_text(item)))
        elif isinstance(item, dict):
            out.append(
                JobRecord(
                    clean_text(item.get("title")),
                    clean_text(item.get("duties", item.get("description"))),
                )
            )
        elif isinstance(item, Sequence) and len(item) == 2:
            out.append(JobRecord(clean_text(item[0]), clean_text(item[1])))
        else:
            raise ValueError(f"record {i}: cannot read {type(item).__name__} as a job record")
    return out
