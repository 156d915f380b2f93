"""A worker's state: its coder slot, model thread, micro-batcher, job runner, keys and limits."""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pandas as pd
from fastapi import HTTPException, Request

from autocoder.coding.loaded import LoadedCoder
from autocoder.coding.trust import describe_thresholds, uncalibrated_note
from autocoder.config import Settings
from autocoder.index import IndexConnectionError, IndexNotBuiltError
from autocoder.service.engine import MicroBatcher, code_pass, describe_coder, load_service_coder
from autocoder.service.jobs import JobRunner, JobStore
from autocoder.service.keys import KeyStore
from autocoder.service.limits import RateLimiter
from autocoder.service.metrics import Metrics
from autocoder.workspace import LockedError, Workspace

log = logging.getLogger(__name__)

#: Why a coder cannot be loaded now (answered 503, the worker tries again on the next call).
NOT_READY = (IndexNotBuiltError, IndexConnectionError, LockedError, FileNotFoundError)


class CoderSlot:
    """The worker's coder, loaded on first ``load()`` (called on the model thread)."""

    def __init__(self, settings: Settings, ws: Workspace) -> None:
        self.settings = settings
        self.ws = ws
        self.coder: LoadedCoder | None = None
        #: ``describe_coder`` of the loaded coder ({} until it loads)
        self.description: dict[str, Any] = {}
        self.error = ""
        self.warned_descriptions = False

    def code(self, frames: list[pd.DataFrame]) -> list[pd.DataFrame]:
        """One model pass over the tables (``code_pass``); the worker logs the description
        warning once."""
        tables, self.warned_descriptions = code_pass(
            self.load(), frames, self.settings.coder, warned_descriptions=self.warned_descriptions
        )
        return tables

    def load(self) -> LoadedCoder:
        if self.coder is None:
            coder = load_service_coder(self.settings, self.ws)
            about = describe_coder(coder, self.settings.coder)
            log.info(
                "coding %s with %s (index %s); %s", about["taxonomy"], about["model"],
                about["index_version"], describe_thresholds(about["calibration"]),
            )  # fmt: skip
            if note := uncalibrated_note(coder, self.settings.coder):
                log.warning("%s", note)
            # the description before the coder: the event loop reads it once it sees a coder
            self.description = about
            self.coder = coder
            self.error = ""
        return self.coder


@dataclass
class ServiceState:
    settings: Settings
    ws: Workspace
    public: bool  # bound to a non-loopback address: keys are always required
    keys: KeyStore
    limiter: RateLimiter
    metrics: Metrics
    jobs: JobStore
    executor: ThreadPoolExecutor
    slot: CoderSlot
    batcher: MicroBatcher
    runner: JobRunner


async def ensure_coder(state: ServiceState) -> LoadedCoder:
    """The loaded coder, or 503 with the reason (index missing, unreachable or rebuilding)."""
    if state.slot.coder is not None:
        return state.slot.coder
    loop = asyncio.get_running_loop()
    try:
        return await loop.run_in_executor(state.executor, state.slot.load)
    except NOT_READY as exc:
        state.slot.error = str(exc)
        raise HTTPException(503, f"the coder is not ready: {exc}") from None


def state_of(request: Request) -> ServiceState:
    state: ServiceState = request.app.state.service
    return state


def build_state(settings: Settings, ws: Workspace, *, public: bool, workers: int) -> ServiceState:
    cfg = settings.serve
    metrics = Metrics()
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="autocoder-model")
    slot = CoderSlot(settings, ws)
    jobs = JobStore.of(ws)
    return ServiceState(
        settings=settings,
        ws=ws,
        public=public,
        keys=KeyStore.of(ws),
        limiter=RateLimiter(cfg.rate_per_second / workers, max(1, cfg.burst // workers)),
        metrics=metrics,
        jobs=jobs,
        executor=executor,
        slot=slot,
        batcher=MicroBatcher(
            slot.code,
            executor,
            window_s=cfg.batch_window_ms / 1000,
            max_records=cfg.max_batch_records,
            observe=metrics.batch.observe,
        ),
        runner=JobRunner(jobs, settings, lambda: load_service_coder(settings, ws)),
    )
