"""``skills extract`` as a batch job: read records → rank skills → write, checkpointed.

Every input record is accounted for: it gets ``top_k`` rows (``row, id, rank, skill_uri,
skill_label, score, span, status="ok"``) or one row with ``status="error:<reason>"`` (missing or
duplicate id, empty text, a failed batch). Finished batches are written atomically to the run
directory, so a killed job restarted with the same arguments continues where it stopped.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from tqdm.auto import tqdm

from autocoder.coder import job_key, row_error
from autocoder.io import InputError, file_sha256, read_table, write_table
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
    df: pd.DataFrame, *, id_column: str, text_column: str, source: str
) -> tuple[list[str], list[str], list[str | None]]:
    """Ids, texts and a per-record error reason (None when fine)."""
    for col, what in ((id_column, "id"), (text_column, "text")):
        if col not in df.columns:
            raise InputError(
                f"{source}: no {what} column {col!r}; columns are {list(df.columns)} "
                f"(use --{what}-column)"
            )
    ids = [clean_text(v) for v in df[id_column].tolist()]
    texts = [clean_text(v) for v in df[text_column].tolist()]
    seen: set[str] = set()
    errors: list[str | None] = []
    for rid, text in zip(ids, texts, strict=True):
        errors.append(row_error(rid, seen, JobRecord(text, "")))
        if rid:
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
    df = read_table(input_path, string_columns=(id_column,))
    ids, texts, errors = prepare(
        df, id_column=id_column, text_column=text_column, source=str(input_path)
    )
    settings = {"job": "skills", "extractor": extractor_id, "top_k": top_k,
                "id_column": id_column, "text_column": text_column, "batch_size": batch_size}
    key = job_key(file_sha256(input_path), settings)
    run_dir = Path(runs_dir) / f"skills-{key}"
    run_dir.mkdir(parents=True, exist_ok=True)
    n_batches = (len(df) + batch_size - 1) // batch_size
    resumed = 0
    bar = tqdm(total=len(df), desc="skills", unit="rec", disable=not show_progress)
    for b in range(n_batches):
        part = run_dir / f"part-{b:06d}.parquet"
        lo, hi = b * batch_size, min((b + 1) * batch_size, len(df))
        if part.exists():
            resumed += 1
        else:
            write_table(
                _batch_rows(extractor, ids[lo:hi], texts[lo:hi], errors[lo:hi], lo, top_k), part
            )
        bar.update(hi - lo)
    bar.close()
    return _finish(run_dir, n_batches, len(df), input_path, output_path, resumed)


def _finish(
    run_dir: Path,
    n_batches: int,
    n_records: int,
    input_path: Path,
    output_path: Path,
    resumed: int,
) -> ExtractionSummary:
    """Join the checkpointed batches into the output file and clear them."""
    parts = [pd.read_parquet(run_dir / f"part-{b:06d}.parquet") for b in range(n_batches)]
    out = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=COLUMNS)
    if set(out["row"]) != set(range(n_records)):
        raise RuntimeError(f"checkpoint in {run_dir} is inconsistent; delete it and run again")
    write_table(out, output_path)
    per_record = out.drop_duplicates("row")["status"]
    summary = ExtractionSummary(
        str(input_path),
        str(output_path),
        n_records,
        len(out),
        {str(s): int(c) for s, c in Counter(per_record).items()},
        resumed,
        str(run_dir),
    )
    (run_dir / "summary.json").write_text(json.dumps(summary.to_dict(), indent=2))
    for b in range(n_batches):
        (run_dir / f"part-{b:06d}.parquet").unlink(missing_ok=True)
    return summary
