"""``autocoder serve``: refuse an open server beyond loopback, then run uvicorn workers."""

from __future__ import annotations

import ipaddress
import os

from autocoder.coding.loaded import RETRIEVAL, ModelFiles, resolve_model_dir
from autocoder.config import Settings
from autocoder.service.app import ENV, serve_args
from autocoder.service.keys import KeyStore
from autocoder.workspace import Workspace


class ServeError(ValueError):
    """The server cannot start with these options (exit 2)."""


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind(host: str, ws: Workspace) -> bool:
    """Whether ``host`` is beyond loopback; refuses it (``ServeError``) when no API key is
    configured, since the service would then be open to the network."""
    public = not is_loopback(host)
    if public and not KeyStore.of(ws).any_active():
        raise ServeError(
            f"refusing to bind {host}: it is not a loopback address and no API key is "
            f"configured, so anyone on the network could use the service. Create one with "
            f"`autocoder serve keys add NAME`, or bind 127.0.0.1 (behind a reverse proxy)."
        )
    return public


def check_model(settings: Settings) -> None:
    """Refuse a ``coder.model`` (``serve --model``) that is not a model directory now, rather
    than start workers that answer 503 until it appears."""
    wanted = settings.coder.model
    path = resolve_model_dir(wanted)  # None when unset: retrieval
    if path is None or wanted == RETRIEVAL:
        return
    try:
        ModelFiles.read(path)  # what a worker's load_coder reads first
    except FileNotFoundError as exc:
        raise ServeError(str(exc)) from None


def serve(
    settings: Settings,
    ws: Workspace,
    *,
    config: str | None,
    overrides: list[str],
) -> None:
    """Run the service with ``settings.serve`` (host, port, workers); each worker process
    builds its app from the same ``config`` file and ``overrides``."""
    import uvicorn

    cfg = settings.serve
    public = check_bind(cfg.host, ws)
    check_model(settings)
    os.environ[ENV] = serve_args(config, overrides, public=public, workers=cfg.workers)
    uvicorn.run(
        "autocoder.service.app:app_from_env",
        factory=True,
        host=cfg.host,
        port=cfg.port,
        workers=cfg.workers,
        access_log=False,  # its lines hold query strings; ours (autocoder.service.access) not
        log_level="info",
    )
