"""What ``autocoder examples add|list|stats|remove`` do, as plain functions over a store."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from autocoder.examples.store import (
    IDENTITY,
    IMPORT,
    AddReport,
    AddSpec,
    ExampleStore,
    check_rows,
    conflicts,
    now,
)
from autocoder.io import InputError, read_table
from autocoder.taxonomy.model import Taxonomy


def _columns(df: pd.DataFrame, spec: AddSpec, path: Path) -> None:
    missing = [c for c in (spec.code_column, spec.title_column) if c not in df.columns]
    if missing:
        raise InputError(
            f"{path}: no column {', '.join(map(repr, missing))} (columns: {', '.join(df.columns)}); "
            "name them with --code-column / --title-column"
        )


def frame_rows(df: pd.DataFrame, spec: AddSpec, *, source: str, file: str) -> pd.DataFrame:
    """A read table as unchecked store rows: row numbers from 1, weight and provenance set."""
    description = df[spec.description_column] if spec.description_column in df.columns else ""
    return pd.DataFrame(
        {
            "source": source,
            "file": file,
            "row": range(1, len(df) + 1),
            "added_at": now(),
            "annotator": df["annotator"] if "annotator" in df.columns else IMPORT,
            "weight": float(spec.weight),
            "title": df[spec.title_column].to_numpy(),
            "description": description if isinstance(description, str) else description.to_numpy(),
            "code": df[spec.code_column].to_numpy(),
            "key": "",
        }
    )


def add_rows(store: ExampleStore, taxonomy: Taxonomy, rows: pd.DataFrame) -> AddReport:
    """Check ``rows`` (store columns, as ``frame_rows`` makes them) and store the good ones."""
    source = str(rows["source"].iloc[0]) if len(rows) else ""
    report = AddReport(source=source, file=str(rows["file"].iloc[0]) if len(rows) else "")
    report.rows = len(rows)
    stored = store.table()
    known = {tuple(str(v) for v in r) for r in stored[list(IDENTITY)].itertuples(index=False)}
    good, report.rejected = check_rows(taxonomy, rows, known)
    if len(good):
        store.append(good)
    report.added = len(good)
    report.conflicts = conflicts(store.table(), set(good["key"]))
    return report


def add_file(store: ExampleStore, taxonomy: Taxonomy, path: str | Path, spec: AddSpec) -> AddReport:
    """Add the coded rows of a CSV/JSONL/Parquet file (``InputError`` when it cannot be read
    or lacks the columns; bad rows are in the report, not stored)."""
    if not spec.weight > 0:
        raise ValueError(f"--weight must be a positive number, got {spec.weight}")
    path = Path(path)
    df = read_table(path, string_columns=(spec.code_column, spec.title_column))
    _columns(df, spec, path)
    rows = frame_rows(df, spec, source=spec.source or path.stem, file=path.name)
    return add_rows(store, taxonomy, rows)


def replace_source(store: ExampleStore, taxonomy: Taxonomy, rows: pd.DataFrame) -> AddReport:
    """Make ``rows`` the whole of their source (``review pull``: an edited answer replaces
    the old one, a deleted one goes)."""
    if len(rows):
        store.remove_source(str(rows["source"].iloc[0]))
    return add_rows(store, taxonomy, rows)


def stats(store: ExampleStore) -> dict[str, Any]:
    """Counts: rows, distinct titles and codes, rows per source, conflicting titles, hash."""
    df = store.table()
    found = conflicts(df)
    return {
        "store": str(store.path.name),
        "rows": int(len(df)),
        "titles": int(df["key"].nunique()),
        "codes": int(df["code"].nunique()),
        "sources": {str(k): int(v) for k, v in df["source"].value_counts().sort_index().items()},
        "conflicting_titles": len(found),
        "conflicts": found[:20],
        "content_hash": store.content_hash(),
    }


def list_examples(
    store: ExampleStore, *, source: str | None = None, limit: int = 20
) -> pd.DataFrame:
    """The stored examples (of ``source``), newest last, at most ``limit`` (0 = all)."""
    df = store.table()
    if source is not None:
        df = df[df["source"] == source]
    return df.tail(limit) if limit else df
