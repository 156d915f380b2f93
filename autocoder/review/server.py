"""Start, stop and check a local Label Studio for the review queue.

Label Studio (``label-studio==1.23.2``) runs from its own virtual environment (it conflicts with
the main one; ``scripts/setup-labelstudio.sh`` creates ``.venv-labelstudio``), headless, on
loopback only. Its Python is config ``review.server_python``, else
``$AUTOCODER_LABELSTUDIO_PYTHON`` (read when the server is started), else the workspace's own
``<workspace>/review/labelstudio-venv``, which ``start`` creates the first time (saying so).
Process handling (detached start, pid record, readiness wait, stop) is :mod:`autocoder.procs`.

Its state lives in ``<workspace>/review/server/``: ``server.json`` (pid, URL), ``server.log``,
``data/`` (the Label Studio database) and three files readable by the owner only, ``token``
(the API token, generated once with ``secrets``), ``password`` (the admin's web login) and
``secret_key`` (Django's session key). Secrets reach Label Studio through its environment only:
they are never printed or logged, and ``status`` reports only that the token file exists.
"""

from __future__ import annotations

import logging
import os
import secrets
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from autocoder import procs
from autocoder.config import ReviewConfig
from autocoder.workspace import Workspace

ServerError = procs.ServiceError  # the local Label Studio could not be started, found or stopped

log = logging.getLogger(__name__)

PYTHON_ENV = "AUTOCODER_LABELSTUDIO_PYTHON"
LABELSTUDIO = "label-studio==1.23.2"  # the version the review loop is tested with
TOKEN_FILE = "token"  # owner-only secrets in the server folder
PASSWORD_FILE = "password"
SECRET_KEY_FILE = "secret_key"
STATE_FILE = "server.json"
LOG_FILE = "server.log"


@dataclass
class ServerInfo:
    """The record in ``server.json``: where Label Studio listens, and which process it is."""

    host: str
    port: int
    username: str
    pid: int
    started: str  # kernel start time of the process: guards against pid reuse
    log_path: str

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


def server_dir(ws: Workspace) -> Path:
    path = ws.root / "review" / "server"
    path.mkdir(parents=True, exist_ok=True)
    return path


def workspace_venv(ws: Workspace) -> Path:
    """Where ``start`` makes Label Studio's own environment when none is configured."""
    return ws.root / "review" / "labelstudio-venv"


def server_python(cfg: ReviewConfig, ws: Workspace | None = None) -> Path:
    """The Label Studio venv's Python: ``review.server_python``, else
    ``$AUTOCODER_LABELSTUDIO_PYTHON``, else the workspace's environment (:func:`workspace_venv`);
    a clear error when a configured one does not exist or none is found."""
    raw = cfg.server_python or os.environ.get(PYTHON_ENV)
    if not raw:
        own = workspace_venv(ws) / "bin" / "python" if ws is not None else None
        if own is not None and own.exists():
            return own
        raise ServerError(
            "no Python for Label Studio is configured: `autocoder review server start` makes one "
            "in the workspace, or run `bash scripts/setup-labelstudio.sh` (it builds "
            ".venv-labelstudio) and set review.server_python "
            f"(--set review.server_python=PATH) or ${PYTHON_ENV} to .venv-labelstudio/bin/python"
        )
    path = Path(raw).expanduser()
    if not path.exists():
        raise ServerError(
            f"Label Studio's Python {path} not found: run `bash scripts/setup-labelstudio.sh` "
            f"or fix review.server_python / ${PYTHON_ENV}"
        )
    return path


def make_labelstudio_env(ws: Workspace, *, base_python: str | None = None) -> Path:
    """Create :func:`workspace_venv` with ``label-studio`` in it (minutes, once) from
    ``base_python`` (default: this Python); returns the environment's Python."""
    venv = workspace_venv(ws)
    log.warning(
        "no Label Studio environment configured: creating %s with %s (a few minutes, once)",
        venv, LABELSTUDIO,
    )  # fmt: skip
    python = venv / "bin" / "python"
    try:
        if not python.exists():
            subprocess.run([base_python or sys.executable, "-m", "venv", str(venv)], check=True)
        pip = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
        subprocess.run([*pip, LABELSTUDIO], check=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        raise ServerError(f"could not create Label Studio's environment in {venv}: {exc}") from exc
    return python


def _secret(path: Path, nbytes: int) -> str:
    """Read the secret in ``path``, creating it (mode 0600) on first use."""
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_hex(nbytes))
    os.chmod(path, 0o600)
    return path.read_text().strip()


def healthy(url: str, *, timeout: float = 2.0) -> bool:
    """True when ``GET {url}/health`` answers 200."""
    return procs.http_ok(f"{url.rstrip('/')}/health", timeout=timeout)


def _recorded(state_dir: Path) -> tuple[ServerInfo | None, bool]:
    """The server recorded in ``state_dir`` (or None) and whether that very process still runs."""
    info = procs.read_state(state_dir / STATE_FILE, ServerInfo)
    return info, info is not None and procs.still_running(info.pid, info.started)


def local_connection(ws: Workspace) -> tuple[str, str] | None:
    """(URL, token) of the local server recorded in the workspace, or None."""
    state_dir = ws.root / "review" / "server"
    info = procs.read_state(state_dir / STATE_FILE, ServerInfo) if state_dir.is_dir() else None
    token_path = state_dir / TOKEN_FILE
    if info is None or not token_path.exists():
        return None
    return info.url, token_path.read_text().strip()


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
    info, running = _recorded(state_dir)
    status: dict[str, Any] = {"state_dir": str(state_dir)}
    status["token_file"] = (state_dir / TOKEN_FILE).exists()
    if info is not None:
        status.update(asdict(info), url=info.url)
    status.update(running=running, ready=running and info is not None and healthy(info.url))
    return status


def _wait(info: ServerInfo, timeout: float) -> None:
    """Until Label Studio answers on /health (``ServerError`` with the log's end otherwise)."""
    name, log_path = f"Label Studio at {info.url}", Path(info.log_path)
    procs.wait_ready(
        info.pid, lambda: healthy(info.url), name=name, log_path=log_path, timeout=timeout, poll=1.0
    )


def _launch(state_dir: Path, cfg: ReviewConfig, python: Path) -> ServerInfo:
    """Spawn Label Studio (secrets only in its environment) and record it; no waiting."""
    cmd = [
        str(python), "-m", "label_studio.server", "start", "--no-browser",
        "--internal-host", cfg.host, "--port", str(cfg.port),
        "--host", f"http://{cfg.host}:{cfg.port}",
    ]  # fmt: skip
    log_path = state_dir / LOG_FILE
    env = _environment(state_dir, cfg)
    pid, started = procs.spawn(cmd, log_path=log_path, cwd=state_dir, env=env)
    info = ServerInfo(
        host=cfg.host, port=cfg.port, username=cfg.username, pid=pid, started=started,
        log_path=str(log_path),
    )  # fmt: skip
    procs.write_state(state_dir / STATE_FILE, info)
    return info


def start_server(ws: Workspace, cfg: ReviewConfig) -> tuple[ServerInfo, bool]:
    """Start Label Studio (or find the one already running); returns (info, newly started).

    Raises ``ServerError`` when another program holds the port, or with the end of the log
    when the server exits or does not answer within ``review.start_timeout``.
    """
    state_dir = server_dir(ws)
    current, running = _recorded(state_dir)
    if current is not None and running:
        if (current.host, current.port) != (cfg.host, cfg.port):
            raise ServerError(f"this workspace's Label Studio already runs at {current.url}")
        _wait(current, cfg.start_timeout)
        return current, False
    (state_dir / STATE_FILE).unlink(missing_ok=True)  # a stale record
    if procs.port_busy(cfg.host, cfg.port):
        raise ServerError(
            f"port {cfg.port} on {cfg.host} is already in use by another program; "
            "choose another with --port (review.port)"
        )
    configured = cfg.server_python or os.environ.get(PYTHON_ENV)
    if not configured and not (workspace_venv(ws) / "bin" / "python").exists():
        python = make_labelstudio_env(ws)
    else:
        python = server_python(cfg, ws)
    info = _launch(state_dir, cfg, python)
    try:
        _wait(info, cfg.start_timeout)
    except ServerError:
        _discard(state_dir, info.pid, timeout=10)  # a half-started server is not left behind
        raise
    return info, True


def stop_server(ws: Workspace, *, timeout: float = 20.0) -> bool:
    """Stop the workspace's server; False when none was running."""
    state_dir = server_dir(ws)
    info, running = _recorded(state_dir)
    _discard(state_dir, info.pid if info is not None and running else None, timeout=timeout)
    return running


def _discard(state_dir: Path, pid: int | None, *, timeout: float) -> None:
    """Stop the process group ``pid`` leads (children too, even when it has exited already),
    then forget the record."""
    if pid is not None:
        procs.terminate(pid, timeout=timeout, name="Label Studio")
    (state_dir / STATE_FILE).unlink(missing_ok=True)
