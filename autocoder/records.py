"""The record a coder sees: a job title and optional duties, and the three MOM input formats.

Also the one place that turns raw cell values into text: ``clean_text`` (what a record holds),
``normalize_text`` (the key for duplicate checks) and ``duties_column`` / ``table_texts`` (which
column of a table holds the duties: the configured one, else ``duties``, else ``description``).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

from autocoder.io import InputError

if TYPE_CHECKING:
    import pandas as pd

InputFormat = Literal["title_duties", "title", "duties"]

#: Anything ``as_records`` reads: JobRecords, title strings, (title, duties) pairs, dicts with
#: ``title`` and ``duties``/``description``, or a DataFrame with such columns.
RecordsLike: TypeAlias = Iterable[Any]

#: Column names that hold a record's duties, in order of preference.
DUTIES_COLUMNS = ("duties", "description")


@dataclass(frozen=True)
class JobRecord:
    title: str
    duties: str = ""
    #: The title as the input wrote it, when ``title`` is a cleaned form of it ("" = the
    #: same): coded examples match what people wrote ("Manager II - Subcon Operations"), not
    #: what the cleaner kept of it.
    written: str = ""

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


#: Control characters (NUL, bell, escape, C1 controls...): read as whitespace.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
#: Invisible format characters (zero-width space/joiners, BOM, soft hyphen, bidi marks): dropped.
_INVISIBLE = re.compile(
    "[\u00ad\u061c\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff]"
)


def clean_text(value: Any) -> str:
    """A cell value as text: ``None``/NaN become ``""``, control characters and whitespace runs
    become one space, invisible (zero-width, BOM) characters are dropped; so a title of only
    NUL or zero-width characters is empty."""
    if value is None:
        return ""
    if isinstance(value, float) and value != value:  # NaN
        return ""
    text = _INVISIBLE.sub("", _CONTROL.sub(" ", str(value)))
    return " ".join(text.split())


def text_type_error(value: Any, what: str = "title") -> str | None:
    """``error:bad_<what>_type: <type>`` when a cell holds neither text nor nothing (a number,
    a list or a mapping read from JSON or Parquet), else None."""
    if value is None or isinstance(value, str) or (isinstance(value, float) and value != value):
        return None
    kind = type(value).__name__
    return f"error:bad_{what}_type: {'list' if kind == 'ndarray' else kind}"


def normalize_text(value: Any, *, keep_punctuation: bool = True) -> str:
    """The comparison key of a text: ``clean_text``, lower case; with ``keep_punctuation=False``
    punctuation becomes whitespace too (so "R.N." and "R N" match)."""
    text = clean_text(value).lower()
    if not keep_punctuation:
        text = " ".join(re.sub(r"[^\w\s]", " ", text).split())
    return text


def fold_text(value: Any) -> str:
    """The matching key of skill text: ``clean_text``, lower case, accents folded,
    punctuation except ``+`` and ``#`` (C++, C#) to spaces."""
    text = unicodedata.normalize("NFKD", clean_text(value)).encode("ascii", "ignore").decode()
    return " ".join(re.sub(r"[^0-9a-z+#]+", " ", text.lower()).split())


def duties_column(columns: Iterable[str], preferred: str | None = None) -> str | None:
    """The column holding the duties: ``preferred`` if present, else ``duties``, else
    ``description``; None when there is none."""
    present = set(columns)
    candidates = (preferred, *DUTIES_COLUMNS) if preferred else DUTIES_COLUMNS
    return next((c for c in candidates if c in present), None)


def table_texts(
    df: pd.DataFrame,
    *,
    title_column: str = "title",
    description_column: str | None = None,
    source: str = "table",
) -> tuple[list[str], list[str]]:
    """Clean titles and duties of every row of ``df``.

    Raises ``InputError`` naming ``source`` and its columns when the table has neither a title
    nor a duties column.
    """
    desc_col = duties_column(df.columns, description_column)
    if title_column not in df.columns and desc_col is None:
        wanted = description_column or "description"
        raise InputError(
            f"{source}: needs a title column {title_column!r} and/or a description column "
            f"{wanted!r} (or 'duties'); columns are {list(df.columns)}"
        )
    n = len(df)
    titles = [clean_text(v) for v in df[title_column]] if title_column in df.columns else [""] * n
    duties = [clean_text(v) for v in df[desc_col]] if desc_col else [""] * n
    return titles, duties


def _record(item: Any, i: int) -> JobRecord:
    if isinstance(item, JobRecord):
        return item
    if isinstance(item, str):
        return JobRecord(clean_text(item))
    if isinstance(item, dict):
        key = duties_column(item)
        return JobRecord(clean_text(item.get("title")), clean_text(item.get(key) if key else ""))
    if isinstance(item, Sequence) and len(item) == 2:
        return JobRecord(clean_text(item[0]), clean_text(item[1]))
    raise ValueError(f"record {i}: cannot read {type(item).__name__} as a job record")


def as_records(X: RecordsLike) -> list[JobRecord]:
    """Accept JobRecords, strings (titles), (title, duties) pairs, dicts, or a DataFrame."""
    if hasattr(X, "to_dict") and hasattr(X, "columns"):
        titles, duties = table_texts(X, source="DataFrame input")  # type: ignore[arg-type]
        return [JobRecord(t, d) for t, d in zip(titles, duties, strict=True)]
    return [_record(item, i) for i, item in enumerate(X)]
