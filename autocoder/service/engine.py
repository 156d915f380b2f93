"""The coder a worker loads once, and the micro-batcher in front of it.

``load_service_coder`` is ``autocoder.coding.load_coder`` (what ``autocoder code`` uses) with a
warm-up; ``code_pass`` gives, for each in-memory table, the exact rows ``autocoder code``
writes (``autocoder.coding.batch``: each table validated on its own by a ``BatchReader``, all
of them predicted by one ``BatchCoder`` pass). Every model pass of a worker runs in its one
model thread (``MicroBatcher``): records of requests that arrive within
``serve.batch_window_ms`` of each other are predicted together. Each pass starts a fresh
``BatchCoder`` (no memo carried between passes) and the predictors score every record on its
own (the embedder pads to length-bucketed fixed shapes), so a record's result does not depend
on what else was in its pass.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from autocoder.coding.batch import BatchCoder, BatchReader, ranked
from autocoder.coding.loaded import PRETRAINED, LoadedCoder, load_coder, pretrained_dir
from autocoder.coding.trust import coder_assigner
from autocoder.config import CoderConfig, Settings
from autocoder.index import index_in_use
from autocoder.records import JobRecord
from autocoder.workspace import Workspace


def load_service_coder(settings: Settings, ws: Workspace) -> LoadedCoder:
    """The coder ``autocoder code`` would use with these settings (model, taxonomy, index),
    its encoder loaded now rather than on the first request."""
    with index_in_use(ws):
        coder = load_coder(settings, ws)
    # a text no cache holds, so the encoder really runs
    coder.predictor.predict_proba([JobRecord(f"warm-up {os.getpid()} {time.time_ns()}", "")])
    return coder


def describe_coder(coder: LoadedCoder, options: CoderConfig) -> dict[str, Any]:
    """What a worker codes with, for clients and the log: the model (``pretrained``, the
    model directory's name, or ``retrieval``; never a machine path), the taxonomy and the
    index version, and how statuses are decided (``Assigner.describe()``: the target
    precision and each level's fitted threshold, or the bare threshold and whether the
    confidence is calibrated), as a batch job's summary reports it."""
    if coder.model_dir is None:
        model = "retrieval"
    elif coder.model_dir.resolve() == pretrained_dir().resolve():
        model = PRETRAINED
    else:
        model = coder.model_dir.resolve().name
    taxonomy = coder.taxonomy
    return {
        "model": model,
        "taxonomy": f"{taxonomy.name} {taxonomy.version}" if taxonomy is not None else "",
        "index_version": coder.index_version,
        "calibration": coder_assigner(coder, options).describe(),
    }


def code_pass(
    coder: LoadedCoder,
    frames: list[pd.DataFrame],
    options: CoderConfig,
    *,
    warned_descriptions: bool = False,
) -> tuple[list[pd.DataFrame], bool]:
    """The output rows of ``autocoder code`` for each table (rows numbered from 0, ids checked
    within the table), all in one model pass; and whether the description warning has been
    given (by this pass or, ``warned_descriptions``, an earlier one: a worker logs it once,
    not once per pass)."""
    pending = [
        BatchReader(options, source=f"request {b + 1}").pending(frame.copy(), b, 0)
        for b, frame in enumerate(frames)
    ]
    batch = BatchCoder(coder, options, warned_descriptions=warned_descriptions)
    return batch.code(pending), batch.warned_descriptions


def search(coder: LoadedCoder, text: str, k: int) -> list[dict[str, Any]]:
    """The ``k`` codes the coder ranks highest for one free text, with titles and scores."""
    proba = np.asarray(coder.predictor.predict_proba([JobRecord(text, "")]))
    codes, scores = ranked(proba, coder.classes, k)
    return [
        {"code": str(c), "title": coder.labels.get(str(c), ""), "score": float(s)}
        for c, s in zip(codes[0], scores[0], strict=True)
    ]


@dataclass
class _Item:
    frame: pd.DataFrame
    future: asyncio.Future[pd.DataFrame]


@dataclass
class BatchStats:
    passes: int = 0
    records: int = 0


class MicroBatcher:
    """Collects the tables of concurrent requests for up to ``window_s`` (or ``max_records``)
    and codes them with ``run`` in one call on the model thread ``executor``."""

    def __init__(
        self,
        run: Callable[[list[pd.DataFrame]], list[pd.DataFrame]],
        executor: ThreadPoolExecutor,
        *,
        window_s: float,
        max_records: int,
        observe: Callable[[int], None] | None = None,
    ) -> None:
        self.run = run
        self.executor = executor
        self.window_s = window_s
        self.max_records = max_records
        self.observe = observe
        self.stats = BatchStats()
        self._queue: asyncio.Queue[_Item] | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._queue = asyncio.Queue()
        self._task = asyncio.create_task(self._loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def submit(self, frame: pd.DataFrame) -> pd.DataFrame:
        assert self._queue is not None, "MicroBatcher.start() was not awaited"
        item = _Item(frame, asyncio.get_running_loop().create_future())
        await self._queue.put(item)
        return await item.future

    async def _collect(self, queue: asyncio.Queue[_Item]) -> list[_Item]:
        loop = asyncio.get_running_loop()
        batch = [await queue.get()]
        n, deadline = len(batch[0].frame), loop.time() + self.window_s
        while n < self.max_records:
            left = deadline - loop.time()
            try:
                item = await asyncio.wait_for(queue.get(), left) if left > 0 else queue.get_nowait()
            except (TimeoutError, asyncio.QueueEmpty):
                break
            batch.append(item)
            n += len(item.frame)
        return batch

    async def _loop(self) -> None:
        assert self._queue is not None
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._collect(self._queue)
            frames = [b.frame for b in batch]
            try:
                tables = await loop.run_in_executor(self.executor, self.run, frames)
            except Exception as exc:  # noqa: BLE001 - every waiting request gets the error
                for b in batch:
                    if not b.future.done():
                        b.future.set_exception(exc)
                continue
            n = sum(len(f) for f in frames)
            self.stats.passes += 1
            self.stats.records += n
            if self.observe is not None:
                self.observe(n)
            for b, table in zip(batch, tables, strict=True):
                if not b.future.done():
                    b.future.set_result(table)
