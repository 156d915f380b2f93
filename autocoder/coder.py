"""Batch coding: read records → predict → status → write, checkpointed and resumable.

Every input row gets exactly one output row: coded, sent to review (confidence below the
threshold) or flagged ``error:<reason>``. The input is read as a stream of batches; each finished
batch is written atomically to the run directory, so a killed job restarted with the same
arguments continues where it stopped, without duplicate or lost rows.

A job is keyed on the SHA-256 of the input's bytes and every setting that changes the output
(the predictor and its fingerprint, the index version, ``top_n``, ``threshold``, the columns), so
a changed input or setting starts a new job and never mixes with old results. The output is
deterministic: scores are rounded to ``DECIMALS`` places and ties are broken by code. While a
job runs it holds a lock on its output, so a second job writing the same file fails at once.
"""

from __future__ import annotations

import functools
import hashlib
import json
import shutil
from collections import Counter
from collections.abc import Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from autocoder.config import CoderConfig
from autocoder.index import IndexConnectionError, IndexNotBuiltError
from autocoder.io import (
    ROW_ERROR_COLUMN,
    InputError,
    TableWriter,
    check_output,
    file_sha256,
    iter_table,
    prefetch,
    table_format,
    write_table,
)
from autocoder.predictor import Predictor, SetPredictor
from autocoder.records import JobRecord, clean_text, table_texts
from autocoder.titles import clean_title
from autocoder.workspace import LockedError, file_lock

#: How much of a failed prediction's message the ``error:predict_failed:...`` status keeps.
MAX_ERROR_CHARS = 200

#: Scores and confidences are rounded to this many decimals before ranking and writing.
DECIMALS = 6

#: Failures of the whole job, not of a record: they stop the job (finished batches are kept).
FATAL_ERRORS = (IndexConnectionError, IndexNotBuiltError, LockedError, KeyboardInterrupt)


@dataclass
class CodingSummary:
    input: str
    output: str
    rows: int
    status: dict[str, int] = field(default_factory=dict)
    resumed_batches: int = 0
    run_dir: str = ""
    job: str = ""
    index_version: str = ""
    failed: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    note: str = ""

    @property
    def all_failed(self) -> bool:
        """Every record failed (a job with no rows has not failed)."""
        return self.rows > 0 and self.failed == self.rows

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def error_reason(status: str) -> str:
    """``error:predict_failed:ValueError: ...`` -> ``predict_failed``."""
    return status.split(":", 2)[1] if status.startswith("error:") else ""


def output_columns(n: int, *, with_sets: bool = False) -> list[str]:
    """The output table's columns for the ``n`` best codes per row."""
    cols = ["row", "id"]
    cols += [f"code_{i}" for i in range(1, n + 1)]
    cols += [f"label_{i}" for i in range(1, n + 1)]
    cols += [f"score_{i}" for i in range(1, n + 1)]
    cols += ["confidence", "status"]
    if with_sets:
        cols += ["set_size", "set_codes"]
    return [*cols, "index_version"]


def row_error(rid: str, seen: set[str], record: JobRecord) -> str | None:
    """Why a record cannot be coded (missing or already seen id, no text), or None."""
    if not rid:
        return "error:missing_id"
    if rid in seen:
        return "error:duplicate_id"
    if not record.title and not record.duties:
        return "error:empty_text"
    return None


def prepare_records(
    df: pd.DataFrame,
    *,
    id_column: str,
    title_column: str,
    description_column: str,
    source: str,
    seen: set[str] | None = None,
    require_columns: bool = True,
) -> tuple[list[str], list[JobRecord], list[str | None]]:
    """Validate rows; return ids, records and a per-row error reason (None when fine).

    ``seen`` carries the ids of earlier batches (duplicate ids across batches are flagged).
    With ``require_columns=False`` (later batches of a JSONL file, whose lines may each have
    other keys) missing columns are read as empty instead of failing the file.
    """
    line_errors = df.pop(ROW_ERROR_COLUMN).tolist() if ROW_ERROR_COLUMN in df.columns else None
    if not require_columns:
        for col in (id_column, title_column):
            if col not in df.columns:
                df[col] = ""
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
    seen = set() if seen is None else seen
    errors: list[str | None] = []
    for i, (rid, record) in enumerate(zip(ids, records, strict=True)):
        errors.append((line_errors[i] if line_errors else "") or row_error(rid, seen, record))
        if rid and errors[-1] != "error:duplicate_id":
            seen.add(rid)
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
    index_version: str = ""

    def __post_init__(self) -> None:
        self.codes = np.full((self.n, self.k), "", dtype=object)
        self.scores = np.full((self.n, self.k), np.nan)
        self.set_sizes = np.zeros(self.n, dtype=int)
        self.set_codes = [""] * self.n

    def confidence(self) -> np.ndarray:
        return self.scores[:, 0] if self.k else np.full(self.n, np.nan)


def ranked(proba: np.ndarray, classes: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``n`` best codes per row and their scores rounded to ``DECIMALS``; equal rounded
    scores are ordered by code, so the ranking never depends on noise below the rounding."""
    proba = np.round(np.asarray(proba, dtype=np.float64), DECIMALS)
    k = min(n, proba.shape[1]) if proba.ndim == 2 else 0
    if k == 0 or len(proba) == 0:
        return np.empty((len(proba), k), dtype=object), np.empty((len(proba), k))
    by_code = np.argsort(np.asarray(classes).astype(str), kind="stable")
    proba, codes = proba[:, by_code], np.asarray(classes, dtype=object)[by_code]
    order = np.argsort(-proba, axis=1, kind="stable")[:, :k]
    return codes[order], np.take_along_axis(proba, order, axis=1)


def _batch_table(
    batch: _Batch, ids: list[str], offset: int, labels: Mapping[str, str], with_sets: bool
) -> pd.DataFrame:
    data: dict[str, Any] = {"row": np.arange(offset, offset + batch.n), "id": ids}
    for j in range(batch.k):
        data[f"code_{j + 1}"] = batch.codes[:, j]
    for j in range(batch.k):
        data[f"label_{j + 1}"] = [labels.get(c, "") if c else "" for c in batch.codes[:, j]]
    for j in range(batch.k):
        data[f"score_{j + 1}"] = batch.scores[:, j]
    data["confidence"] = batch.confidence()
    data["status"] = batch.status
    if with_sets:
        data["set_size"] = batch.set_sizes
        data["set_codes"] = batch.set_codes
    data["index_version"] = batch.index_version
    return pd.DataFrame(data, columns=output_columns(batch.k, with_sets=with_sets))


#: Records predicted in one model pass (the checkpoint batches inside are still written one by
#: one); large enough that each padded encoder batch is full.
WINDOW_ROWS = 4096

#: Distinct records whose predictions a job keeps to fan out to later repeats (then it starts
#: over; the output does not change, only the work).
MEMO_SIZE = 200_000


@dataclass
class _Pending:
    """One checkpoint batch read from the input, waiting to be coded."""

    b: int
    ids: list[str]
    records: list[JobRecord]
    errors: list[str | None]
    offset: int
    done: bool = False

    @property
    def ok(self) -> list[int]:
        return [i for i, e in enumerate(self.errors) if e is None]


@dataclass
class _Coded:
    """The prediction for one distinct record: codes, rounded scores, prediction set."""

    codes: np.ndarray
    scores: np.ndarray
    set_codes: str | None = None


class BatchCoder:
    """Codes batches of prepared records with one predictor: each distinct record once per job
    (a memo fans the result out to its repeats), one model pass per window of batches."""

    def __init__(
        self,
        predictor: Predictor,
        *,
        labels: Mapping[str, str],
        width: int,
        threshold: float,
        with_sets: bool,
        index_version: str = "",
    ) -> None:
        self.predictor = predictor
        self.labels = labels
        self.width = width
        self.threshold = threshold
        self.with_sets = with_sets
        self.index_version = index_version
        self.memo: dict[JobRecord, _Coded] = {}
        self.predicted = 0

    def _predict(self, records: list[JobRecord]) -> list[_Coded]:
        proba = np.asarray(self.predictor.predict_proba(records))
        sets = (
            self.predictor.predict_sets(records, proba=proba)
            if self.with_sets and isinstance(self.predictor, SetPredictor)
            else None
        )
        codes, scores = ranked(proba, np.asarray(self.predictor.classes_), self.width)
        self.predicted += len(records)
        joined = [";".join(s) for s in sets] if sets is not None else [None] * len(records)
        return [_Coded(codes[j], scores[j], joined[j]) for j in range(len(records))]

    def _learn(self, pending: list[_Pending]) -> None:
        """Predict the distinct records of ``pending`` not yet in the memo (one model pass)."""
        if len(self.memo) > MEMO_SIZE:
            self.memo = {}
        new = list(dict.fromkeys(p.records[i] for p in pending for i in p.ok))
        new = [r for r in new if r not in self.memo]
        if new:
            self.memo.update(zip(new, self._predict(new), strict=True))

    def code(self, pending: list[_Pending]) -> list[pd.DataFrame]:
        """The output table of every batch in ``pending``; a failing model pass is retried
        batch by batch, and only the rows of a batch that still fails are flagged."""
        failed: dict[int, str] = {}
        try:
            self._learn(pending)
        except FATAL_ERRORS:
            raise
        except Exception as exc:  # noqa: BLE001 - the batch is flagged, the job goes on
            if len(pending) > 1:
                return [self.code([p])[0] for p in pending]
            failed[pending[0].b] = failure_status(exc)
        return [self._table(p, failed.get(p.b)) for p in pending]

    def _table(self, p: _Pending, failure: str | None) -> pd.DataFrame:
        batch = _Batch(len(p.ids), self.width, [e or "" for e in p.errors])
        batch.index_version = self.index_version
        ok = p.ok
        if failure is not None:
            for i in ok:
                batch.status[i] = failure
        elif ok:
            rows = [self.memo[p.records[i]] for i in ok]
            scores = np.vstack([r.scores for r in rows])
            k = scores.shape[1]
            batch.codes[ok, :k] = np.vstack([r.codes for r in rows])
            batch.scores[ok, :k] = scores
            for row, i in zip(rows, ok, strict=True):
                batch.status[i] = "coded" if row.scores[0] >= self.threshold else "review"
                if row.set_codes is not None:
                    batch.set_codes[i] = row.set_codes
                    batch.set_sizes[i] = len(row.set_codes.split(";")) if row.set_codes else 0
        return _batch_table(batch, p.ids, p.offset, self.labels, self.with_sets)


def job_key(input_sha256: str, settings: Mapping[str, Any]) -> str:
    """The job's key: the input's content hash and every setting that changes the output."""
    raw = json.dumps({"input_sha256": input_sha256, **settings}, sort_keys=True, default=str)
    return hashlib.sha256(raw.encode()).hexdigest()[:20]


def _part(run_dir: Path, b: int) -> Path:
    return run_dir / f"part-{b:06d}.parquet"


def _path_key(path: Path) -> str:
    return hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:24]


@dataclass
class _Job:
    run_dir: Path
    key: str
    batch_size: int
    note: str = ""


def _start_job(
    input_path: Path, output_path: Path, runs_dir: Path, settings: dict[str, Any], batch_size: int
) -> _Job:
    """The run directory of this job, and a note when it replaces another job on this output.

    A resumed job keeps the batch size it started with (it does not change the output)."""
    key = job_key(file_sha256(input_path), settings)
    run_dir = runs_dir / f"code-{key}"
    run_dir.mkdir(parents=True, exist_ok=True)
    manifest_path = run_dir / "manifest.json"
    if manifest_path.is_file():
        batch_size = int(json.loads(manifest_path.read_text())["batch_size"])
    else:
        manifest = {
            "job": key,
            "input": str(input_path.resolve()),
            "output": str(output_path.resolve()),
            "batch_size": batch_size,
            "settings": settings,
        }
        manifest_path.write_text(json.dumps(manifest, indent=2, default=str))
    pointer = runs_dir / "outputs" / f"{_path_key(output_path)}.json"
    note = ""
    if pointer.is_file():
        previous = json.loads(pointer.read_text()).get("job")
        if previous and previous != key:
            note = (
                f"the input or a setting changed since the last job writing {output_path} "
                f"(job {previous}): starting a new job {key}; no earlier result is reused"
            )
    pointer.parent.mkdir(parents=True, exist_ok=True)
    pointer.write_text(json.dumps({"job": key, "run_dir": str(run_dir)}))
    return _Job(run_dir, key, batch_size, note)


def _part_rows(path: Path) -> int:
    import pyarrow.parquet as pq

    try:
        return int(pq.ParquetFile(path).metadata.num_rows)
    except (OSError, ValueError):  # a damaged part is coded again
        return -1


@dataclass
class _Run:
    """What one pass over the input needs besides the predictor."""

    input_path: Path
    job: _Job
    labels: Mapping[str, str]
    opts: CoderConfig
    with_sets: bool
    index_version: str


def iter_pending(input_path: Path, opts: CoderConfig, size: int) -> Iterator[_Pending]:
    """The input's checkpoint batches of ``size`` rows, validated (ids checked across batches)."""
    seen: set[str] = set()
    clean = functools.lru_cache(maxsize=MEMO_SIZE)(clean_title)  # repeated titles: once
    chunks = iter_table(input_path, chunk_rows=size, string_columns=(opts.id_column,))
    for b, chunk in enumerate(chunks):
        ids, records, errors = prepare_records(
            chunk,
            id_column=opts.id_column,
            title_column=opts.title_column,
            description_column=opts.description_column,
            source=str(input_path),
            seen=seen,
            require_columns=b == 0 and not all(errors_in(chunk)),
        )
        if opts.normalize_titles:  # the occupation part only; seniority is not coded text
            records = [JobRecord(clean(r.title), r.duties) for r in records]
        yield _Pending(b, ids, records, errors, b * size)


def windows(pending: Iterator[_Pending], rows: int) -> Iterator[list[_Pending]]:
    """Consecutive batches grouped until they hold at least ``rows`` records."""
    group: list[_Pending] = []
    for p in pending:
        group.append(p)
        if sum(len(g.ids) for g in group) >= rows:
            yield group
            group = []
    if group:
        yield group


def _run_batches(
    coder: BatchCoder, run: _Run, *, window_rows: int, show_progress: bool
) -> tuple[int, int]:
    """Stream the input (read ahead in a thread); code every batch not yet checkpointed, a
    window of batches per model pass; parts are written in another thread while the next
    window is coded. Returns (batches, resumed)."""
    n_batches = resumed = 0
    pending = prefetch(iter_pending(run.input_path, run.opts, run.job.batch_size))
    with (
        ThreadPoolExecutor(max_workers=1) as writer,
        tqdm(desc="coding", unit="rec", disable=not show_progress) as bar,
    ):
        writes: list[Future[Path]] = []  # the previous window's parts, written meanwhile
        for group in windows(pending, window_rows):
            for p in group:
                part = _part(run.job.run_dir, p.b)
                p.done = part.exists() and _part_rows(part) == len(p.ids)
            todo = [p for p in group if not p.done]
            tables = coder.code(todo) if todo else []
            for w in writes:
                w.result()  # a failed write stops the job here
            writes = [
                writer.submit(write_table, t, _part(run.job.run_dir, p.b))
                for p, t in zip(todo, tables, strict=True)
            ]
            n_batches += len(group)
            resumed += len(group) - len(todo)
            bar.update(sum(len(p.ids) for p in group))
        for w in writes:
            w.result()
    return n_batches, resumed


def errors_in(chunk: pd.DataFrame) -> list[bool]:
    """Per row: is the line unreadable (JSONL lines that are not objects)?"""
    if ROW_ERROR_COLUMN not in chunk.columns:
        return [False] * max(len(chunk), 1)
    return [bool(e) for e in chunk[ROW_ERROR_COLUMN]]


def _assemble(run_dir: Path, n_batches: int, output_path: Path, columns: list[str]) -> Counter[str]:
    """Write the finished batches in row order to ``output_path`` (one batch in memory at a
    time); returns the status counts. Raises if the batches do not follow on from each other."""
    writer = TableWriter(output_path)
    status: Counter[str] = Counter()
    rows = 0
    try:
        if n_batches == 0:
            writer.write(pd.DataFrame(columns=columns))
        for b in range(n_batches):
            part = pd.read_parquet(_part(run_dir, b))
            if not np.array_equal(part["row"].to_numpy(), np.arange(rows, rows + len(part))):
                raise RuntimeError(
                    f"checkpoint in {run_dir} is inconsistent; delete it and run again"
                )
            rows += len(part)
            status.update(str(s) for s in part["status"])
            writer.write(part)
        writer.close()
    except BaseException:
        writer.abort()
        raise
    return status


def _summary(
    input_path: Path, output_path: Path, job: _Job, status: Counter[str], resumed: int
) -> CodingSummary:
    errors: Counter[str] = Counter()
    for s, c in status.items():
        if s.startswith("error:"):
            errors[error_reason(s)] += c
    return CodingSummary(
        str(input_path),
        str(output_path),
        sum(status.values()),
        {s: int(c) for s, c in sorted(status.items())},
        resumed,
        str(job.run_dir),
        job=job.key,
        failed=sum(errors.values()),
        errors=dict(sorted(errors.items())),
        note=job.note,
    )


def job_settings(
    opts: CoderConfig,
    *,
    predictor_id: str,
    fingerprint: Mapping[str, Any] | None,
    index_version: str,
    with_sets: bool,
) -> dict[str, Any]:
    """Every setting that changes the output (``batch_size`` does not)."""
    return {
        "predictor": predictor_id,
        "fingerprint": dict(fingerprint or {}),
        "index_version": index_version,
        "top_n": opts.top_n,
        "threshold": opts.threshold,
        "normalize_titles": opts.normalize_titles,
        "columns": [opts.id_column, opts.title_column, opts.description_column],
        "with_sets": with_sets,
        "decimals": DECIMALS,
    }


def check_paths(input_path: Path, output_path: Path) -> None:
    """Before any work: the input is a readable table, the output a writable one."""
    table_format(input_path)
    if not input_path.is_file():
        raise InputError(f"{input_path}: file not found")
    check_output(output_path, input_path=input_path)


def code_file(
    input_path: str | Path,
    output_path: str | Path,
    *,
    predictor: Predictor,
    labels: Mapping[str, str],
    runs_dir: str | Path,
    predictor_id: str = "",
    fingerprint: Mapping[str, Any] | None = None,
    index_version: str = "",
    options: CoderConfig | None = None,
    keep_checkpoints: bool = False,
    show_progress: bool = True,
    window_rows: int | None = None,
) -> CodingSummary:
    """Code every row of ``input_path`` into ``output_path``; resumes an interrupted run.

    ``options`` (the ``[coder]`` config section; its ``model`` is not read here) names the input
    columns, the output width ``top_n``, the review ``threshold`` and the ``batch_size``.
    ``predictor_id``, ``fingerprint`` (settings behind the predictor) and ``index_version``
    enter the job key and ``index_version`` is written in every row. The input is streamed;
    each batch is checkpointed as it finishes and the output is written once every batch is
    done. Rerunning the same job skips the batches already done; a second job writing the same
    output while this one runs raises ``LockedError``. Each distinct record is predicted once
    per job, ``window_rows`` records (default ``WINDOW_ROWS``) per model pass.
    """
    input_path, output_path = Path(input_path), Path(output_path)
    opts = options or CoderConfig()
    check_paths(input_path, output_path)
    runs_dir = Path(runs_dir)
    with_sets = isinstance(predictor, SetPredictor)
    lock = runs_dir / "locks" / f"{_path_key(output_path)}.lock"
    with file_lock(lock, exclusive=True, busy=f"another job is writing {output_path}"):
        settings = job_settings(
            opts,
            predictor_id=predictor_id,
            fingerprint=fingerprint,
            index_version=index_version,
            with_sets=with_sets,
        )
        job = _start_job(input_path, output_path, runs_dir, settings, opts.batch_size)
        run = _Run(input_path, job, labels, opts, with_sets, index_version)
        coder = BatchCoder(
            predictor,
            labels=labels,
            width=opts.top_n,
            threshold=opts.threshold,
            with_sets=with_sets,
            index_version=index_version,
        )
        n_batches, resumed = _run_batches(
            coder, run, window_rows=window_rows or WINDOW_ROWS, show_progress=show_progress
        )
        columns = output_columns(opts.top_n, with_sets=with_sets)
        status = _assemble(job.run_dir, n_batches, output_path, columns)
    summary = _summary(input_path, output_path, job, status, resumed)
    summary.index_version = index_version
    _finish(job.run_dir, summary, n_batches, keep_checkpoints=keep_checkpoints)
    return summary


def _finish(
    run_dir: Path, summary: CodingSummary, n_batches: int, *, keep_checkpoints: bool
) -> None:
    """Write the job's ``summary.json``; drop the batch checkpoints unless asked to keep them."""
    (run_dir / "summary.json").write_text(json.dumps(summary.to_dict(), indent=2))
    if not keep_checkpoints:
        for b in range(n_batches):
            _part(run_dir, b).unlink(missing_ok=True)


def clear_run(run_dir: str | Path) -> None:
    shutil.rmtree(run_dir, ignore_errors=True)
