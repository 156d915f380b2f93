"""Start, stop and check a local Label Studio for the review queue.

Label Studio (``label-studio==1.23.2``) runs from its own virtual environment (it conflicts with
the main one; ``scripts/setup-labelstudio.sh`` creates ``<repo>/.venv-labelstudio``), headless,
on loopback only. Its state lives in ``<workspace>/review/server/``: ``server.json`` (pid, URL),
``server.log``, ``data/`` (the Label Studio database) and two files readable by the owner only,
``token`` (the API token, generated once with ``secrets``), ``password`` (the admin's web
login) and ``secret_key`` (Django's session key). The token is never printed or logged: ``status`` reports only that it exists.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from autocoder.config import ReviewConfig
from autocoder.workspace import Workspace

STATE_FILE = "server.json"
LOG_FILE = "server.log"
TOKEN_FILE = "token"
PASSWORD_FILE = "password"
SECRET_KEY_FILE = "secret_key"


class ServerError(RuntimeError):
    """The local Label Studio could not be started, found or stopped."""


@dataclass
class ServerInfo:
    pid: int
    started: str  # kernel start time of the process: guards against pid reuse
    host: str
    port: int
    username: str
    log_path: str

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


def repo_root() -> Path:
    return Path(__file__).resolve().parents[2]


def server_dir(ws: Workspace) -> Path:
    path = ws.root / "review" / "server"
    path.mkdir(parents=True, exist_ok=True)
    return path


def server_python(cfg: ReviewConfig) -> Path:
    """``review.server_python``, else ``$AUTOCODER_LABELSTUDIO_PYTHON``, else the repo's venv."""
    raw = cfg.server_python or os.environ.get("AUTOCODER_LABELSTUDIO_PYTHON")
    path = Path(raw) if raw else repo_root() / ".venv-labelstudio" / "bin" / "python"
    if not path.exists():
        raise ServerError(
            f"Label Studio's Python {path} not found: run `bash scripts/setup-labelstudio.sh` "
            "or set review.server_python / $AUTOCODER_LABELSTUDIO_PYTHON"
        )
    return path


def _secret(path: Path, nbytes: int) -> str:
    """Read the secret in ``path``, creating it (mode 0600) on first use."""
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_hex(nbytes))
    os.chmod(path, 0o600)
    return path.read_text().strip()


def _proc_start(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def _alive(pid: int) -> bool:
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)  # reaps our own finished child
        if done == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        return state not in ("Z", "X")
    except OSError:
        return True


def _ours(info: ServerInfo) -> bool:
    return _alive(info.pid) and (not info.started or _proc_start(info.pid) == info.started)


def _read_state(state_dir: Path) -> ServerInfo | None:
    path = state_dir / STATE_FILE
    if not path.exists():
        return None
    try:
        return ServerInfo(**json.loads(path.read_text()))
    except (ValueError, TypeError) as exc:
        raise ServerError(f"{path} is corrupt ({exc}); delete it") from exc


def healthy(url: str, *, timeout: float = 2.0) -> bool:
    """True when ``GET {url}/health`` answers 200."""
    try:
        with urllib.request.urlopen(f"{url.rstrip('/')}/health", timeout=timeout) as resp:
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError, ValueError):
        return False


def _port_busy(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(1.0)
        return s.connect_ex((host, port)) == 0


def local_connection(ws: Workspace) -> tuple[str, str] | None:
    """(URL, token) of the local server recorded in the workspace, or None."""
    state_dir = ws.root / "review" / "server"
    info = _read_state(state_dir) if state_dir.is_dir() else None
    token_path = state_dir / TOKEN_FILE
    if info is None or not token_path.exists():
        return None
    return info.url, token_path.read_text().strip()


def _log_tail(path: Path, n: int = 2000) -> str:
    try:
        return path.read_text(errors="replace")[-n:]
    except OSError:
        return "(no log)"


def _environment(state_dir: Path, cfg: ReviewConfig) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LABEL_STUDIO_")}
    env.update(
        LABEL_STUDIO_BASE_DATA_DIR=str(state_dir / "data"),
        LABEL_STUDIO_USERNAME=cfg.username,
        LABEL_STUDIO_PASSWORD=_secret(state_dir / PASSWORD_FILE, 12),
        LABEL_STUDIO_USER_TOKEN=_secret(state_dir / TOKEN_FILE, 20),
        SECRET_KEY=_secret(state_dir / SECRET_KEY_FILE, 32),  # web logins survive a restart
        LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN="true",
        LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK="true",
        SENTRY_DSN="",
        FRONTEND_SENTRY_DSN="",
        LATEST_VERSION_CHECK="false",
        COLLECT_ANALYTICS="false",
        DJANGO_DB="sqlite",
    )
    return env


def server_status(ws: Workspace) -> dict[str, Any]:
    """Running/ready state of the workspace's server (no secrets in the answer)."""
    state_dir = server_dir(ws)
    info = _read_state(state_dir)
    out: dict[str, Any] = {
        "running": False,
        "ready": False,
        "state_dir": str(state_dir),
        "token_file": (state_dir / TOKEN_FILE).exists(),
    }
    if info is None:
        return out
    running = _ours(info)
    return {
        **out,
        **asdict(info),
        "url": info.url,
        "running": running,
        "ready": running and healthy(info.url),
    }


def start_server(ws: Workspace, cfg: ReviewConfig) -> tuple[ServerInfo, bool]:
    """Start Label Studio (or find the one already running); returns (info, newly started)."""
    state_dir = server_dir(ws)
    current = _read_state(state_dir)
    if current is not None and _ours(current):
        if (current.host, current.port) != (cfg.host, cfg.port):
            raise ServerError(f"this workspace's Label Studio already runs at {current.url}")
        _wait_ready(current, timeout=cfg.start_timeout)
        return current, False
    (state_dir / STATE_FILE).unlink(missing_ok=True)
    if _port_busy(cfg.host, cfg.port):
        raise ServerError(
            f"port {cfg.port} on {cfg.host} is already in use by another program; "
            "choose another with --port (review.port)"
        )
    python = server_python(cfg)
    cmd = [
        str(python), "-m", "label_studio.server", "start", "--no-browser",
        "--internal-host", cfg.host, "--port", str(cfg.port),
        "--host", f"http://{cfg.host}:{cfg.port}",
    ]  # fmt: skip
    log_path = state_dir / LOG_FILE
    with log_path.open("ab") as log:
        log.write(f"\n--- start {time.strftime('%Y-%m-%d %H:%M:%S')}\n".encode())
        log.flush()
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=_environment(state_dir, cfg),
            cwd=str(state_dir),
            start_new_session=True,
        )
    info = ServerInfo(
        proc.pid, _proc_start(proc.pid), cfg.host, cfg.port, cfg.username, str(log_path)
    )
    (state_dir / STATE_FILE).write_text(json.dumps(asdict(info), indent=2))
    try:
        _wait_ready(info, timeout=cfg.start_timeout)
    except ServerError:
        _terminate(info.pid, timeout=10)
        (state_dir / STATE_FILE).unlink(missing_ok=True)
        raise
    return info, True


def _wait_ready(info: ServerInfo, *, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(info.pid):
            raise ServerError(
                f"Label Studio (pid {info.pid}) exited during start-up; end of {info.log_path}:\n"
                + _log_tail(Path(info.log_path))
            )
        if healthy(info.url):
            return
        time.sleep(1.0)
    raise ServerError(
        f"Label Studio (pid {info.pid}) not ready at {info.url} after {timeout:.0f}s; end of "
        f"{info.log_path}:\n" + _log_tail(Path(info.log_path))
    )


def _terminate(pid: int, *, timeout: float) -> None:
    """Stop the server's process group (it was started in a session of its own)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not _alive(pid):
                return
            time.sleep(0.2)
    if _alive(pid):
        raise ServerError(f"Label Studio pid {pid} did not stop")


def stop_server(ws: Workspace, *, timeout: float = 20.0) -> bool:
    """Stop the workspace's server; False when none was running."""
    state_dir = server_dir(ws)
    info = _read_state(state_dir)
    if info is None:
        return False
    running = _ours(info)
    if running:
        _terminate(info.pid, timeout=timeout)
    (state_dir / STATE_FILE).unlink(missing_ok=True)
    return running
