"""Ray Data engine: the batch coder over model replicas on a Ray cluster.

``autocoder code INPUT -o OUT --engine ray [--address ADDR]``. The driver streams and validates
the input exactly as the local engine does (ids checked across the whole file, unreadable JSONL
lines kept as error rows), hands the rows to a Ray Dataset, and ``map_batches`` runs
``CoderReplica`` actors: each loads the predictor once and codes its batches with the same
``BatchCoder`` as the local engine (each distinct record once per replica, one model pass per
batch). Rows come back in input order and are written as CSV, JSONL or Parquet; the output equals
the local engine's record for record. There is no checkpoint: a failed Ray job is run again.

Every node needs autocoder installed and the workspace (taxonomy, embedding model, Chroma store)
at the same path, or an index served by a Chroma server (``index.host``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from autocoder.coder import (
    WINDOW_ROWS,
    BatchCoder,
    CodingSummary,
    _Pending,
    iter_pending,
    job_key,
)
from autocoder.config import CoderConfig, Settings
from autocoder.io import TableWriter, file_sha256
from autocoder.records import JobRecord

if TYPE_CHECKING:
    import ray.data

#: Columns of the rows the driver hands to the replicas.
ROW_COLUMNS = ("row", "id", "title", "duties", "error")


def _rows(p: _Pending) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "row": np.arange(p.offset, p.offset + len(p.ids), dtype=np.int64),
            "id": p.ids,
            "title": [r.title for r in p.records],
            "duties": [r.duties for r in p.records],
            "error": [e or "" for e in p.errors],
        },
        columns=list(ROW_COLUMNS),
    )


class CoderReplica:
    """A Ray actor: loads the predictor once, then codes batches of prepared rows."""

    def __init__(
        self,
        settings: dict[str, Any],
        home: str,
        taxonomy_name: str,
        model_dir: str | None,
        labels: Mapping[str, str],
        index_version: str,
        uris: Mapping[str, str] | None = None,
    ) -> None:
        from autocoder.api import load_predictor, make_assigner, resolve_model_dir
        from autocoder.predictor import SetPredictor
        from autocoder.taxonomy.store import load_taxonomy
        from autocoder.workspace import Workspace

        cfg = Settings.model_validate(settings)
        ws = Workspace.resolve(home)
        taxonomy = load_taxonomy(ws, taxonomy_name)
        predictor, _ = load_predictor(cfg, ws, taxonomy, model_dir)
        path = resolve_model_dir(model_dir)
        self.coder = BatchCoder(
            predictor,
            labels=labels,
            width=cfg.coder.top_n,
            threshold=cfg.coder.threshold,
            with_sets=isinstance(predictor, SetPredictor),
            index_version=index_version,
            uris=uris,
            assigner=make_assigner(cfg.coder, taxonomy, path, predictor),
        )

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        titles, duties = batch["title"].tolist(), batch["duties"].tolist()
        records = [JobRecord(str(t), str(d)) for t, d in zip(titles, duties, strict=True)]
        errors = [str(e) or None for e in batch["error"]]
        rows = batch["row"].to_numpy(dtype=np.int64)
        pending = _Pending(0, [str(i) for i in batch["id"]], records, errors, int(rows[0]))
        table = self.coder.code([pending])[0]
        table["row"] = rows
        return table


def _dataset(input_path: Path, opts: CoderConfig) -> ray.data.Dataset:
    import ray.data

    frames = [_rows(p) for p in iter_pending(input_path, opts, opts.batch_size)]
    if not frames:
        frames = [pd.DataFrame({c: [] for c in ROW_COLUMNS})]
    return ray.data.from_pandas(frames)


def _ordered(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
    """The coded rows with numpy dtypes; checks they come back complete and in input order."""
    import pyarrow as pa

    expected = 0
    for batch in batches:  # Ray may hand back Arrow-backed columns: the local engine's dtypes
        df = pa.Table.from_pandas(batch, preserve_index=False).to_pandas(ignore_metadata=True)
        rows = df["row"].to_numpy()
        if not np.array_equal(rows, np.arange(expected, expected + len(df))):
            raise RuntimeError(f"Ray returned rows out of order near row {expected}")
        expected += len(df)
        yield df


def code_file_ray(
    input_path: Path,
    output_path: Path,
    *,
    settings: Settings,
    home: Path,
    taxonomy_name: str,
    model_dir: str | None,
    labels: Mapping[str, str],
    index_version: str,
    job_settings: Mapping[str, Any],
    columns: list[str],
    address: str | None = None,
    workers: int = 2,
    window_rows: int = WINDOW_ROWS,
    uris: Mapping[str, str] | None = None,
) -> CodingSummary:
    """Code ``input_path`` on Ray (``address``: a running cluster; None starts a local one)."""
    import ray

    started = not ray.is_initialized()
    if started:
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
    try:
        ctx = ray.data.DataContext.get_current()
        ctx.execution_options.preserve_order = True
        ds = _dataset(input_path, settings.coder).map_batches(
            CoderReplica,
            fn_constructor_kwargs={
                "settings": settings.model_dump(mode="json"),
                "home": str(home),
                "taxonomy_name": taxonomy_name,
                "model_dir": model_dir,
                "labels": dict(labels),
                "index_version": index_version,
                "uris": dict(uris or {}),
            },
            batch_size=window_rows,
            batch_format="pandas",
            concurrency=workers,
            num_cpus=1,
        )
        coded: Iterator[pd.DataFrame] = iter(ds.iter_batches(batch_format="pandas"))  # type: ignore[arg-type]
        status = _write(_ordered(coded), output_path, columns)
    finally:
        if started:
            ray.shutdown()
    return CodingSummary(
        str(input_path),
        str(output_path),
        sum(status.values()),
        {s: int(c) for s, c in sorted(status.items())},
        job=job_key(file_sha256(input_path), job_settings),
        index_version=index_version,
        failed=sum(c for s, c in status.items() if s.startswith("error:")),
        errors=_reasons(status),
    )


def _reasons(status: Counter[str]) -> dict[str, int]:
    from autocoder.coder import error_reason

    out: Counter[str] = Counter()
    for s, c in status.items():
        if s.startswith("error:"):
            out[error_reason(s)] += c
    return dict(sorted(out.items()))


def _write(batches: Iterator[pd.DataFrame], output_path: Path, columns: list[str]) -> Counter[str]:
    writer = TableWriter(output_path)
    status: Counter[str] = Counter()
    try:
        wrote = False
        for df in batches:
            if len(df):
                writer.write(df)
                wrote = True
                status.update(str(s) for s in df["status"])
        if not wrote:
            writer.write(pd.DataFrame(columns=columns))
        writer.close()
    except BaseException:
        writer.abort()
        raise
    return status
