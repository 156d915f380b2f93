"""Ray Data engine: the batch coder over model replicas on a Ray cluster.

``autocoder code INPUT -o OUT --engine ray [--address ADDR]``. The driver streams and validates
the input exactly as the local engine does (ids checked across the whole file, unreadable JSONL
lines kept as error rows), hands the rows to a Ray Dataset, and ``map_batches`` runs
``CoderReplica`` actors: each loads the coder once (``LoadedCoder.reload``: the driver's
``load_coder`` call, made again on the replica) and codes its batches with the same
``BatchCoder`` as the local engine (each distinct record once per replica, one model pass per
batch). Rows come back in input order and are written as CSV, JSONL or Parquet; the output equals
the local engine's record for record. There is no checkpoint: a failed Ray job is run again.

Every node needs autocoder installed and the workspace (taxonomy, embedding model, Chroma store)
at the same path, or an index served by a Chroma server (``index.host``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from autocoder.coding.batch import (
    WINDOW_ROWS,
    BatchCoder,
    CodingSummary,
    Pending,
    coder_columns,
    iter_pending,
    job_key,
    job_settings,
    summarize,
)
from autocoder.coding.loaded import CoderSource, LoadedCoder
from autocoder.config import CoderConfig
from autocoder.io import TableWriter, file_sha256
from autocoder.records import JobRecord

if TYPE_CHECKING:
    import ray.data

#: Columns of the rows the driver hands to the replicas.
ROW_COLUMNS = ("row", "id", "title", "duties", "error")


def _rows(p: Pending) -> pd.DataFrame:
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


def identity(coder: LoadedCoder) -> dict[str, Any]:
    """What must be equal between the driver's coder and a replica's: the taxonomy, the
    index version and the model's config (file times may differ between nodes)."""
    model = coder.fingerprint.get("model") or {}
    return {
        "taxonomy": list(coder.fingerprint.get("taxonomy") or []),
        "index_version": coder.index_version,
        "model_config": model.get("config_sha256", ""),
    }


class CoderReplica:
    """A Ray actor: loads the coder once from its source, then codes batches of prepared rows.

    Fails at once when the replica's coder is not the driver's (another index version or
    model: the workspace differs on this node, or the index was rebuilt meanwhile)."""

    def __init__(
        self, source: Mapping[str, Any], options: Mapping[str, Any], expected: Mapping[str, Any]
    ) -> None:
        coder = CoderSource(**source).load()
        if identity(coder) != dict(expected):
            raise RuntimeError(
                f"the coder loaded on this Ray node ({identity(coder)}) is not the driver's "
                f"({dict(expected)}): same workspace, model and index on every node"
            )
        self.coder = BatchCoder(coder, CoderConfig.model_validate(options))

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        titles, duties = batch["title"].tolist(), batch["duties"].tolist()
        records = [JobRecord(str(t), str(d)) for t, d in zip(titles, duties, strict=True)]
        errors = [str(e) or None for e in batch["error"]]
        rows = batch["row"].to_numpy(dtype=np.int64)
        pending = Pending(0, [str(i) for i in batch["id"]], records, errors, int(rows[0]))
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


@dataclass(frozen=True)
class RayOptions:
    """Where and how wide ``--engine ray`` runs."""

    address: str | None = None  #: a running cluster; None starts a local one
    workers: int = 2  #: model replicas
    window_rows: int = WINDOW_ROWS  #: rows per replica call


def code_file_ray(
    input_path: Path,
    output_path: Path,
    *,
    coder: LoadedCoder,
    options: CoderConfig,
    ray_options: RayOptions | None = None,
) -> CodingSummary:
    """Code ``input_path`` on Ray with replicas of ``coder`` (each reloads it from its source)."""
    import ray

    if coder.source is None:
        raise ValueError("the Ray engine needs a coder made by load_coder (replicas reload it)")
    run = ray_options or RayOptions()
    started = not ray.is_initialized()
    if started:
        ray.init(address=run.address, include_dashboard=False, log_to_driver=False)
    try:
        ctx = ray.data.DataContext.get_current()
        ctx.execution_options.preserve_order = True
        ds = _dataset(input_path, options).map_batches(
            CoderReplica,
            fn_constructor_kwargs={
                "source": asdict(coder.source),
                "options": options.model_dump(mode="json"),
                "expected": identity(coder),
            },
            batch_size=run.window_rows,
            batch_format="pandas",
            concurrency=run.workers,
            num_cpus=1,
        )
        coded: Iterator[pd.DataFrame] = iter(ds.iter_batches(batch_format="pandas"))  # type: ignore[arg-type]
        status = _write(_ordered(coded), output_path, coder_columns(coder, options))
    finally:
        if started:
            ray.shutdown()
    return summarize(
        input_path, output_path, status,
        job=job_key(file_sha256(input_path), job_settings(coder, options)),
        index_version=coder.index_version,
    )  # fmt: skip


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
