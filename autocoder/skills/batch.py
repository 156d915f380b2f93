"""``skills extract`` as a batch job: stream records → rank skills → write, checkpointed.

The input is streamed in batches of ``batch_size`` rows (``io.iter_table``, the coder's reader,
reading ahead in a thread), so memory does not grow with the file. Every input record is
accounted for: it gets ``top_k`` rows (``row, id, rank, skill_uri, skill_label, score, span,
status="ok"``) or one row with ``status="error:<reason>"`` (missing or duplicate id, across
batches too; empty text; a JSONL line that is not an object; a failed batch). Finished batches
are written atomically to the run directory, so a killed job restarted with the same arguments
continues where it stopped; the output is then written one batch at a time.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from autocoder.coding.batch import check_paths, errors_in, job_key, row_error
from autocoder.io import (
    ROW_ERROR_COLUMN,
    InputError,
    TableWriter,
    file_sha256,
    iter_table,
    prefetch,
    write_table,
)
from autocoder.records import JobRecord, clean_text

COLUMNS = ["row", "id", "rank", "skill_uri", "skill_label", "score", "span", "status"]


@dataclass
class ExtractionSummary:
    input: str
    output: str
    records: int
    rows: int
    status: dict[str, int] = field(default_factory=dict)
    resumed_batches: int = 0
    run_dir: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def prepare(
    df: pd.DataFrame,
    *,
    id_column: str,
    text_column: str,
    source: str,
    seen: set[str] | None = None,
    require_columns: bool = True,
) -> tuple[list[str], list[str], list[str | None]]:
    """Ids, texts and a per-record error reason (None when fine).

    ``seen`` carries the ids of earlier batches (a duplicate id across batches is flagged).
    With ``require_columns=False`` (a later JSONL batch, whose lines may lack a key) a missing
    column reads as empty instead of failing the file.
    """
    line_errors = df.pop(ROW_ERROR_COLUMN).tolist() if ROW_ERROR_COLUMN in df.columns else None
    for col, what in ((id_column, "id"), (text_column, "text")):
        if col not in df.columns:
            if require_columns:
                raise InputError(
                    f"{source}: no {what} column {col!r}; columns are {list(df.columns)} "
                    f"(use --{what}-column)"
                )
            df[col] = ""
    ids = [clean_text(v) for v in df[id_column].tolist()]
    texts = [clean_text(v) for v in df[text_column].tolist()]
    seen = set() if seen is None else seen
    errors: list[str | None] = []
    for i, (rid, text) in enumerate(zip(ids, texts, strict=True)):
        errors.append(
            (line_errors[i] if line_errors else None) or row_error(rid, seen, JobRecord(text, ""))
        )
        if rid and errors[-1] != "error:duplicate_id":
            seen.add(rid)
    return ids, texts, errors


def _batch_rows(
    extractor: Any,
    ids: list[str],
    texts: list[str],
    errors: list[str | None],
    offset: int,
    top_k: int,
) -> pd.DataFrame:
    ok = [i for i, e in enumerate(errors) if e is None]
    status = list(errors)
    hits: dict[int, list[Any]] = {}
    if ok:
        try:
            for i, found in zip(
                ok, extractor.rank([texts[i] for i in ok], top_k=top_k), strict=True
            ):
                hits[i] = found
                if not found:
                    status[i] = "error:no_sentences"
        except Exception as exc:  # noqa: BLE001 - the batch is flagged, the job goes on
            for i in ok:
                status[i] = f"error:extract_failed:{type(exc).__name__}"
            hits = {}
    rows: list[dict[str, Any]] = []
    for i, rid in enumerate(ids):
        if status[i] is None:
            for rank, hit in enumerate(hits[i], 1):
                rows.append(
                    {
                        "row": offset + i,
                        "id": rid,
                        "rank": rank,
                        "skill_uri": hit.uri,
                        "skill_label": hit.label,
                        "score": round(hit.score, 6),
                        "span": hit.span,
                        "status": "ok",
                    }
                )
        else:
            rows.append(
                {
                    "row": offset + i,
                    "id": rid,
                    "rank": 0,
                    "skill_uri": "",
                    "skill_label": "",
                    "score": float("nan"),
                    "span": "",
                    "status": status[i],
                }
            )
    return pd.DataFrame(rows, columns=COLUMNS)


def extract_file(
    input_path: str | Path,
    output_path: str | Path,
    *,
    extractor: Any,
    runs_dir: str | Path,
    extractor_id: str = "",
    top_k: int = 10,
    id_column: str = "id",
    text_column: str = "text",
    batch_size: int = 64,
    show_progress: bool = True,
) -> ExtractionSummary:
    """Extract skills for every record of ``input_path``; resumes an interrupted run."""
    input_path, output_path = Path(input_path), Path(output_path)
    check_paths(input_path, output_path)
    settings = {"job": "skills", "extractor": extractor_id, "top_k": top_k,
                "id_column": id_column, "text_column": text_column, "batch_size": batch_size}  # fmt: skip
    run_dir = Path(runs_dir) / f"skills-{job_key(file_sha256(input_path), settings)}"
    run_dir.mkdir(parents=True, exist_ok=True)
    seen: set[str] = set()
    n_batches = n_records = resumed = 0
    chunks = iter_table(input_path, chunk_rows=batch_size, string_columns=(id_column,))
    with tqdm(desc="skills", unit="rec", disable=not show_progress) as bar:
        for b, chunk in enumerate(prefetch(chunks)):
            ids, texts, errors = prepare(
                chunk, id_column=id_column, text_column=text_column, source=str(input_path),
                seen=seen, require_columns=b == 0 and not all(errors_in(chunk)),
            )  # fmt: skip
            part = _part(run_dir, b)
            if _covers(part, n_records, len(ids)):
                resumed += 1
            else:
                rows = _batch_rows(extractor, ids, texts, errors, n_records, top_k)
                write_table(rows, part)
            n_batches, n_records = b + 1, n_records + len(ids)
            bar.update(len(ids))
    return _finish(run_dir, n_batches, n_records, input_path, output_path, resumed)


def _part(run_dir: Path, b: int) -> Path:
    return run_dir / f"part-{b:06d}.parquet"


def _covers(part: Path, first: int, n: int) -> bool:
    """Does the checkpoint ``part`` hold records ``first .. first + n - 1``? (A missing or
    unreadable part, or one of another cut, is extracted again.)"""
    if not part.exists():
        return False
    try:
        rows = pd.read_parquet(part, columns=["row"])["row"].unique()
    except (OSError, ValueError, KeyError):
        return False
    return bool(np.array_equal(rows, np.arange(first, first + n)))


def _assemble(
    run_dir: Path, n_batches: int, n_records: int, output_path: Path
) -> tuple[Counter[str], int]:
    """Write the checkpointed batches in order to ``output_path``, one batch in memory at a
    time; (per-record status counts, rows written). Raises if a record is missing."""
    writer = TableWriter(output_path)
    status: Counter[str] = Counter()
    rows = written = 0
    try:
        if n_batches == 0:
            writer.write(pd.DataFrame(columns=COLUMNS))
        for b in range(n_batches):
            part = pd.read_parquet(_part(run_dir, b))
            firsts = part.drop_duplicates("row")
            if not np.array_equal(firsts["row"].to_numpy(), np.arange(rows, rows + len(firsts))):
                raise RuntimeError(
                    f"checkpoint in {run_dir} is inconsistent; delete it and run again"
                )
            rows += len(firsts)
            status.update(str(s) for s in firsts["status"])
            writer.write(part)
            written += len(part)
        if rows != n_records:
            raise RuntimeError(f"checkpoint in {run_dir} is inconsistent; delete it and run again")
        writer.close()
    except BaseException:
        writer.abort()
        raise
    return status, written


def _finish(
    run_dir: Path,
    n_batches: int,
    n_records: int,
    input_path: Path,
    output_path: Path,
    resumed: int,
) -> ExtractionSummary:
    """Join the checkpointed batches into the output file and clear them."""
    status, written = _assemble(run_dir, n_batches, n_records, output_path)
    summary = ExtractionSummary(
        str(input_path),
        str(output_path),
        n_records,
        written,
        {s: int(c) for s, c in status.items()},
        resumed,
        str(run_dir),
    )
    (run_dir / "summary.json").write_text(json.dumps(summary.to_dict(), indent=2))
    for b in range(n_batches):
        _part(run_dir, b).unlink(missing_ok=True)
    return summary
