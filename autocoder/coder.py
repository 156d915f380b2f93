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

from autocoder.io import InputError, read_table, write_table
from autocoder.records import JobRecord, clean_text


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


def output_columns(top_n: int, *, with_sets: bool = False) -> list[str]:
    cols = ["row", "id"]
    cols += [f"code_{i}" for i in range(1, top_n + 1)]
    cols += [f"label_{i}" for i in range(1, top_n + 1)]
    cols += [f"score_{i}" for i in range(1, top_n + 1)]
    cols += ["confidence", "status"]
    if with_sets:
        cols += ["set_size", "set_codes"]
    return cols


def prepare_records(
    df: pd.DataFrame, *, id_column: str, title_column: str, description_column: str, source: str
) -> tuple[list[str], list[JobRecord], list[str | None]]:
    """Validate rows; return ids, records and a per-row error reason (None when fine)."""
    if id_column not in df.columns:
        raise InputError(
            f"{source}: no id column {id_column!r}; columns are {list(df.columns)} "
            f"(set coder.id_column)"
        )
    has_title = title_column in df.columns
    has_desc = description_column in df.columns
    if not has_title and not has_desc:
        raise InputError(
            f"{source}: needs a title column {title_column!r} and/or a description column "
            f"{description_column!r}; columns are {list(df.columns)}"
        )
    ids = [clean_text(v) for v in df[id_column].tolist()]
    titles = [clean_text(v) for v in df[title_column].tolist()] if has_title else [""] * len(df)
    descs = [clean_text(v) for v in df[description_column].tolist()] if has_desc else [""] * len(df)
    seen: Counter[str] = Counter()
    errors: list[str | None] = []
    records: list[JobRecord] = []
    for rid, title, desc in zip(ids, titles, descs, strict=True):
        records.append(JobRecord(title, desc))
        if not rid:
            errors.append("error:missing_id")
        elif seen[rid]:
            errors.append("error:duplicate_id")
        elif not title and not desc:
            errors.append("error:empty_text")
        else:
            errors.append(None)
        if rid:
            seen[rid] += 1
    return ids, records, errors


def _rows_for_batch(
    predictor: Any,
    ids: list[str],
    records: list[JobRecord],
    errors: list[str | None],
    offset: int,
    *,
    labels: Mapping[str, str],
    top_n: int,
    threshold: float,
    with_sets: bool,
) -> pd.DataFrame:
    ok = [i for i, e in enumerate(errors) if e is None]
    n = len(ids)
    codes = np.full((n, top_n), "", dtype=object)
    scores = np.full((n, top_n), np.nan)
    confidence = np.full(n, np.nan)
    status: list[str] = [e or "" for e in errors]
    set_sizes = np.zeros(n, dtype=int)
    set_codes = [""] * n
    if ok:
        try:
            proba = np.asarray(predictor.predict_proba([records[i] for i in ok]))
        except Exception as exc:  # noqa: BLE001 - the batch is flagged, the job goes on
            reason = f"error:predict_failed:{type(exc).__name__}"
            for i in ok:
                status[i] = reason
            ok = []
            proba = np.zeros((0, 0))
        classes = np.asarray(predictor.classes_)
        k = min(top_n, proba.shape[1]) if ok else 0
        if ok:
            order = np.argsort(-proba, axis=1)[:, :k]
            for row, i in enumerate(ok):
                idx = order[row]
                codes[i, :k] = classes[idx]
                scores[i, :k] = proba[row, idx]
                confidence[i] = float(proba[row, idx[0]])
                status[i] = "coded" if confidence[i] >= threshold else "review"
            if with_sets:
                sets = predictor.predict_sets([records[i] for i in ok])
                for row, i in enumerate(ok):
                    set_sizes[i] = len(sets[row])
                    set_codes[i] = ";".join(sets[row])
    data: dict[str, Any] = {"row": np.arange(offset, offset + n), "id": ids}
    for j in range(top_n):
        data[f"code_{j + 1}"] = codes[:, j]
    for j in range(top_n):
        data[f"label_{j + 1}"] = [labels.get(c, "") if c else "" for c in codes[:, j]]
    for j in range(top_n):
        data[f"score_{j + 1}"] = np.round(scores[:, j], 6)
    data["confidence"] = np.round(confidence, 6)
    data["status"] = status
    if with_sets:
        data["set_size"] = set_sizes
        data["set_codes"] = set_codes
    return pd.DataFrame(data, columns=output_columns(top_n, with_sets=with_sets))


def job_key(input_path: Path, *parts: Any) -> str:
    stat = input_path.stat()
    raw = json.dumps([str(input_path.resolve()), stat.st_size, stat.st_mtime_ns, *map(str, parts)])
    return hashlib.sha1(raw.encode()).hexdigest()[:16]


def code_file(
    input_path: str | Path,
    output_path: str | Path,
    *,
    predictor: Any,
    labels: Mapping[str, str],
    runs_dir: str | Path,
    predictor_id: str = "",
    top_n: int = 5,
    threshold: float = 0.5,
    id_column: str = "id",
    title_column: str = "title",
    description_column: str = "description",
    batch_size: int = 256,
    keep_checkpoints: bool = False,
    show_progress: bool = True,
    max_batches: int | None = None,
) -> CodingSummary:
    """Code every row of ``input_path`` into ``output_path``; resumes an interrupted run.

    ``max_batches`` stops after that many new batches (used to simulate an interrupted job);
    the output file is only written once every batch is done.
    """
    input_path = Path(input_path)
    output_path = Path(output_path)
    df = read_table(input_path, string_columns=(id_column,))
    ids, records, errors = prepare_records(
        df,
        id_column=id_column,
        title_column=title_column,
        description_column=description_column,
        source=str(input_path),
    )
    with_sets = callable(getattr(predictor, "predict_sets", None))
    key = job_key(
        input_path,
        predictor_id,
        top_n,
        threshold,
        id_column,
        title_column,
        description_column,
        batch_size,
        with_sets,
    )
    run_dir = Path(runs_dir) / f"code-{key}"
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "manifest.json").write_text(
        json.dumps(
            {
                "input": str(input_path.resolve()),
                "output": str(output_path.resolve()),
                "rows": len(df),
                "batch_size": batch_size,
                "predictor": predictor_id,
                "top_n": top_n,
                "threshold": threshold,
            },
            indent=2,
        )
    )
    n_batches = (len(df) + batch_size - 1) // batch_size
    resumed = 0
    done_new = 0
    bar = tqdm(total=len(df), desc="coding", unit="rec", disable=not show_progress)
    for b in range(n_batches):
        part = run_dir / f"part-{b:06d}.parquet"
        lo, hi = b * batch_size, min((b + 1) * batch_size, len(df))
        if part.exists():
            resumed += 1
            bar.update(hi - lo)
            continue
        if max_batches is not None and done_new >= max_batches:
            bar.close()
            return CodingSummary(str(input_path), "", len(df), {}, resumed, str(run_dir))
        batch = _rows_for_batch(
            predictor,
            ids[lo:hi],
            records[lo:hi],
            errors[lo:hi],
            lo,
            labels=labels,
            top_n=top_n,
            threshold=threshold,
            with_sets=with_sets,
        )
        write_table(batch, part)
        done_new += 1
        bar.update(hi - lo)
    bar.close()
    parts = [pd.read_parquet(run_dir / f"part-{b:06d}.parquet") for b in range(n_batches)]
    out = (
        pd.concat(parts, ignore_index=True)
        if parts
        else pd.DataFrame(columns=output_columns(top_n, with_sets=with_sets))
    )
    if len(out) != len(df) or (
        len(out) and not np.array_equal(out["row"].to_numpy(), np.arange(len(df)))
    ):
        raise RuntimeError(f"checkpoint in {run_dir} is inconsistent; delete it and run again")
    write_table(out, output_path)
    summary = CodingSummary(
        str(input_path),
        str(output_path),
        len(out),
        {str(s): int(c) for s, c in Counter(out["status"]).items()},
        resumed,
        str(run_dir),
    )
    (run_dir / "summary.json").write_text(json.dumps(summary.to_dict(), indent=2))
    if not keep_checkpoints:
        for b in range(n_batches):
            (run_dir / f"part-{b:06d}.parquet").unlink(missing_ok=True)
    return summary


def clear_run(run_dir: str | Path) -> None:
    shutil.rmtree(run_dir, ignore_errors=True)
