"""The workspace: where taxonomy stores, the index, models, caches and runs live.

Resolved from config ``workspace.home``, else ``$AUTOCODER_HOME``, else the per-user data
directory. Environment variables are read when a Workspace is created, never at import time.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path

import platformdirs


class WorkspaceError(ValueError):
    """The workspace is not a writable directory (a file, a read-only folder...)."""


class LockedError(RuntimeError):
    """Another process holds the lock (the index is being rebuilt, or the output is in use)."""


def _holder(fd: int) -> str:
    try:
        pid = os.pread(fd, 32, 0).decode().strip()
    except OSError:
        pid = ""
    return f" (process {pid})" if pid.isdigit() else ""


@contextmanager
def file_lock(path: str | Path, *, exclusive: bool, busy: str) -> Iterator[None]:
    """Hold an ``fcntl.flock`` on ``path`` (shared or exclusive) for the ``with`` block.

    Never waits: when another process holds a conflicting lock, raises ``LockedError`` with
    ``busy`` (and the holder's pid when it holds the lock exclusively). The lock goes with the
    process, so a killed process never leaves a stale lock.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LockedError(f"{busy}{_holder(fd)}") from None
        if exclusive:
            os.ftruncate(fd, 0)
            os.pwrite(fd, str(os.getpid()).encode(), 0)
        try:
            yield
        finally:
            if exclusive:
                os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def output_lock_path(output: str | Path) -> Path:
    """The lock file of an output: ``.<name>.lock`` next to the output itself (symlinks
    resolved), so every job writing that file takes the same lock, whatever its workspace."""
    real = Path(output).expanduser().resolve()
    return real.with_name(f".{real.name}.lock")


def output_lock(output: str | Path) -> AbstractContextManager[None]:
    """Held (exclusively) while a job writes ``output``: a second job fails at once."""
    return file_lock(
        output_lock_path(output), exclusive=True, busy=f"another job is writing {output}"
    )


@dataclass(frozen=True)
class Workspace:
    root: Path

    @classmethod
    def resolve(cls, home: str | Path | None = None) -> Workspace:
        """The workspace at ``home`` (else ``$AUTOCODER_HOME``, else the per-user data dir),
        created if missing; ``WorkspaceError`` when it is not a writable directory."""
        if home is None:
            home = os.environ.get("AUTOCODER_HOME") or platformdirs.user_data_dir("autocoder")
        root = Path(home).expanduser().resolve()
        if root.exists() and not root.is_dir():
            raise WorkspaceError(
                f"workspace {root} is not a directory (check workspace.home / $AUTOCODER_HOME)"
            )
        probe = root / f".write-probe-{os.getpid()}"
        try:
            root.mkdir(parents=True, exist_ok=True)
            probe.touch()
            probe.unlink()
        except OSError as exc:
            raise WorkspaceError(
                f"workspace {root} is not writable: {exc.strerror or exc} "
                "(check workspace.home / $AUTOCODER_HOME)"
            ) from None
        return cls(root)

    def _dir(self, *parts: str) -> Path:
        path = self.root.joinpath(*parts)
        path.mkdir(parents=True, exist_ok=True)
        return path

    @property
    def taxonomies(self) -> Path:
        return self._dir("taxonomies")

    @property
    def index_lock(self) -> Path:
        """Held exclusively while the index is rebuilt, shared while a job reads it."""
        return self._dir("index") / "index.lock"

    @property
    def index_versions(self) -> Path:
        """Build counter per collection: ``{collection: version}``."""
        return self._dir("index") / "versions.json"

    @property
    def chroma(self) -> Path:
        return self._dir("index", "chroma")

    @property
    def examples(self) -> Path:
        """Coded examples, one folder per taxonomy (``autocoder examples add``)."""
        return self._dir("examples")

    @property
    def calibration(self) -> Path:
        """Calibrations of coders that have no model directory (``calibrate --model
        retrieval``), one folder per taxonomy."""
        return self._dir("calibration")

    @property
    def embedding_cache(self) -> Path:
        return self._dir("cache", "embeddings")

    @property
    def llm_cache(self) -> Path:
        return self._dir("cache", "llm")

    @property
    def models(self) -> Path:
        return self._dir("models")

    @property
    def datasets(self) -> Path:
        return self._dir("datasets")

    @property
    def runs(self) -> Path:
        return self._dir("runs")

    @property
    def downloads(self) -> Path:
        return self._dir("downloads")
