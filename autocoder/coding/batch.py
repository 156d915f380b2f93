"""Batch coding: read records → predict → status → write, checkpointed and resumable.

Every input row gets exactly one output row: coded, sent to review (confidence below the
threshold) or flagged ``error:<reason>``. The input is read as a stream of batches; each finished
batch is written atomically to the run directory, so a killed job restarted with the same
arguments continues where it stopped, without duplicate or lost rows.

A job is keyed on the SHA-256 of the input's bytes and every setting that changes the output
(the predictor and its fingerprint, the index version, ``top_n``, ``threshold``, the columns), so
a changed input or setting starts a new job and never mixes with old results. The output is
deterministic: scores are rounded to ``DECIMALS`` places and ties are broken by code. While a
job runs it holds a lock on its output (``.<name>.lock`` next to it), so a second job writing the
same file fails at once, whichever workspace it runs from.

``code_frame`` codes an in-memory table through the same path (validation, title cleaning,
``BatchCoder``) and returns exactly the rows ``code_file`` writes for it.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import shutil
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol, cast

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from autocoder.coding.loaded import LoadedCoder
from autocoder.coding.predictor import SetPredictor
from autocoder.coding.trust import coder_assigner
from autocoder.config import CoderConfig, OutputConfig
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
    temporary_path,
)
from autocoder.records import JobRecord, clean_text, duties_column, table_texts, text_type_error
from autocoder.titles import clean_title
from autocoder.workspace import LockedError, output_lock

log = logging.getLogger(__name__)

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
    calibration: dict[str, Any] = field(default_factory=dict)

    @property
    def all_failed(self) -> bool:
        """Every record failed (a job with no rows has not failed)."""
        return self.rows > 0 and self.failed == self.rows

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def error_reason(status: str) -> str:
    """``error:predict_failed:ValueError: ...`` -> ``predict_failed``."""
    return status.split(":", 2)[1] if status.startswith("error:") else ""


#: Every row's assigned code (autocoder.coding.trust): the detailed code when ``coded``, an
#: ancestor when ``partial``, empty for ``review`` and errors.
ASSIGNED_COLUMNS = ("assigned_code", "assigned_level", "assigned_label", "assigned_confidence")


def output_columns(n: int, *, with_sets: bool = False, with_uris: bool = False) -> list[str]:
    """The output table's columns for the ``n`` best codes per row (``uri_i``: the codes'
    concept URIs, for taxonomies that have them, such as ESCO)."""
    cols = ["row", "id"]
    cols += [f"code_{i}" for i in range(1, n + 1)]
    cols += [f"label_{i}" for i in range(1, n + 1)]
    cols += [f"uri_{i}" for i in range(1, n + 1) if with_uris]
    cols += [f"score_{i}" for i in range(1, n + 1)]
    cols += ["confidence", "status", *ASSIGNED_COLUMNS]
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
    type_errors = _type_errors(df, title_column, description_column)
    titles, duties = table_texts(
        df, title_column=title_column, description_column=description_column, source=source
    )
    ids = [clean_text(v) for v in df[id_column].tolist()]
    records = [JobRecord(t, d) for t, d in zip(titles, duties, strict=True)]
    seen = set() if seen is None else seen
    errors: list[str | None] = []
    for i, (rid, record) in enumerate(zip(ids, records, strict=True)):
        problem = (line_errors[i] if line_errors else "") or type_errors[i]
        errors.append(problem or row_error(rid, seen, record))
        if rid and errors[-1] != "error:duplicate_id":
            seen.add(rid)
    return ids, records, errors


def _type_errors(df: pd.DataFrame, title_column: str, description_column: str) -> list[str]:
    """Per row: ``error:bad_title_type: int`` (or ``bad_description_type``) for a cell that
    is not text (numbers, lists, mappings from JSON or Parquet), else ``""``."""
    out = [""] * len(df)
    desc_col = duties_column(df.columns, description_column)
    for col, what in ((title_column, "title"), (desc_col, "description")):
        if col is None or col not in df.columns:
            continue
        for i, value in enumerate(df[col].tolist()):
            out[i] = out[i] or text_type_error(value, what) or ""
    return out


def failure_status(exc: BaseException) -> str:
    """``error:predict_failed:<Type>: <message>``, on one line, the message cut to a length."""
    message = clean_text(str(exc))
    if len(message) > MAX_ERROR_CHARS:
        message = message[: MAX_ERROR_CHARS - 1] + "…"
    reason = f"error:predict_failed:{type(exc).__name__}"
    return f"{reason}: {message}" if message else reason


#: The per-row output cells a batch table is made of: name -> (per code candidate?, empty value).
CELLS: dict[str, tuple[bool, Any]] = {
    "codes": (True, ""),
    "labels": (True, ""),
    "uris": (True, ""),
    "scores": (True, np.nan),
    "status": (False, ""),
    "confidence": (False, np.nan),
    "assigned_code": (False, ""),
    "assigned_level": (False, ""),
    "assigned_label": (False, ""),
    "assigned_confidence": (False, np.nan),
    "set_sizes": (False, 0),
    "set_codes": (False, ""),
}


def empty_cells(n: int, k: int) -> dict[str, np.ndarray]:
    """Cells for ``n`` rows of ``k`` candidates: '' for text, NaN for scores, 0 for sizes."""
    return {
        name: np.full((n, k) if wide else n, empty, dtype=type(empty) if empty != "" else object)
        for name, (wide, empty) in CELLS.items()
    }


@dataclass
class _Batch:
    """Output cells for the rows of one batch; rows without a prediction keep NaN and ''."""

    n: int
    k: int
    status: list[str]
    index_version: str = ""
    cells: dict[str, np.ndarray] = field(init=False)

    def __post_init__(self) -> None:
        self.cells = empty_cells(self.n, self.k)
        self.cells["status"][:] = self.status

    def confidence(self) -> np.ndarray:
        return self.cells["confidence"]


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
    batch: _Batch, ids: list[str], offset: int, with_sets: bool, with_uris: bool = False
) -> pd.DataFrame:
    cells = batch.cells
    data: dict[str, Any] = {"row": np.arange(offset, offset + batch.n), "id": ids}
    for name, prefix in (("codes", "code"), ("labels", "label"), ("uris", "uri")):
        for j in range(batch.k if with_uris or name != "uris" else 0):
            data[f"{prefix}_{j + 1}"] = cells[name][:, j]
    for j in range(batch.k):
        data[f"score_{j + 1}"] = cells["scores"][:, j]
    data["confidence"] = batch.confidence()
    data["status"] = cells["status"]
    for name in ASSIGNED_COLUMNS:
        data[name] = cells[name]
    if with_sets:
        data["set_size"] = cells["set_sizes"]
        data["set_codes"] = cells["set_codes"]
    data["index_version"] = batch.index_version
    return pd.DataFrame(
        data, columns=output_columns(batch.k, with_sets=with_sets, with_uris=with_uris)
    )


#: Records predicted in one model pass (the checkpoint batches inside are still written one by
#: one); large enough that each padded encoder batch is full.
WINDOW_ROWS = 4096

#: Distinct records whose predictions a job keeps to fan out to later repeats (then it starts
#: over; the output does not change, only the work).
MEMO_SIZE = 200_000


@dataclass
class Pending:
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


class _Memo:
    """The output cells of every distinct record coded so far, a row each, by record."""

    def __init__(self, width: int) -> None:
        self.pos: dict[JobRecord, int] = {}
        self.cells = empty_cells(0, width)

    def __len__(self) -> int:
        return len(self.pos)

    def add(self, records: list[JobRecord], cells: Mapping[str, np.ndarray]) -> None:
        start = len(self.pos)
        self.pos.update((r, start + i) for i, r in enumerate(records))
        self.cells = {name: np.concatenate([old, cells[name]]) for name, old in self.cells.items()}

    def rows(self, records: list[JobRecord]) -> np.ndarray:
        return np.fromiter((self.pos[r] for r in records), dtype=np.intp, count=len(records))


def _lookup(codes: np.ndarray, names: Mapping[str, str]) -> np.ndarray:
    """``names[code]`` per cell ('' for an empty or unknown code)."""
    return np.array([[names.get(c, "") if c else "" for c in row] for row in codes], dtype=object)


class ExtraColumns(Protocol):
    """Output columns added to every coded row (``autocoder code --skills K``): ``columns``
    their names, ``key`` what changes them (it enters the job key), ``annotate`` their values
    for distinct records (one list per column, in ``columns`` order)."""

    columns: tuple[str, ...]
    key: str

    def annotate(self, records: list[JobRecord]) -> list[list[str]]: ...


class BatchCoder:
    """Codes batches of prepared records with one loaded coder: each distinct record once per
    job (a memo fans the result out to its repeats), one model pass per window of batches;
    ``options`` gives the width ``top_n`` and the review ``threshold``; ``extra`` adds
    columns (computed in the same pass, once per distinct record)."""

    def __init__(
        self,
        coder: LoadedCoder,
        options: CoderConfig,
        extra: ExtraColumns | None = None,
        *,
        warned_descriptions: bool = False,
    ) -> None:
        self.predictor = coder.predictor
        self.labels = coder.labels
        self.uris = coder.uris
        self.width = options.top_n
        self.threshold = options.threshold
        self.with_sets = coder.capabilities.sets
        self.index_version = coder.index_version
        self.assigner = coder_assigner(coder, options)
        self.memo = _Memo(self.width)
        self.extra = extra
        self.extra_values: dict[JobRecord, tuple[str, ...]] = {}
        self.predicted = 0
        #: the description warning was given (a service worker passes it on between passes)
        self.warned_descriptions = warned_descriptions

    def _warn_descriptions(self, records: list[JobRecord]) -> None:
        """Once a job: records with a description coded with a calibration, which
        ``autocoder calibrate`` fits on titles alone."""
        if self.warned_descriptions or self.assigner.trust is None:
            return
        described = sum(1 for r in records if r.duties)
        if described:
            self.warned_descriptions = True
            log.warning(
                "records with a description (%d of the %d in this pass): the calibration was "
                "fitted on titles alone, so their confidence, status and partial codes are "
                "outside what it was fitted on; to stay within it, code titles alone (leave "
                "the description column out of the input)",
                described, len(records),
            )  # fmt: skip

    def _predict(self, records: list[JobRecord]) -> dict[str, np.ndarray]:
        """The output cells of ``records`` (one model pass)."""
        self._warn_descriptions(records)
        proba, assigned = self.assigner.predict(self.predictor, records)
        sets = (
            cast(SetPredictor, self.predictor).predict_sets(records, proba=proba)
            if self.with_sets
            else None
        )
        codes, scores = ranked(proba, np.asarray(self.predictor.classes_), self.width)
        self.predicted += len(records)
        cells, k = empty_cells(len(records), self.width), codes.shape[1]
        cells["codes"][:, :k] = codes
        cells["scores"][:, :k] = scores
        cells["labels"][:, :k] = _lookup(codes, self.labels)
        if self.uris:
            cells["uris"][:, :k] = _lookup(codes, self.uris)
        for name, values in assigned.items():
            if cells[name].dtype == np.float64:
                values = np.round(np.asarray(values, dtype=np.float64), DECIMALS)
            cells[name][:] = values
        cells["assigned_label"][:] = [
            self.labels.get(c, "") if c else "" for c in assigned["assigned_code"]
        ]
        if sets is not None:
            cells["set_codes"][:] = [";".join(s) for s in sets]
            cells["set_sizes"][:] = [len(s.split(";")) if s else 0 for s in cells["set_codes"]]
        return cells

    def _learn(self, pending: list[Pending]) -> None:
        """Predict the distinct records of ``pending`` not yet in the memo (one model pass)."""
        if len(self.memo) > MEMO_SIZE:
            self.memo = _Memo(self.width)
            self.extra_values = {}
        new = list(dict.fromkeys(p.records[i] for p in pending for i in p.ok))
        new = [r for r in new if r not in self.memo.pos]
        if new:
            cells = self._predict(new)
            if self.extra is not None:
                values = self.extra.annotate(new)
                self.extra_values.update(zip(new, zip(*values, strict=True), strict=True))
            self.memo.add(new, cells)

    def code(self, pending: list[Pending]) -> list[pd.DataFrame]:
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

    def _table(self, p: Pending, failure: str | None) -> pd.DataFrame:
        batch = _Batch(len(p.ids), self.width, [e or "" for e in p.errors], self.index_version)
        ok = p.ok
        if failure is not None:
            batch.cells["status"][ok] = failure
        elif ok:
            rows = self.memo.rows([p.records[i] for i in ok])
            for name, values in self.memo.cells.items():
                batch.cells[name][ok] = values[rows]
        table = _batch_table(batch, p.ids, p.offset, self.with_sets, bool(self.uris))
        if self.extra is not None:
            self._add_extra(table, p, set(ok) if failure is None else set())
        return table

    def _add_extra(self, table: pd.DataFrame, p: Pending, done: set[int]) -> None:
        """The extra columns: their values for the ``done`` rows, '' for the others."""
        assert self.extra is not None
        empty = ("",) * len(self.extra.columns)
        cells = [self.extra_values[p.records[i]] if i in done else empty for i in range(len(p.ids))]
        for j, name in enumerate(self.extra.columns):
            table[name] = [c[j] for c in cells]


def job_key(input_sha256: str, settings: Mapping[str, Any]) -> str:
    """The job's key: the input's content hash and every setting that changes the output."""
    raw = json.dumps({"input_sha256": input_sha256, **settings}, sort_keys=True, default=str)
    return hashlib.sha256(raw.encode()).hexdigest()[:20]


def _part(run_dir: Path, b: int) -> Path:
    """Batch ``b``'s checkpoint: an Arrow IPC file (cheap to write, and read only to resume)."""
    return run_dir / f"part-{b:06d}.arrow"


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
            "checksums": CHECKSUMS,
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


#: The checkpoint checksums of a job (``sha256sum`` format), named in its manifest: a part is
#: resumed only when its bytes match the checksum written with it.
CHECKSUMS = "checksums.sha256"


def read_checksums(run_dir: Path) -> dict[str, str]:
    """``{part file name: SHA-256}`` of a job's checkpoints (a torn last line is ignored)."""
    path = run_dir / CHECKSUMS
    out: dict[str, str] = {}
    if path.is_file():
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            digest, _, name = line.partition("  ")
            if len(digest) == 64 and name:
                out[name] = digest
    return out


def part_problem(
    part: Path, rows: int, checksums: Mapping[str, str], labels: Mapping[str, str]
) -> str | None:
    """Why the checkpoint ``part`` cannot be trusted (None: resume from it): its bytes do not
    match their checksum, it cannot be read, has another number of rows, or holds a code that
    is not in the taxonomy (``labels``; not checked when empty)."""
    import pyarrow.feather as feather

    if checksums.get(part.name) != file_sha256(part):
        return "does not match its checksum"
    try:
        table = feather.read_table(str(part)).to_pandas()
    except (OSError, ValueError):
        return "cannot be read"
    if len(table) != rows:
        return f"holds {len(table)} rows, not {rows}"
    if labels:
        cells = (v for c in table.columns if c.startswith("code_") for v in table[c].tolist())
        unknown = sorted({v for v in cells if isinstance(v, str) and v and v not in labels})
        if unknown:
            return f"holds codes that are not in the taxonomy ({', '.join(unknown[:3])})"
    return None


def _write_part(table: pd.DataFrame, path: Path) -> None:
    """Checkpoint one batch's table atomically (temporary file + rename), then record its
    checksum (a part written but not recorded is coded again)."""
    import pyarrow as pa
    import pyarrow.feather as feather

    tmp = temporary_path(path)
    arrow = pa.Table.from_pandas(table, preserve_index=False)
    try:
        feather.write_feather(arrow, str(tmp), compression="uncompressed")
        digest = file_sha256(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    with (path.parent / CHECKSUMS).open("a", encoding="utf-8") as fh:
        fh.write(f"{digest}  {path.name}\n")


class _Sink:
    """Takes the finished batches in row order: checkpoints each new one, appends every one to
    the output (a resumed batch is read from its checkpoint) and counts the statuses."""

    def __init__(
        self, run_dir: Path, output_path: Path, columns: list[str], output: OutputConfig
    ) -> None:
        self.run_dir = run_dir
        self.columns = columns
        self.writer = TableWriter(output_path, formula_guard=output.csv_formula_guard)
        self.status: Counter[str] = Counter()
        self.rows = 0
        self.batches = 0

    def add(self, b: int, table: pd.DataFrame | None) -> None:
        """Batch ``b``: its new table, or None for a batch checkpointed by an earlier run."""
        part = _part(self.run_dir, b)
        if table is None:
            import pyarrow.feather as feather

            table = feather.read_table(str(part)).to_pandas()
        else:
            _write_part(table, part)
        expected = np.arange(self.rows, self.rows + len(table))
        if not np.array_equal(table["row"].to_numpy(), expected):
            raise RuntimeError(
                f"checkpoint in {self.run_dir} is inconsistent; delete it and run again"
            )
        self.rows += len(table)
        self.batches += 1
        self.status.update(table["status"].tolist())
        self.writer.write(table)

    def close(self) -> Counter[str]:
        """Finish the output (a table with no rows when the input had none)."""
        if self.batches == 0:
            self.writer.write(pd.DataFrame(columns=self.columns))
        self.writer.close()
        return self.status


@dataclass
class _Run:
    """What one pass over the input needs besides the coder."""

    input_path: Path
    job: _Job
    opts: CoderConfig
    labels: Mapping[str, str] = field(default_factory=dict)
    output: OutputConfig = field(default_factory=OutputConfig)
    checksums: dict[str, str] = field(default_factory=dict)
    redone: list[str] = field(default_factory=list)

    def resumable(self, b: int, rows: int) -> bool:
        """Can batch ``b`` (of ``rows`` rows) be taken from its checkpoint? A part that is
        there but fails ``part_problem`` is coded again, with a warning."""
        part = _part(self.job.run_dir, b)
        if not part.exists():
            return False
        problem = part_problem(part, rows, self.checksums, self.labels)
        if problem is None:
            return True
        note = f"checkpoint {part.name} {problem}: its batch was coded again"
        log.warning("job %s: %s", self.job.key, note)
        self.redone.append(note)
        return False


@dataclass
class BatchReader:
    """Turns tables of input rows into validated batches, as ``autocoder code`` reads them:
    ids checked across every batch it reads, titles cleaned (``coder.normalize_titles``)."""

    opts: CoderConfig
    source: str = "table"
    seen: set[str] = field(default_factory=set)
    clean: Callable[[str], str] = field(
        default_factory=lambda: functools.lru_cache(maxsize=MEMO_SIZE)(clean_title)
    )  # repeated titles: once

    def pending(self, chunk: pd.DataFrame, b: int, offset: int) -> Pending:
        """Batch ``b`` (its first row is row ``offset`` of the input)."""
        opts = self.opts
        ids, records, errors = prepare_records(
            chunk,
            id_column=opts.id_column,
            title_column=opts.title_column,
            description_column=opts.description_column,
            source=self.source,
            seen=self.seen,
            require_columns=b == 0 and not all(errors_in(chunk)),
        )
        if opts.normalize_titles:  # the occupation part only; seniority is not coded text
            records = [JobRecord(self.clean(r.title), r.duties, written=r.title) for r in records]
        return Pending(b, ids, records, errors, offset)


def iter_pending(input_path: Path, opts: CoderConfig, size: int) -> Iterator[Pending]:
    """The input's checkpoint batches of ``size`` rows, validated (ids checked across batches)."""
    reader = BatchReader(opts, source=str(input_path))
    chunks = iter_table(
        input_path, chunk_rows=size, string_columns=(opts.id_column,), encoding=opts.encoding
    )
    for b, chunk in enumerate(chunks):
        yield reader.pending(chunk, b, b * size)


def code_frame(
    coder: LoadedCoder,
    df: pd.DataFrame,
    options: CoderConfig,
    *,
    source: str = "table",
    extra: ExtraColumns | None = None,
) -> pd.DataFrame:
    """The rows ``autocoder code`` writes for the records of ``df`` (same columns, statuses,
    rounding, and an ``error:<reason>`` row for each bad record); ``df`` is not changed."""
    pending = BatchReader(options, source=source).pending(df.copy(), 0, 0)
    return BatchCoder(coder, options, extra).code([pending])[0]


def windows(pending: Iterator[Pending], rows: int) -> Iterator[list[Pending]]:
    """Consecutive batches grouped until they hold at least ``rows`` records."""
    group: list[Pending] = []
    for p in pending:
        group.append(p)
        if sum(len(g.ids) for g in group) >= rows:
            yield group
            group = []
    if group:
        yield group


def _run_batches(
    coder: BatchCoder, run: _Run, sink: _Sink, *, window_rows: int, show_progress: bool
) -> tuple[int, int]:
    """Stream the input (read ahead in a thread); code every batch not yet checkpointed, a
    window of batches per model pass; a window's batches go to ``sink`` in another thread
    while the next window is coded. Returns (batches, resumed)."""
    n_batches = resumed = 0
    ahead = max(2, window_rows // run.job.batch_size + 1)  # a window read while one is coded
    pending = prefetch(iter_pending(run.input_path, run.opts, run.job.batch_size), depth=ahead)
    with (
        ThreadPoolExecutor(max_workers=1) as writer,
        tqdm(desc="coding", unit="rec", disable=not show_progress) as bar,
    ):
        writes: list[Future[None]] = []  # the previous window's batches, written meanwhile
        for group in windows(pending, window_rows):
            for p in group:
                p.done = run.resumable(p.b, len(p.ids))
            todo = [p for p in group if not p.done]
            tables = iter(coder.code(todo) if todo else [])
            for w in writes:
                w.result()  # a failed write stops the job here
            writes = [writer.submit(sink.add, p.b, None if p.done else next(tables)) for p in group]
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


def _code_all(
    coder: BatchCoder,
    run: _Run,
    output_path: Path,
    columns: list[str],
    *,
    window_rows: int,
    show_progress: bool,
) -> tuple[int, int, Counter[str]]:
    """Code the input into ``output_path`` (written under a temporary name, moved into place
    once every batch is in); returns (batches, resumed, status counts)."""
    sink = _Sink(run.job.run_dir, output_path, columns, run.output)
    try:
        n_batches, resumed = _run_batches(
            coder, run, sink, window_rows=window_rows, show_progress=show_progress
        )
        return n_batches, resumed, sink.close()
    except BaseException:
        sink.writer.abort()
        raise


def error_counts(status: Mapping[str, int]) -> dict[str, int]:
    """Rows per error reason (``predict_failed``, ``empty_text``, ...) of status counts."""
    errors: Counter[str] = Counter()
    for s, c in status.items():
        if s.startswith("error:"):
            errors[error_reason(s)] += c
    return dict(sorted(errors.items()))


def summarize(
    input_path: Path, output_path: Path, status: Mapping[str, int], **fields: Any
) -> CodingSummary:
    """The summary of a job that wrote ``status`` counts (``fields``: the job's own)."""
    errors = error_counts(status)
    return CodingSummary(
        str(input_path),
        str(output_path),
        sum(status.values()),
        {s: int(c) for s, c in sorted(status.items())},
        failed=sum(errors.values()),
        errors=errors,
        **fields,
    )


def job_settings(coder: LoadedCoder, opts: CoderConfig) -> dict[str, Any]:
    """Every setting that changes the output (``batch_size`` does not)."""
    return {
        "predictor": coder.predictor_id,
        "fingerprint": dict(coder.fingerprint),
        "index_version": coder.index_version,
        "top_n": opts.top_n,
        "threshold": opts.threshold,
        "target_precision": opts.target_precision,
        "segment_titles": opts.segment_titles,
        "normalize_titles": opts.normalize_titles,
        "columns": [opts.id_column, opts.title_column, opts.description_column],
        "with_sets": coder.capabilities.sets,
        "decimals": DECIMALS,
        "encoding": opts.encoding,
    } | ({"with_uris": True} if coder.uris else {})


def coder_columns(coder: LoadedCoder, opts: CoderConfig) -> list[str]:
    """The output columns of ``coder`` with the options' ``top_n``."""
    return output_columns(opts.top_n, with_sets=coder.capabilities.sets, with_uris=bool(coder.uris))


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
    coder: LoadedCoder,
    runs_dir: str | Path,
    options: CoderConfig | None = None,
    keep_checkpoints: bool = False,
    show_progress: bool = True,
    window_rows: int | None = None,
    output: OutputConfig | None = None,
    extra: ExtraColumns | None = None,
) -> CodingSummary:
    """Code every row of ``input_path`` into ``output_path`` with ``coder``; resumes an
    interrupted run. ``extra`` adds output columns (``autocoder code --skills K``).

    ``options`` (the ``[coder]`` config section; its ``model`` is not read here) names the input
    columns, the output width ``top_n``, the review ``threshold`` and the ``batch_size``. The
    coder's id, fingerprint and index version enter the job key (``job_settings``) and the
    index version is written in every row; its URIs add a ``uri_i`` column per candidate. The
    input is streamed; each batch is checkpointed as it finishes and appended to the output,
    which is moved into place once every batch is done. Rerunning the same job skips the
    batches already done; a second job writing the same output while this one runs raises
    ``LockedError``. Each distinct record is predicted once per job, ``window_rows`` records
    (default ``WINDOW_ROWS``) per model pass. ``output`` (the ``[output]`` section)
    says how CSV cells are written.
    """
    input_path, output_path = Path(input_path), Path(output_path)
    opts = options or CoderConfig()
    check_paths(input_path, output_path)
    runs_dir = Path(runs_dir)
    with output_lock(output_path):  # on the output itself: jobs of every workspace see it
        settings = job_settings(coder, opts) | ({"extra": extra.key} if extra else {})
        job = _start_job(input_path, output_path, runs_dir, settings, opts.batch_size)
        run = _Run(input_path, job, opts, coder.labels, output or OutputConfig())
        run.checksums = read_checksums(job.run_dir)
        batch = BatchCoder(coder, opts, extra)
        n_batches, resumed, status = _code_all(
            batch,
            run,
            output_path,
            coder_columns(coder, opts) + (list(extra.columns) if extra else []),
            window_rows=window_rows or WINDOW_ROWS,
            show_progress=show_progress,
        )
    summary = summarize(
        input_path, output_path, status, resumed_batches=resumed, run_dir=str(job.run_dir),
        job=job.key, index_version=coder.index_version,
        note="; ".join(n for n in (job.note, *run.redone) if n),
    )  # fmt: skip
    summary.calibration = batch.assigner.describe()
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
