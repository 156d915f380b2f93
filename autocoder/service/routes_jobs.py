"""Batch job endpoints (/v1/jobs) and the readiness probe."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated, Any

import httpx
from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import FileResponse, JSONResponse

from autocoder.coding.loaded import index_version
from autocoder.config import IndexConfig
from autocoder.io import InputError
from autocoder.service.jobs import SUFFIXES, JobInfo
from autocoder.service.routes import Caller
from autocoder.service.state import NOT_READY, ServiceState, ensure_coder, state_of

router = APIRouter()


async def _save_upload(request: Request, target: Path) -> str:
    """Write the body (a multipart ``file`` field, or the raw table) to ``target``; returns
    the file name it came with ('' for a raw body)."""
    content_type = request.headers.get("content-type", "")
    with target.open("wb") as out:
        if content_type.startswith("multipart/form-data"):
            form = await request.form(max_files=1, max_fields=10)
            upload = form.get("file")
            if upload is None or isinstance(upload, str):
                raise InputError("multipart upload without a 'file' field")
            while chunk := await upload.read(1 << 20):
                out.write(chunk)
            return str(upload.filename or "")
        async for chunk in request.stream():
            out.write(chunk)
    return ""


def _format(name: str, given: str | None) -> str:
    fmt = given or Path(name).suffix.lstrip(".").lower()
    if fmt not in SUFFIXES:
        raise InputError(
            f"cannot tell the table format of upload {name or '(raw body)'!r}: name the file "
            f"*.csv, *.jsonl or *.parquet, or pass ?format= one of {sorted(SUFFIXES)}"
        )
    return fmt


def _view(state: ServiceState, info: JobInfo) -> dict[str, Any]:
    done = state.jobs.progress(info)
    return {
        "id": info.id, "status": info.status, "rows": info.rows, "rows_done": done,
        "progress": round(done / info.rows, 4) if info.rows else 1.0, "error": info.error,
        "created": info.created, "started": info.started, "finished": info.finished,
        "summary": info.summary,
    }  # fmt: skip


@router.post("/v1/jobs", status_code=202, tags=["jobs"])
async def submit_job(
    request: Request,
    caller: Caller,
    format: Annotated[str | None, Query(description="csv, jsonl or parquet")] = None,
) -> dict[str, Any]:
    """Upload a CSV, JSONL or Parquet table (multipart field ``file``, or the raw body with
    ``?format=``); it is coded by the checkpointed batch coder. Returns the job."""
    state = state_of(request)
    job_id, target = state.jobs.new_upload()
    try:
        name = await _save_upload(request, target)
        fmt = _format(name, format)
        info = await asyncio.to_thread(
            state.jobs.submit, job_id, fmt, caller, state.settings.coder.id_column
        )
    except InputError as exc:
        state.jobs.discard(job_id)
        raise HTTPException(422, str(exc)) from None
    except BaseException:
        state.jobs.discard(job_id)
        raise
    state.runner.wake.set()
    return _view(state, info)


def _job(state: ServiceState, job_id: str, caller: str) -> JobInfo:
    try:
        info = state.jobs.get(job_id)
    except KeyError:
        raise HTTPException(404, f"no job {job_id!r}") from None
    if info.owner != caller:
        raise HTTPException(404, f"no job {job_id!r}")
    return info


@router.get("/v1/jobs/{job_id}", tags=["jobs"])
async def job_status(job_id: str, request: Request, caller: Caller) -> dict[str, Any]:
    """Status (queued, running, done, failed) and progress of a job."""
    state = state_of(request)
    return _view(state, _job(state, job_id, caller))


@router.get("/v1/jobs/{job_id}/result", tags=["jobs"], response_model=None)
async def job_result(job_id: str, request: Request, caller: Caller) -> FileResponse:
    """The coded table (the input's format), once the job is done (else 409)."""
    state = state_of(request)
    info = _job(state, job_id, caller)
    if info.status != "done":
        raise HTTPException(409, f"job {job_id} is {info.status}, not done")
    path = state.jobs.output_path(info)
    return FileResponse(path, filename=f"{job_id}{path.suffix}")


def _chroma_check(cfg: IndexConfig) -> str:
    """'' when the configured Chroma server answers its heartbeat, else why not."""
    url = f"http://{cfg.host}:{cfg.port}/api/v2/heartbeat"
    try:
        httpx.get(url, timeout=cfg.connect_timeout).raise_for_status()
    except httpx.HTTPError as exc:
        return f"Chroma server {cfg.host}:{cfg.port} unreachable: {type(exc).__name__}"
    return ""


async def _checks(state: ServiceState) -> dict[str, str]:
    checks = {"model": "", "index": ""}
    cfg = state.settings.index
    if cfg.backend == "chroma" and cfg.host:
        checks["chroma_server"] = await asyncio.to_thread(_chroma_check, cfg)
    try:
        coder = await ensure_coder(state)
    except HTTPException as exc:
        checks["model"] = str(exc.detail)
        return checks
    if coder.retrieval is None:
        checks["index"] = ""  # a model alone reads no index
        return checks
    try:
        await asyncio.to_thread(index_version, coder.retrieval)
    except NOT_READY as exc:
        checks["index"] = str(exc)
    return checks


@router.get("/readyz", tags=["probes"], response_model=None)
async def readyz(request: Request) -> JSONResponse:
    """200 when the model and index are loaded and the configured Chroma server answers; then
    ``coder`` says what codes the records (model, taxonomy, index, how statuses are decided)."""
    state = state_of(request)
    checks = await _checks(state)
    ready = not any(checks.values())
    body: dict[str, Any] = {"ready": ready, "checks": {k: v or "ok" for k, v in checks.items()}}
    if ready:
        body["coder"] = state.slot.description
    return JSONResponse(body, status_code=200 if ready else 503)
