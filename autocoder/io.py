"""Read and write record tables: CSV, JSONL and Parquet, chosen by file extension."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

FORMATS = {
    ".csv": "csv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".parquet": "parquet",
    ".pq": "parquet",
}


class InputError(ValueError):
    """An input file cannot be read as a record table."""


def table_format(path: str | Path) -> str:
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise InputError(
            f"{path}: unsupported file type {suffix or '(none)'}; use .csv, .jsonl or .parquet"
        )
    return FORMATS[suffix]


def read_table(path: str | Path, *, string_columns: tuple[str, ...] = ("id",)) -> pd.DataFrame:
    """Read a table; ``string_columns`` (ids, codes) are kept as text, never parsed as numbers."""
    path = Path(path)
    fmt = table_format(path)
    if not path.exists():
        raise InputError(f"{path}: file not found")
    try:
        if fmt == "csv":
            df = pd.read_csv(path, dtype=str, keep_default_na=False)
        elif fmt == "jsonl":
            df = pd.read_json(path, lines=True, dtype=False)
        else:
            df = pd.read_parquet(path)
    except (ValueError, OSError, pd.errors.ParserError) as exc:
        raise InputError(f"{path}: cannot read as {fmt}: {exc}") from exc
    for col in string_columns:
        if col in df.columns:
            df[col] = df[col].map(
                lambda v: "" if v is None or (isinstance(v, float) and pd.isna(v)) else str(v)
            )
    return df


def write_table(df: pd.DataFrame, path: str | Path) -> Path:
    """Write atomically (temporary file + rename), so a reader never sees half a file."""
    path = Path(path)
    fmt = table_format(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    if fmt == "csv":
        df.to_csv(tmp, index=False)
    elif fmt == "jsonl":
        df.to_json(tmp, orient="records", lines=True, force_ascii=False)
    else:
        df.to_parquet(tmp, index=False)
    os.replace(tmp, path)
    return path
