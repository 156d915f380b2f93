"""Read and write record tables: CSV, JSONL and Parquet, chosen by file extension.

``read_table`` reads a whole (small) table; ``iter_table`` streams a large one in chunks of a
fixed number of rows, so memory does not grow with the file. ``check_output`` checks an output
path before any work is done.
"""

from __future__ import annotations

import codecs
import csv
import errno
import hashlib
import json
import os
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from queue import Empty, Queue
from typing import Any, TypeVar

import pandas as pd

FORMATS = {
    ".csv": "csv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".parquet": "parquet",
    ".pq": "parquet",
}

T = TypeVar("T")

#: Column ``iter_table`` adds to JSONL chunks: why a line is not a record ("" when it is one).
ROW_ERROR_COLUMN = "__row_error__"


class InputError(ValueError):
    """An input file cannot be read as a record table, or an output cannot be written."""


def table_format(path: str | Path) -> str:
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise InputError(
            f"{path}: unsupported file type {suffix or '(none)'}; use .csv, .jsonl or .parquet"
        )
    return FORMATS[suffix]


#: Cells a spreadsheet would run as a formula start with one of these (OWASP "CSV injection").
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")

_PLAIN_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def formula_safe(cell: str) -> str:
    """``cell`` prefixed with a single quote when a spreadsheet would read it as a formula (it
    starts with ``= + - @``, a tab or a carriage return), as OWASP recommends; a plain number
    written as text (``-5``, ``+1.5e3``) is left alone."""
    if cell.startswith(FORMULA_START) and not _PLAIN_NUMBER.fullmatch(cell):
        return "'" + cell
    return cell


def formula_unguard(cell: str) -> str:
    """The inverse of ``formula_safe``: a CSV written by autocoder reads back as it was."""
    if cell.startswith("'") and formula_safe(cell[1:]) != cell[1:]:
        return cell[1:]
    return cell


def _is_text(series: pd.Series) -> bool:
    return series.dtype == object or pd.api.types.is_string_dtype(series.dtype)


def _unguard_frame(df: pd.DataFrame) -> pd.DataFrame:
    for col in df.columns:
        if _is_text(df[col]):
            values = df[col]
            quoted = values.map(lambda v: isinstance(v, str) and v.startswith("'"))
            if quoted.any():
                df[col] = values.where(~quoted, values[quoted].map(formula_unguard))
    return df


def formula_safe_frame(df: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``df`` whose text cells are ``formula_safe``; numeric columns are untouched."""
    out = df.copy()
    for col in out.columns:
        if _is_text(out[col]):
            out[col] = out[col].map(lambda v: formula_safe(v) if isinstance(v, str) else v)
    return out


class _JsonNumber:
    """A JSON number kept with its exact text (ids must not become floats or lose digits)."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


def _as_text(v: Any) -> str:
    if isinstance(v, _JsonNumber):
        return v.text
    return "" if v is None or (isinstance(v, float) and pd.isna(v)) else str(v)


def check_encoding(encoding: str) -> str:
    """``encoding`` if Python knows it, else an ``InputError``."""
    try:
        codecs.lookup(encoding)
    except LookupError:
        raise InputError(f"unknown encoding {encoding!r} (e.g. utf-8, latin-1, cp1252)") from None
    return encoding


def _decode_error(path: Path, encoding: str, lineno: int) -> InputError:
    hint = " (use --encoding latin-1)" if codecs.lookup(encoding).name == "utf-8" else ""
    return InputError(f"{path} line {lineno}: not valid {encoding}{hint}")


def _bad_line(path: Path, encoding: str) -> int:
    """The first line of ``path`` that does not decode with ``encoding`` (0 if none)."""
    decoder = codecs.getincrementaldecoder(encoding)()
    with path.open("rb") as fh:
        for lineno, line in enumerate(fh, start=1):
            try:
                decoder.decode(line)
            except UnicodeDecodeError:
                return lineno
    return 0


def _duplicated(path: Path, names: list[str]) -> None:
    counts = {n: names.count(n) for n in names}
    dup = next((n for n, c in counts.items() if c > 1), None)
    if dup is not None:
        raise InputError(
            f"{path}: column {dup!r} appears {counts[dup]} times in the header; "
            "each column must have one name"
        )


def _csv_header(path: Path, encoding: str) -> None:
    """Refuse a CSV whose header names a column twice (pandas would rename one silently)."""
    with path.open("rb") as fh:
        first = fh.readline()
    try:
        text = first.decode(encoding)
    except UnicodeDecodeError:
        raise _decode_error(path, encoding, 1) from None
    _duplicated(path, next(csv.reader([text.lstrip("\ufeff")]), []))


def _arrow_frame(table: Any, string_columns: tuple[str, ...]) -> pd.DataFrame:
    """An Arrow table as pandas; ``string_columns`` of integer or decimal type are cast to
    text in Arrow (so a column with nulls never turns ``1`` into ``1.0``)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    names = list(table.schema.names)
    for i, name in enumerate(names):
        kind = table.schema.field(i).type
        if name in string_columns and (pa.types.is_integer(kind) or pa.types.is_decimal(kind)):
            table = table.set_column(i, name, pc.cast(table.column(i), pa.string()))
    return table.to_pandas()


def _text_columns(df: pd.DataFrame, columns: tuple[str, ...]) -> pd.DataFrame:
    for col in columns:
        if col in df.columns:
            df[col] = df[col].map(_as_text)
    return df


def _check_input(path: Path, encoding: str = "utf-8") -> str:
    fmt = table_format(path)
    if not path.exists():
        raise InputError(f"{path}: file not found")
    check_encoding(encoding)
    if fmt == "csv":
        _csv_header(path, encoding)
    return fmt


def read_table(
    path: str | Path, *, string_columns: tuple[str, ...] = ("id",), encoding: str = "utf-8"
) -> pd.DataFrame:
    """Read a table; ``string_columns`` (ids, codes) are kept as text exactly as written, never
    parsed as numbers (JSONL ``7`` is ``"7"``, a Parquet int ``1`` is ``"1"``).

    A JSONL line that is not a JSON object is an ``InputError`` naming the line (the batch
    coder, which reads with ``iter_table``, turns such a line into an error row instead); so is
    a byte that is not valid in ``encoding`` (CSV and JSONL) and a column named twice.
    """
    path = Path(path)
    fmt = _check_input(path, encoding)
    try:
        if fmt == "csv":
            df = _unguard_frame(
                pd.read_csv(path, dtype=str, keep_default_na=False, encoding=encoding)
            )
        elif fmt == "jsonl":
            chunks = _iter_jsonl(path, 100_000, strict=True, keep=string_columns, encoding=encoding)
            frames = list(chunks)
            df = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
        else:
            import pyarrow.parquet as pq

            table = pq.read_table(path)
            _duplicated(path, list(table.schema.names))
            df = _arrow_frame(table, string_columns)
    except UnicodeDecodeError:
        raise _decode_error(path, encoding, _bad_line(path, encoding)) from None
    except (ValueError, OSError, pd.errors.ParserError) as exc:
        if isinstance(exc, InputError):
            raise
        raise InputError(f"{path}: cannot read as {fmt}: {exc}") from exc
    return _text_columns(df, string_columns)


class _DuplicateKey(ValueError):
    pass


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKey(key)
        out[key] = value
    return out


def _json_value(v: Any) -> Any:
    """A parsed JSON value with every exact-text number turned back into int or float."""
    if isinstance(v, _JsonNumber):
        return float(v.text) if any(c in v.text for c in ".eE") else int(v.text)
    if isinstance(v, list):
        return [_json_value(x) for x in v]
    if isinstance(v, dict):
        return {k: _json_value(x) for k, x in v.items()}
    return v


def _parse_line(line: str, keep: tuple[str, ...]) -> Any:
    """``json.loads`` keeping the exact text of numbers in the ``keep`` keys of an object."""
    value = json.loads(
        line, parse_int=_JsonNumber, parse_float=_JsonNumber, object_pairs_hook=_object
    )
    if not isinstance(value, dict):
        return _json_value(value)
    return {
        k: (_as_text(v) if k in keep and isinstance(v, _JsonNumber) else _json_value(v))
        for k, v in value.items()
    }


def _jsonl_row(
    line: str, lineno: int, path: Path, strict: bool, keep: tuple[str, ...] = ()
) -> dict[str, Any]:
    try:
        value = _parse_line(line, keep)
    except _DuplicateKey as exc:
        problem = f"duplicate_key: line {lineno} has the key {exc.args[0]!r} twice"
    except json.JSONDecodeError as exc:
        problem = f"invalid_json: line {lineno}: {exc.msg}"
    else:
        if isinstance(value, dict):
            return {**value, ROW_ERROR_COLUMN: ""} if not strict else value
        problem = f"not_an_object: line {lineno} holds a JSON {type(value).__name__}"
    if strict:
        raise InputError(f"{path}: {problem.replace('_', ' ', 1)}; every line must be an object")
    return {ROW_ERROR_COLUMN: f"error:{problem}"}


def _iter_jsonl(
    path: Path, chunk_rows: int, *, strict: bool, keep: tuple[str, ...] = (), encoding: str
) -> Iterator[pd.DataFrame]:
    rows: list[dict[str, Any]] = []
    with path.open("rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            try:
                line = raw.decode(encoding)
            except UnicodeDecodeError:
                raise _decode_error(path, encoding, lineno) from None
            if not line.strip():
                continue
            rows.append(_jsonl_row(line, lineno, path, strict, keep))
            if len(rows) == chunk_rows:
                yield pd.DataFrame.from_records(rows)
                rows = []
    if rows:
        yield pd.DataFrame.from_records(rows)


def _raw_chunks(
    path: Path, fmt: str, chunk_rows: int, keep: tuple[str, ...], encoding: str
) -> Iterator[pd.DataFrame]:
    if fmt == "csv":
        chunks = pd.read_csv(
            path, dtype=str, keep_default_na=False, chunksize=chunk_rows, encoding=encoding
        )
        yield from (_unguard_frame(chunk) for chunk in chunks)
    elif fmt == "jsonl":
        yield from _iter_jsonl(path, chunk_rows, strict=False, keep=keep, encoding=encoding)
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        with pq.ParquetFile(path) as pf:
            _duplicated(path, list(pf.schema_arrow.names))
            for batch in pf.iter_batches(batch_size=chunk_rows):
                yield _arrow_frame(pa.Table.from_batches([batch]), keep)


def _fixed_size(chunks: Iterator[pd.DataFrame], size: int) -> Iterator[pd.DataFrame]:
    """Re-cut ``chunks`` into frames of exactly ``size`` rows (the last one may be shorter).

    A chunk is joined to the rows left over from the chunks before it (their columns too, even
    when no row is left over); a chunk of exactly ``size`` rows with no row and no other column
    left over is handed on as it is."""
    rest: pd.DataFrame | None = None
    for chunk in chunks:
        if len(chunk) == size and (
            rest is None or (not len(rest) and list(rest.columns) == list(chunk.columns))
        ):
            yield chunk.reset_index(drop=True)
            rest = chunk.iloc[:0]
            continue
        frame = chunk if rest is None else pd.concat([rest, chunk], ignore_index=True)
        start = 0
        while len(frame) - start >= size:
            yield frame.iloc[start : start + size].reset_index(drop=True)
            start += size
        rest = frame.iloc[start:].reset_index(drop=True)
    if rest is not None and len(rest):
        yield rest


def iter_table(
    path: str | Path,
    *,
    chunk_rows: int,
    string_columns: tuple[str, ...] = ("id",),
    encoding: str = "utf-8",
) -> Iterator[pd.DataFrame]:
    """Stream a table in chunks of exactly ``chunk_rows`` rows (the last may be shorter);
    ``string_columns`` and ``encoding`` as in ``read_table``.

    JSONL chunks carry a ``ROW_ERROR_COLUMN``: ``error:invalid_json: ...``,
    ``error:not_an_object: ...`` or ``error:duplicate_key: ...`` for a line that is not one
    JSON object, else ``""``.
    """
    path = Path(path)
    fmt = _check_input(path, encoding)
    chunks = _raw_chunks(path, fmt, chunk_rows, string_columns, encoding)
    try:
        for chunk in _fixed_size(chunks, chunk_rows):
            yield _text_columns(chunk, string_columns)
    except UnicodeDecodeError:
        raise _decode_error(path, encoding, _bad_line(path, encoding)) from None
    except InputError:
        raise
    except (ValueError, OSError, pd.errors.ParserError) as exc:
        raise InputError(f"{path}: cannot read as {fmt}: {exc}") from exc


def file_sha256(path: str | Path, *, block: int = 1 << 20) -> str:
    """The SHA-256 of a file's bytes, read in blocks."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        while data := fh.read(block):
            digest.update(data)
    return digest.hexdigest()


def same_file(a: str | Path, b: str | Path) -> bool:
    a, b = Path(a), Path(b)
    if a.resolve() == b.resolve():
        return True
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def check_output(path: str | Path, *, input_path: str | Path | None = None) -> Path:
    """Fail early (``InputError``) when ``path`` cannot be written as a table: an unknown
    extension, the input file itself, or a folder that cannot be created or written to."""
    path = Path(path)
    table_format(path)
    if input_path is not None and same_file(path, input_path):
        raise InputError(f"output {path} is the input file; choose another output path")
    if path.is_dir():
        raise InputError(f"output {path} is a directory; give a file name")
    probe = path.with_name(f".{path.name}.{os.getpid()}.probe")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise InputError(f"cannot write the output {path}: {exc.strerror or exc}") from exc
    return path


def temporary_path(path: str | Path) -> Path:
    """Where ``path`` is written before it is renamed into place."""
    path = Path(path)
    return path.with_name(f".{path.name}.tmp")


def write_table(df: pd.DataFrame, path: str | Path, *, formula_guard: bool = True) -> Path:
    """Write atomically (temporary file + rename), so a reader never sees half a file.

    In a CSV, text cells that a spreadsheet would run as a formula are ``formula_safe``
    (``formula_guard=False``: written as they are)."""
    path = Path(path)
    fmt = table_format(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_path(path)
    try:
        if fmt == "csv":
            (formula_safe_frame(df) if formula_guard else df).to_csv(tmp, index=False)
        elif fmt == "jsonl":
            df.to_json(tmp, orient="records", lines=True, force_ascii=False)
        else:
            df.to_parquet(tmp, index=False)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise  # the machine's fault, not the path's: the caller says "disk full"
        raise InputError(f"cannot write {path}: {exc.strerror or exc}") from exc
    return path


class TableWriter:
    """Append frames to one output table, written to a temporary file and renamed on ``close``.

    Memory holds one frame at a time, whatever the table's length. CSV text cells are
    ``formula_safe`` unless ``formula_guard`` is False.
    """

    def __init__(self, path: str | Path, *, formula_guard: bool = True) -> None:
        self.path = Path(path)
        self.formula_guard = formula_guard
        self.fmt = table_format(self.path)
        self.tmp = temporary_path(self.path)
        self._parquet: Any = None
        self._schema: Any = None
        self._file: Any = None  # CSV and JSONL: the temporary file, open until close/abort
        self._started = False

    def write(self, df: pd.DataFrame) -> None:
        if self.fmt == "parquet":
            import pyarrow as pa
            import pyarrow.parquet as pq

            table = pa.Table.from_pandas(df, schema=self._schema, preserve_index=False)
            if self._parquet is None:
                self._schema = table.schema
                self._parquet = pq.ParquetWriter(self.tmp, self._schema)
            self._parquet.write_table(table)
            return
        if self._file is None:  # as pandas opens a path: UTF-8, line ends untranslated
            self._file = self.tmp.open("w", encoding="utf-8", newline="")
        if self.fmt == "csv":
            out = formula_safe_frame(df) if self.formula_guard else df
            out.to_csv(self._file, index=False, header=not self._started)
        elif len(df):
            df.to_json(self._file, orient="records", lines=True, force_ascii=False)
        self._started = True

    def _release(self) -> None:
        if self._parquet is not None:
            self._parquet.close()
        if self._file is not None:
            self._file.close()
        self._parquet = self._file = None

    def close(self) -> Path:
        """Finish the file and move it into place."""
        self._release()
        os.replace(self.tmp, self.path)
        return self.path

    def abort(self) -> None:
        self._release()
        self.tmp.unlink(missing_ok=True)


def prefetch(items: Iterator[T], depth: int = 2) -> Iterator[T]:
    """Iterate ``items`` in a background thread, up to ``depth`` ahead (reading overlaps the
    caller's work). An exception in the thread is raised in the caller; a caller that stops
    early stops the thread at its next item."""
    queue: Queue[tuple[bool, Any]] = Queue(maxsize=depth)
    stop = threading.Event()

    def fill() -> None:
        try:
            for item in items:
                if stop.is_set():
                    return
                queue.put((True, item))
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            queue.put((False, exc))
            return
        queue.put((False, None))

    thread = threading.Thread(target=fill, name="autocoder-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            ok, value = queue.get()
            if ok:
                yield value
            elif value is None:
                return
            else:
                raise value
    finally:
        stop.set()
        while thread.is_alive():  # unblock a producer waiting on a full queue
            try:
                queue.get_nowait()
            except Empty:
                thread.join(timeout=0.05)
