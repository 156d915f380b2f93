"""Batch jobs: an uploaded file coded by the checkpointed batch coder (``autocoder.coding.batch``).

Each job is a folder under ``<workspace>/service/jobs/<id>/``: ``input.<ext>``, ``job.json``
(status, rows, owner), the coder's run directory (``runs/``, its checkpoints) and, when done,
``output.<ext>``. Every worker runs a job thread that starts queued jobs and resumes interrupted
ones; a job is claimed with a lock on its folder, held while it runs and released by the
kernel when the process dies, so a server killed mid-job and started again finishes it from
its checkpoints, with one output row per input row.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from autocoder.coding.batch import FATAL_ERRORS, code_file
from autocoder.coding.loaded import LoadedCoder
from autocoder.config import Settings
from autocoder.io import InputError, iter_table, table_format
from autocoder.workspace import LockedError, Workspace, file_lock

log = logging.getLogger(__name__)

#: Upload formats by file suffix (the output is written in the input's format).
SUFFIXES = {"csv": ".csv", "jsonl": ".jsonl", "parquet": ".parquet"}


@dataclass
class JobInfo:
    id: str
    status: str  # queued | running | done | failed
    format: str
    rows: int
    owner: str
    created: float
    started: float | None = None
    finished: float | None = None
    error: str = ""
    summary: dict[str, Any] | None = None


class JobStore:
    """The job folders of a workspace."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    @classmethod
    def of(cls, ws: Workspace) -> JobStore:
        return cls(ws.root / "service" / "jobs")

    def folder(self, job_id: str) -> Path:
        if not job_id.isalnum():
            raise KeyError(job_id)
        return self.root / job_id

    def input_path(self, info: JobInfo) -> Path:
        return self.folder(info.id) / f"input{SUFFIXES[info.format]}"

    def output_path(self, info: JobInfo) -> Path:
        return self.folder(info.id) / f"output{SUFFIXES[info.format]}"

    def get(self, job_id: str) -> JobInfo:
        path = self.folder(job_id) / "job.json"
        if not path.is_file():
            raise KeyError(job_id)
        return JobInfo(**json.loads(path.read_text()))

    def save(self, info: JobInfo) -> None:
        path = self.folder(info.id) / "job.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(info), indent=2))
        os.replace(tmp, path)

    def new_upload(self) -> tuple[str, Path]:
        """A fresh job id and the path its upload is written to."""
        job_id = uuid.uuid4().hex
        folder = self.folder(job_id)
        folder.mkdir(parents=True)
        return job_id, folder / "upload.part"

    def discard(self, job_id: str) -> None:
        shutil.rmtree(self.folder(job_id), ignore_errors=True)

    def submit(self, job_id: str, fmt: str, owner: str, id_column: str) -> JobInfo:
        """Check the uploaded table (readable, its rows counted) and queue the job."""
        if fmt not in SUFFIXES:
            raise InputError(f"unknown format {fmt!r}; use one of {sorted(SUFFIXES)}")
        upload = self.folder(job_id) / "upload.part"
        info = JobInfo(job_id, "queued", fmt, 0, owner, time.time())
        target = self.input_path(info)
        os.replace(upload, target)
        table_format(target)
        chunks = iter_table(target, chunk_rows=65536, string_columns=(id_column,))
        info.rows = sum(len(c) for c in chunks)
        self.save(info)
        return info

    def unfinished(self) -> list[JobInfo]:
        if not self.root.is_dir():
            return []
        found = []
        for path in sorted(self.root.glob("*/job.json"), key=lambda p: p.stat().st_mtime):
            info = JobInfo(**json.loads(path.read_text()))
            if info.status in ("queued", "running"):
                found.append(info)
        return found

    def progress(self, info: JobInfo) -> int:
        """Rows coded so far: all of them once done, else the checkpointed batches' rows."""
        if info.status == "done":
            return info.rows
        done = 0
        for manifest in (self.folder(info.id) / "runs").glob("code-*/manifest.json"):
            size = int(json.loads(manifest.read_text())["batch_size"])
            done = max(done, size * len(list(manifest.parent.glob("part-*.arrow"))))
        return min(done, info.rows)


class JobRunner:
    """A worker's job thread: claims unfinished jobs one at a time and codes them with its
    own coder (``load``, called on first use, so the model thread's caches stay its own)."""

    def __init__(
        self,
        store: JobStore,
        settings: Settings,
        load: Callable[[], LoadedCoder],
    ) -> None:
        self.store = store
        self.cfg = settings.serve
        self.options = settings.coder
        self.load = load
        self.coder: LoadedCoder | None = None
        self.wake = threading.Event()
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.loop, name="autocoder-jobs", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stopping.set()
        self.wake.set()

    def loop(self) -> None:
        while not self.stopping.is_set():
            for info in self.store.unfinished():
                if self.stopping.is_set():
                    return
                self.try_run(info.id)
            self.wake.wait(self.cfg.job_poll_seconds)
            self.wake.clear()

    def try_run(self, job_id: str) -> None:
        """Run the job unless another worker holds it; a fault of the index leaves it queued
        for the next round, a bad input fails it with the reason."""
        try:
            with file_lock(self.store.folder(job_id) / "job.lock", exclusive=True, busy="taken"):
                self.run(self.store.get(job_id))
        except LockedError:
            return
        except FATAL_ERRORS as exc:
            log.warning("job %s waits: %s", job_id, exc)
        except Exception as exc:  # noqa: BLE001 - the job fails with the reason, the thread goes on
            info = self.store.get(job_id)
            info.status, info.error, info.finished = "failed", str(exc), time.time()
            self.store.save(info)
            log.error("job %s failed: %s", job_id, exc)

    def run(self, info: JobInfo) -> None:
        if info.status not in ("queued", "running"):
            return
        if self.coder is None:
            self.coder = self.load()
        coder = self.coder
        info.status, info.started = "running", info.started or time.time()
        self.store.save(info)
        summary = code_file(
            self.store.input_path(info),
            self.store.output_path(info),
            coder=coder,
            runs_dir=self.store.folder(info.id) / "runs",
            options=self.options,
            show_progress=False,
            window_rows=self.cfg.job_window_rows,
        )
        info.status, info.finished = "done", time.time()
        info.summary = {
            k: v for k, v in summary.to_dict().items() if k not in ("input", "output", "run_dir")
        }
        self.store.save(info)
