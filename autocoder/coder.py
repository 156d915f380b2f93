"""Batch coding: read records → predict → status → write, checkpointed and resumable.

Every input row gets exactly one output row: coded, sent to review (confidence below the
threshold) or flagged ``error:<reason>``. Work is done in batches; each finished batch is written
atomically to the run directory, so a killed job restarted with the same arguments continues
where it stopped, without duplicate or lost rows.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections import Counter
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from autocoder.config import CoderConfig
from autocoder.io import InputError, read_table, write_table
from autocoder.predictor import Predictor, SetPredictor, top_n
from autocoder.records import JobRecord, clean_text, table_texts

#: How much of a failed prediction's message the ``error:predict_failed:...`` status keeps.
MAX_ERROR_CHARS = 200


@dataclass
class CodingSummary:
    input: str
    output: str
    rows: int
    status: dict[str, int] = field(default_factory=dict)
    resumed_batches: int = 0
    run_dir: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def output_columns(n: int, *, with_sets: bool = False) -> list[str]:
    """The output table's columns for the ``n`` best codes per row."""
    cols = ["row", "id"]
    cols += [f"code_{i}" for i in range(1, n + 1)]
    cols += [f"label_{i}" for i in range(1, n + 1)]
    cols += [f"score_{i}" for i in range(1, n + 1)]
    cols += ["confidence", "status"]
    if with_sets:
        cols += ["set_size", "set_codes"]
    return cols


def _row_error(rid: str, seen: Counter[str], record: JobRecord) -> str | None:
    if not rid:
        return "error:missing_id"
    if seen[rid]:
        return "error:duplicate_id"
    if not record.title and not record.duties:
        return "error:empty_text"
    return None


def prepare_records(
    df: pd.DataFrame, *, id_column: str, title_column: str, description_column: str, source: str
) -> tuple[list[str], list[JobRecord], list[str | None]]:
    """Validate rows; return ids, records and a per-row error reason (None when fine)."""
    if id_column not in df.columns:
        raise InputError(
            f"{source}: no id column {id_column!r}; columns are {list(df.columns)} "
            f"(set coder.id_column)"
        )
    titles, duties = table_texts(
        df, title_column=title_column, description_column=description_column, source=source
    )
    ids = [clean_text(v) for v in df[id_column].tolist()]
    records = [JobRecord(t, d) for t, d in zip(titles, duties, strict=True)]
    seen: Counter[str] = Counter()
    errors: list[str | None] = []
    for rid, record in zip(ids, records, strict=True):
        errors.append(_row_error(rid, seen, record))
        if rid:
            seen[rid] += 1
    return ids, records, errors


def failure_status(exc: BaseException) -> str:
    """``error:predict_failed:<Type>: <message>``, on one line, the message cut to a length."""
    message = clean_text(str(exc))
    if len(message) > MAX_ERROR_CHARS:
        message = message[: MAX_ERROR_CHARS - 1] + "…"
    reason = f"error:predict_failed:{type(exc).__name__}"
    return f"{reason}: {message}" if message else reason


@dataclass
class _Batch:
    """Predictions for the rows of one batch; rows without a prediction keep NaN and ''."""

    n: int
    k: int
    status: list[str]
    codes: np.ndarray = field(init=False)
    scores: np.ndarray = field(init=False)
    set_sizes: np.ndarray = field(init=False)
    set_codes: list[str] = field(init=False)

    def __post_init__(self) -> None:
        self.codes = np.full((self.n, self.k), "", dtype=object)
        self.scores = np.full((self.n, self.k), np.nan)
        self.set_sizes = np.zeros(self.n, dtype=int)
        self.set_codes = [""] * self.n

    def confidence(self) -> np.ndarray:
        return self.scores[:, 0] if self.k else np.full(self.n, np.nan)


def _predict(
    predictor: Predictor,
    batch: _Batch,
    records: list[JobRecord],
    ok: list[int],
    *,
    threshold: float,
    with_sets: bool,
) -> None:
    """Fill ``batch`` for the valid rows ``ok``; a failing predictor flags them instead."""
    try:
        proba = np.asarray(predictor.predict_proba([records[i] for i in ok]))
        sets = (
            predictor.predict_sets([records[i] for i in ok], proba=proba)
            if with_sets and isinstance(predictor, SetPredictor)
            else None
        )
    except Exception as exc:  # noqa: BLE001 - the batch is flagged, the job goes on
        for i in ok:
            batch.status[i] = failure_status(exc)
        return
    codes, scores = top_n(proba, np.asarray(predictor.classes_), batch.k)
    k = codes.shape[1]
    batch.codes[ok, :k] = codes
    batch.scores[ok, :k] = scores
    for row, i in enumerate(ok):
        batch.status[i] = "coded" if scores[row, 0] >= threshold else "review"
        if sets is not None:
            batch.set_sizes[i] = len(sets[row])
            batch.set_codes[i] = ";".join(sets[row])


def _batch_table(
    batch: _Batch, ids: list[str], offset: int, labels: Mapping[str, str], with_sets: bool
) -> pd.DataFrame:
    data: dict[str, Any] = {"row": np.arange(offset, offset + batch.n), "id": ids}
    for j in range(batch.k):
        data[f"code_{j + 1}"] = batch.codes[:, j]
    for j in range(batch.k):
        data[f"label_{j + 1}"] = [labels.get(c, "") if c else "" for c in batch.codes[:, j]]
    for j in range(batch.k):
        data[f"score_{j + 1}"] = np.round(batch.scores[:, j], 6)
    data["confidence"] = np.round(batch.confidence(), 6)
    data["status"] = batch.status
    if with_sets:
        data["set_size"] = batch.set_sizes
        data["set_codes"] = batch.set_codes
    return pd.DataFrame(data, columns=output_columns(batch.k, with_sets=with_sets))


def _rows_for_batch(
    predictor: Predictor,
    ids: list[str],
    records: list[JobRecord],
    errors: list[str | None],
    offset: int,
    *,
    labels: Mapping[str, str],
    width: int,
    threshold: float,
    with_sets: bool,
) -> pd.DataFrame:
    batch = _Batch(len(ids), width, [e or "" for e in errors])
    ok = [i for i, e in enumerate(errors) if e is None]
    if ok:
        _predict(predictor, batch, records, ok, threshold=threshold, with_sets=with_sets)
    return _batch_table(batch, ids, offset, labels, with_sets)


def job_key(input_path: Path, *parts: Any) -> str:
    stat = input_path.stat()
    raw = json.dumps([str(input_path.resolve()), stat.st_size, stat.st_mtime_ns, *map(str, parts)])
    return hashlib.sha1(raw.encode()).hexdigest()[:16]


def _part(run_dir: Path, b: int) -> Path:
    return run_dir / f"part-{b:06d}.parquet"


def _start_run(
    input_path: Path,
    output_path: Path,
    runs_dir: Path,
    *,
    rows: int,
    predictor_id: str,
    opts: CoderConfig,
    with_sets: bool,
) -> Path:
    """The run directory of this job (same input, predictor and options: same directory)."""
    key = job_key(
        input_path,
        predictor_id,
        opts.top_n,
        opts.threshold,
        opts.id_column,
        opts.title_column,
        opts.description_column,
        opts.batch_size,
        with_sets,
    )
    run_dir = runs_dir / f"code-{key}"
    run_dir.mkdir(parents=True, exist_ok=True)
    manifest = {
        "input": str(input_path.resolve()),
        "output": str(output_path.resolve()),
        "rows": rows,
        "batch_size": opts.batch_size,
        "predictor": predictor_id,
        "top_n": opts.top_n,
        "threshold": opts.threshold,
    }
    (run_dir / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return run_dir


def _collect(run_dir: Path, n_batches: int, rows: int, columns: list[str]) -> pd.DataFrame:
    """The finished batches in row order; raises if they do not add up to the input."""
    parts = [pd.read_parquet(_part(run_dir, b)) for b in range(n_batches)]
    out = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=columns)
    if len(out) != rows or (
        len(out) and not np.array_equal(out["row"].to_numpy(), np.arange(rows))
    ):
        raise RuntimeError(f"checkpoint in {run_dir} is inconsistent; delete it and run again")
    return out


@dataclass
class _Rows:
    """The validated input: ids, records and per-row error reasons (None when fine)."""

    ids: list[str]
    records: list[JobRecord]
    errors: list[str | None]


def _run_batches(
    predictor: Predictor,
    run_dir: Path,
    rows: _Rows,
    *,
    labels: Mapping[str, str],
    opts: CoderConfig,
    with_sets: bool,
    show_progress: bool,
) -> tuple[int, int]:
    """Code every batch not yet checkpointed; returns (batches, batches found done)."""
    n, size, resumed = len(rows.ids), opts.batch_size, 0
    n_batches = (n + size - 1) // size
    with tqdm(total=n, desc="coding", unit="rec", disable=not show_progress) as bar:
        for b in range(n_batches):
            lo, hi = b * size, min((b + 1) * size, n)
            if _part(run_dir, b).exists():
                resumed += 1
            else:
                batch = _rows_for_batch(
                    predictor,
                    rows.ids[lo:hi],
                    rows.records[lo:hi],
                    rows.errors[lo:hi],
                    lo,
                    labels=labels,
                    width=opts.top_n,
                    threshold=opts.threshold,
                    with_sets=with_sets,
                )
                write_table(batch, _part(run_dir, b))
            bar.update(hi - lo)
    return n_batches, resumed


def code_file(
    input_path: str | Path,
    output_path: str | Path,
    *,
    predictor: Predictor,
    labels: Mapping[str, str],
    runs_dir: str | Path,
    predictor_id: str = "",
    options: CoderConfig | None = None,
    keep_checkpoints: bool = False,
    show_progress: bool = True,
) -> CodingSummary:
    """Code every row of ``input_path`` into ``output_path``; resumes an interrupted run.

    ``options`` (the ``[coder]`` config section; its ``model`` is not read here) names the input
    columns, the output width ``top_n``, the review ``threshold`` and the ``batch_size``. Each
    batch is checkpointed in the run directory as it finishes; the output file is written only
    once every batch is done. Rerunning the same job skips the batches already done.
    """
    input_path, output_path = Path(input_path), Path(output_path)
    opts = options or CoderConfig()
    df = read_table(input_path, string_columns=(opts.id_column,))
    ids, records, errors = prepare_records(
        df,
        id_column=opts.id_column,
        title_column=opts.title_column,
        description_column=opts.description_column,
        source=str(input_path),
    )
    with_sets = isinstance(predictor, SetPredictor)
    run_dir = _start_run(
        input_path,
        output_path,
        Path(runs_dir),
        rows=len(df),
        predictor_id=predictor_id,
        opts=opts,
        with_sets=with_sets,
    )
    n_batches, resumed = _run_batches(
        predictor,
        run_dir,
        _Rows(ids, records, errors),
        labels=labels,
        opts=opts,
        with_sets=with_sets,
        show_progress=show_progress,
    )
    out = _collect(run_dir, n_batches, len(df), output_columns(opts.top_n, with_sets=with_sets))
    write_table(out, output_path)
    status = {str(s): int(c) for s, c in Counter(out["status"]).items()}
    summary = CodingSummary(
        str(input_path), str(output_path), len(out), status, resumed, str(run_dir)
    )
    (run_dir / "summary.json").write_text(json.dumps(summary.to_dict(), indent=2))
    if not keep_checkpoints:
        for b in range(n_batches):
            _part(run_dir, b).unlink(missing_ok=True)
    return summary


def clear_run(run_dir: str | Path) -> None:
    shutil.rmtree(run_dir, ignore_errors=True)
