"""The endpoints: /v1/code, /v1/jobs, /v1/codes, /v1/search, /v1/review, probes, metrics."""

from __future__ import annotations

import asyncio
import json
import math
import uuid
from pathlib import Path
from typing import Annotated, Any

import pandas as pd
from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel, ConfigDict, Field

from autocoder.config import CoderConfig
from autocoder.io import ROW_ERROR_COLUMN, InputError
from autocoder.service.engine import search
from autocoder.service.state import ServiceState, ensure_coder, state_of

router = APIRouter()

#: JSON types a record's id, title or description may hold.
SCALARS = (str, int, float, type(None))


def authorize(request: Request) -> str:
    """The caller's key name; 401 without a valid key when keys are configured (always when
    bound beyond loopback), 429 with ``Retry-After`` over the key's rate."""
    state = state_of(request)
    if state.keys.any_active() or state.public:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        name = state.keys.check(token.strip()) if scheme.lower() == "bearer" else None
        if name is None:
            raise HTTPException(
                401, "missing, unknown or revoked API key (Authorization: Bearer KEY)",
                headers={"WWW-Authenticate": "Bearer"},
            )  # fmt: skip
    else:
        name = "open"
    request.state.key_name = name
    wait = state.limiter.take(name)
    if wait > 0:
        raise HTTPException(
            429, f"rate limit of key {name!r} reached; retry in {wait:.2f} s",
            headers={"Retry-After": str(max(1, math.ceil(wait)))},
        )  # fmt: skip
    return name


Caller = Annotated[str, Depends(authorize)]


class CodeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    records: list[Any] = Field(
        description="Objects with the configured id, title and description fields "
        "(default id, title, description); one result per record, in order."
    )


def _record_error(i: int, record: Any, fields: tuple[str, ...]) -> str:
    if not isinstance(record, dict):
        return f"error:not_an_object: record {i + 1} is a JSON {type(record).__name__}"
    for name in fields:
        value = record.get(name)
        if not isinstance(value, SCALARS) or isinstance(value, bool):
            return f"error:invalid_field: record {i + 1}: {name!r} holds a {type(value).__name__}"
    return ""


def records_frame(records: list[Any], opts: CoderConfig) -> pd.DataFrame:
    """The records as the table ``autocoder code`` would read; a record that is not an object
    of scalars carries its error in ``ROW_ERROR_COLUMN`` (its row's status)."""
    fields = (opts.id_column, opts.title_column, opts.description_column)
    rows = []
    for i, record in enumerate(records):
        error = _record_error(i, record, fields)
        values = {} if error else {f: record.get(f) for f in fields}
        rows.append({f: "" if values.get(f) is None else str(values[f]) for f in fields})
        rows[-1][ROW_ERROR_COLUMN] = error
    return pd.DataFrame(rows, columns=[*fields, ROW_ERROR_COLUMN])


def table_rows(table: pd.DataFrame) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = json.loads(table.to_json(orient="records", double_precision=15))
    return rows


@router.post("/v1/code", tags=["coding"])
async def code(body: CodeRequest, request: Request, caller: Caller) -> dict[str, Any]:
    """Code up to ``serve.max_records`` records: one result per record, with the columns and
    statuses of ``autocoder code`` (coded, partial, review, error:<reason>), and how the
    statuses were decided (``calibration``, as a batch job's summary gives it)."""
    state = state_of(request)
    limit = state.settings.serve.max_records
    if len(body.records) > limit:
        raise HTTPException(413, f"{len(body.records)} records; at most {limit} per request")
    coder = await ensure_coder(state)
    answer = {
        "index_version": coder.index_version,
        "calibration": state.slot.description["calibration"],
    }
    if not body.records:
        return {**answer, "results": []}
    table = await state.batcher.submit(records_frame(body.records, state.settings.coder))
    state.metrics.observe_statuses(table["status"].tolist())
    return {**answer, "results": table_rows(table)}


@router.get("/v1/codes/{code}", tags=["taxonomy"])
async def get_code(code: str, request: Request, caller: Caller) -> dict[str, Any]:
    """A code of the served taxonomy: title, description, level and parent."""
    taxonomy = (await ensure_coder(state_of(request))).taxonomy
    if taxonomy is None:
        raise HTTPException(503, "the loaded coder has no taxonomy")
    if code not in taxonomy:
        raise HTTPException(404, f"no code {code!r} in {taxonomy.name} {taxonomy.version}")
    c = taxonomy.get(code)
    return {
        "code": c.code, "title": c.title, "description": c.description, "level": c.level,
        "level_name": c.level_name, "parent": c.parent, "uri": c.uri,
        "taxonomy": taxonomy.name, "version": taxonomy.version,
    }  # fmt: skip


@router.get("/v1/search", tags=["taxonomy"])
async def search_codes(
    request: Request,
    caller: Caller,
    q: Annotated[str, Query(min_length=1, max_length=1000, description="Free text.")],
    k: Annotated[int, Query(ge=1, le=100)] = 10,
) -> dict[str, Any]:
    """The ``k`` codes the coder ranks highest for ``q`` (run on the model thread)."""
    state = state_of(request)
    coder = await ensure_coder(state)
    loop = asyncio.get_running_loop()
    results = await loop.run_in_executor(state.executor, search, coder, q, k)
    return {"index_version": coder.index_version, "results": results}


class ReviewRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    project: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.-]+$")
    records: list[dict[str, Any]] = Field(min_length=1)
    strategy: str = "least_confidence"
    limit: int | None = Field(None, ge=0, description="Records to queue; None = all given.")


def _push(state: ServiceState, body: ReviewRequest, path: Path) -> dict[str, Any]:
    from dataclasses import asdict

    from autocoder.review.push import push

    pd.DataFrame(body.records).to_json(path, orient="records", lines=True)
    try:
        result = push(
            state.settings, state.ws, path, project=body.project,
            model_dir=state.settings.coder.model, strategy=body.strategy,
            limit=len(body.records) if body.limit is None else body.limit,
        )  # fmt: skip
    finally:
        path.unlink(missing_ok=True)
    return asdict(result)


@router.post("/v1/review", tags=["review"])
async def review(body: ReviewRequest, request: Request, caller: Caller) -> dict[str, Any]:
    """Queue records for the review project, as ``autocoder review push`` does: 503 when
    Label Studio is down (the tasks then wait locally as pending)."""
    from autocoder.review.labelstudio import ReviewError, ReviewUnavailable

    state = state_of(request)
    folder = state.ws.root / "service" / "review"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"push-{uuid.uuid4().hex}.jsonl"
    try:
        return await asyncio.to_thread(_push, state, body, path)
    except ReviewUnavailable as exc:
        raise HTTPException(503, str(exc)) from None
    except (InputError, ValueError, ReviewError) as exc:
        raise HTTPException(422, str(exc)) from None


@router.get("/healthz", tags=["probes"])
async def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get("/metrics", tags=["probes"])
async def metrics(request: Request) -> Response:
    """Prometheus metrics of this worker."""
    return Response(state_of(request).metrics.render(), media_type=CONTENT_TYPE_LATEST)
