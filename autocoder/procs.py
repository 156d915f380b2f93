"""Local background servers (llama.cpp, Label Studio): start detached, record, wait, stop.

A server runs in a session of its own with its output in a log file; its pid and the kernel's
start time of that pid are recorded in a JSON state file, so a later command finds it again and
never mistakes a recycled pid for it. Nothing here depends on the current directory.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


class ServiceError(RuntimeError):
    """A local server could not be started, found or stopped."""


def proc_start(pid: int) -> str:
    """The kernel's start time of ``pid`` (``""`` where /proc is not available)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def reap(pid: int) -> bool:
    """Collect ``pid``'s exit status when it is our own finished child; True when it was."""
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:  # not our child, or already collected
        return False
    return done == pid


def proc_state(pid: int) -> str:
    """The kernel's one-letter state of ``pid`` (``""`` when unknown or gone)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return ""


def alive(pid: int) -> bool:
    """``pid`` runs and is not a zombie. A zombie that is our own child is reaped, so once this
    returns False for our child the pid no longer exists."""
    reap(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    if proc_state(pid) in ("Z", "X"):
        reap(pid)  # it finished between the first reap and the state read
        return False
    return True


def group_members(pgid: int) -> list[int]:
    """Pids of the processes in process group ``pgid`` that still run (zombies left out: they
    hold nothing and wait for their parent); reaps those that are our own children."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid:
            pid = int(stat.parent.name)
            if fields[0] not in ("Z", "X"):
                members.append(pid)
            else:
                reap(pid)
    return members


def group_gone(pgid: int) -> bool:
    """No process of group ``pgid`` runs any more (and our own finished children are reaped)."""
    reap(pgid)
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    if not Path("/proc/self/stat").exists():
        return not alive(pgid)
    return not group_members(pgid)


def still_running(pid: int, started: str) -> bool:
    """The recorded process still runs and is the one recorded (same start time)."""
    return alive(pid) and (not started or proc_start(pid) == started)


def http_ok(url: str, *, timeout: float = 2.0) -> bool:
    """True when ``GET url`` answers 200."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError, ValueError):
        return False


def port_busy(host: str, port: int) -> bool:
    """Something accepts TCP connections on ``host:port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(1.0)
        return s.connect_ex((host, port)) == 0


def log_tail(path: str | Path, n: int = 2000) -> str:
    try:
        return Path(path).read_text(errors="replace")[-n:]
    except OSError:
        return "(no log)"


def read_state(path: Path, cls: Callable[..., T]) -> T | None:
    """The record in ``path`` (a JSON object of ``cls``'s fields); None when there is none."""
    if not path.exists():
        return None
    try:
        return cls(**json.loads(path.read_text()))
    except (ValueError, TypeError) as exc:
        raise ServiceError(f"{path} is corrupt ({exc}); delete it") from exc


def write_state(path: Path, record: Any) -> None:
    """Write a dataclass record as JSON."""
    path.write_text(json.dumps(asdict(record), indent=2))


def spawn(
    cmd: Sequence[str],
    *,
    log_path: Path,
    cwd: Path,
    env: Mapping[str, str] | None = None,
) -> tuple[int, str]:
    """Start ``cmd`` detached (own session, stdin closed, output appended to ``log_path``);
    returns its pid and start time."""
    with log_path.open("ab") as log_fh:
        log_fh.write(
            f"\n--- start {time.strftime('%Y-%m-%d %H:%M:%S')}: {' '.join(cmd)}\n".encode()
        )
        log_fh.flush()
        proc = subprocess.Popen(
            list(cmd),
            stdin=subprocess.DEVNULL,
            stdout=log_fh,
            stderr=subprocess.STDOUT,
            env=dict(env) if env is not None else None,
            cwd=str(cwd),
            start_new_session=True,
        )
    return proc.pid, proc_start(proc.pid)


def wait_ready(
    pid: int,
    ready: Callable[[], bool],
    *,
    name: str,
    log_path: Path,
    timeout: float,
    poll: float = 0.5,
) -> None:
    """Poll ``ready()`` until it is true; ``ServiceError`` with the end of the log when the
    process exits first or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive(pid):
            raise ServiceError(
                f"{name} (pid {pid}) exited during start-up; end of {log_path}:\n"
                + log_tail(log_path)
            )
        if ready():
            return
        time.sleep(poll)
    raise ServiceError(
        f"{name} (pid {pid}) not ready after {timeout:.0f}s; end of {log_path}:\n"
        + log_tail(log_path)
    )


def terminate(pid: int, *, timeout: float, name: str = "server") -> None:
    """SIGTERM, then SIGKILL, the process group ``pid`` leads (it was started by :func:`spawn`);
    returns once no process of the group runs and the leader, when it is our child, is reaped."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            reap(pid)
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if group_gone(pid):
                return
            time.sleep(0.1)
    if not group_gone(pid):
        raise ServiceError(f"{name} pid {pid} (or a process of its group) did not stop")
