"""The coded-examples store: an office's coded history, one Parquet table per taxonomy.

``<workspace>/examples/<taxonomy>/examples.parquet`` holds one row per coded example with its
provenance: where it came from (``source``, ``file``, ``row``), when (``added_at``), who coded
it (``annotator``, ``import`` for a file), its ``weight`` as a training row and vote, the
``title`` and ``description`` as given, the leaf ``code`` and the normalised title (``key``)
that exact matches compare.

``add_examples`` checks every row of a table and stores only the good ones; a bad row (unknown
code, empty title, a row identical to an earlier one of the same source and annotator) comes
back in the report with its row number and reason. Rows that give the same normalised title
different codes are stored (people disagree, and the votes say how much) and reported as
conflicts. The store's ``content_hash`` enters a coding job's key, so a job resumed after
``examples add`` or ``examples remove`` starts again instead of mixing before and after.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from autocoder.records import clean_text, normalize_text
from autocoder.taxonomy.model import Taxonomy
from autocoder.workspace import Workspace, file_lock

#: The store's columns, in order.
COLUMNS = (
    "source",
    "file",
    "row",
    "added_at",
    "annotator",
    "weight",
    "title",
    "description",
    "code",
    "key",
)

#: What makes two rows the same row (a duplicate is reported, never stored twice).
IDENTITY = ("source", "annotator", "key", "description", "code")

#: The annotator of rows imported from a file.
IMPORT = "import"


#: The source prefix of the examples ``review pull`` makes (``review:<project>``).
REVIEW_PREFIX = "review:"


def review_source(project: str) -> str:
    """The source of the examples ``review pull`` makes from a project's answers."""
    return f"{REVIEW_PREFIX}{project}"


def example_key(title: Any) -> str:
    """The normalised title exact matches compare: lower case, punctuation as spaces."""
    return normalize_text(title, keep_punctuation=False)


def key_digest(key: str) -> str:
    """A short digest of a normalised title (``example_key``): what a model records of the
    example titles it did not train on, without storing the titles themselves."""
    return hashlib.sha1(key.encode("utf-8")).hexdigest()[:16]


@dataclass(frozen=True)
class AddSpec:
    """How to read a table of coded examples (``autocoder examples add``)."""

    code_column: str
    title_column: str = "title"
    description_column: str = "description"
    source: str | None = None  # default: the file's stem
    weight: float = 1.0


@dataclass
class AddReport:
    """What ``add_examples`` did: rows read, stored, rejected (row, reason) and conflicts."""

    source: str
    file: str
    rows: int = 0
    added: int = 0
    rejected: list[dict[str, Any]] = field(default_factory=list)
    conflicts: list[dict[str, Any]] = field(default_factory=list)


class ExampleStore:
    """The examples of one taxonomy in a workspace (read whole; rewritten atomically)."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)

    @classmethod
    def of(cls, ws: Workspace, taxonomy_name: str) -> ExampleStore:
        return cls(ws.examples / taxonomy_name)

    @property
    def path(self) -> Path:
        return self.directory / "examples.parquet"

    @property
    def lock(self) -> Path:
        return self.directory / "examples.lock"

    def table(self) -> pd.DataFrame:
        """Every stored example (an empty table with the columns when there is none)."""
        if not self.path.is_file():
            return empty_table()
        return pd.read_parquet(self.path)

    def __len__(self) -> int:
        return len(self.table())

    def content_hash(self) -> str:
        """A digest of what coding reads (title, description, code, key, weight): "" when
        empty; a change of provenance alone (the time of an add) leaves it as it is."""
        df = self.table()
        if df.empty:
            return ""
        cols = ["key", "code", "title", "description", "weight", "source", "annotator"]
        rows = df[cols].astype(str).sort_values(cols).itertuples(index=False, name=None)
        digest = hashlib.sha256()
        for row in rows:
            digest.update("\x1f".join(row).encode())
            digest.update(b"\x1e")
        return digest.hexdigest()[:16]

    def write(self, df: pd.DataFrame) -> None:
        """Replace the stored table with ``df`` (through a temporary file)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        df.loc[:, list(COLUMNS)].reset_index(drop=True).to_parquet(tmp, index=False)
        tmp.replace(self.path)

    def append(self, rows: pd.DataFrame) -> None:
        """Add ``rows`` (already checked) to the stored table."""
        with file_lock(self.lock, exclusive=True, busy=f"the examples in {self.directory} are "
                       "being changed by another process; try again when it is done"):  # fmt: skip
            old = self.table()
            self.write(pd.concat([old, rows], ignore_index=True) if len(old) else rows)

    def remove_source(self, source: str) -> int:
        """Drop every example of ``source``; returns how many went (0 when there were none)."""
        with file_lock(self.lock, exclusive=True, busy=f"the examples in {self.directory} are "
                       "being changed by another process; try again when it is done"):  # fmt: skip
            df = self.table()
            keep = df["source"] != source
            removed = int((~keep).sum())
            if removed:
                self.write(df[keep])
        return removed


def empty_table() -> pd.DataFrame:
    df = pd.DataFrame({c: pd.Series(dtype=str) for c in COLUMNS})
    df["row"] = df["row"].astype("int64")
    df["weight"] = df["weight"].astype("float64")
    return df


def resolve_code(taxonomy: Taxonomy, value: Any) -> tuple[str | None, str]:
    """A cell's leaf code (a code or, for ESCO, a concept URI) and "" — or None and why not."""
    text = clean_text(value)
    if not text:
        return None, "empty code"
    if taxonomy.has_uri(text):
        code = taxonomy.by_uri(text).code
    elif text in taxonomy:
        code = text
    else:
        return None, f"unknown code {text!r} (not in {taxonomy.name} {taxonomy.version})"
    if not taxonomy.is_leaf(code):
        return None, f"code {code!r} is a group, not a leaf code (occupation) of {taxonomy.name}"
    return code, ""


def check_rows(
    taxonomy: Taxonomy,
    rows: pd.DataFrame,
    known: set[tuple[str, ...]],
) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    """The good rows of ``rows`` (store columns, ``code`` resolved) and one problem per bad
    row (``{"row", "title", "reason"}``); ``known`` holds the identities already stored and
    gains the new ones, so a repeat within the table is a duplicate too."""
    good: list[dict[str, Any]] = []
    problems: list[dict[str, Any]] = []
    for raw in rows.to_dict("records"):
        code, why = resolve_code(taxonomy, raw["code"])
        title = clean_text(raw["title"])
        rec = {str(k): v for k, v in raw.items()}
        rec.update(title=title, description=clean_text(raw["description"]))
        rec["key"] = example_key(title)
        if not rec["key"]:
            why = "empty title"
        elif code is not None:
            rec["code"] = code
            identity = tuple(str(rec[c]) for c in IDENTITY)
            if identity in known:
                why = "duplicate row (same title, description and code as an earlier row)"
            known.add(identity)
        if why:
            problems.append({"row": int(rec["row"]), "title": title, "reason": why})
        else:
            good.append(rec)
    return pd.DataFrame(good, columns=list(COLUMNS)), problems


def conflicts(df: pd.DataFrame, keys: set[str] | None = None) -> list[dict[str, Any]]:
    """Normalised titles stored with more than one code: ``{"key", "codes": {code: votes}}``
    (only those in ``keys`` when given), most votes first."""
    if df.empty:
        return []
    if keys is not None:
        df = df[df["key"].isin(keys)]
    out = []
    for key, group in df.groupby("key", sort=True):
        votes = group.groupby("code")["weight"].sum().sort_values(ascending=False)
        if len(votes) > 1:
            out.append({"key": str(key), "codes": {str(c): float(w) for c, w in votes.items()}})
    return out


def now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
