"""The FastAPI app: ``create_app(settings, ws)`` and the factory uvicorn workers call.

Each worker process builds one app: its coder (model + index) is loaded once, at start-up, on
the worker's model thread, which then runs every model pass (micro-batches, search); batch jobs
run on the worker's job thread with a coder of their own.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse

from autocoder.config import ConfigError, Settings, load_settings
from autocoder.service import routes, routes_jobs
from autocoder.service.middleware import BodyTooLarge, ServiceMiddleware
from autocoder.service.state import build_state, ensure_coder
from autocoder.workspace import Workspace

log = logging.getLogger(__name__)

#: Environment variable through which ``serve`` hands the settings to its worker processes.
ENV = "AUTOCODER_SERVE"


def create_app(
    settings: Settings, ws: Workspace, *, public: bool = False, workers: int = 1
) -> FastAPI:
    """The service over ``settings`` and ``ws`` (``public``: keys required even if none exist)."""
    state = build_state(settings, ws, public=public, workers=workers)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await state.batcher.start()
        try:
            await ensure_coder(state)
        except HTTPException as exc:
            log.warning("%s; /readyz stays failing until it loads", exc.detail)
        state.runner.start()
        yield
        state.runner.stop()
        await state.batcher.stop()
        state.executor.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(
        title="autocoder",
        version="1",
        summary="Occupation coding (O*NET-SOC, ISCO-08/ESCO) with calibrated confidence.",
        lifespan=lifespan,
    )
    app.state.service = state
    app.include_router(routes.router)
    app.include_router(routes_jobs.router)
    app.add_middleware(ServiceMiddleware, cfg=settings.serve, metrics=state.metrics)

    async def too_large(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=413)

    app.add_exception_handler(BodyTooLarge, too_large)
    return app


def serve_args(config: str | None, overrides: list[str], *, public: bool, workers: int) -> str:
    return json.dumps(
        {"config": config, "overrides": overrides, "public": public, "workers": workers}
    )


def app_from_env() -> FastAPI:
    """uvicorn's factory (``--factory``): the settings ``serve`` put in ``$AUTOCODER_SERVE``."""
    args: dict[str, Any] = json.loads(os.environ.get(ENV) or "{}")
    # each worker process logs on its own (spawned workers inherit no logging set-up)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    try:
        settings = load_settings(args.get("config"), args.get("overrides") or [])
    except ConfigError as exc:
        raise SystemExit(f"error: {exc}") from None
    ws = Workspace.resolve(settings.workspace.home)
    return create_app(
        settings, ws, public=bool(args.get("public")), workers=int(args.get("workers") or 1)
    )
