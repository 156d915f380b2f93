"""Server management against a stand-in for ``python -m llama_cpp.server`` (no model needed)."""

import os
import socket
import stat
import sys
import textwrap
import time

import pytest

from autocoder.llm.server import (
    ServerError,
    llama_python,
    ping,
    server_status,
    start_server,
    stop_server,
)

FAKE_SERVER = textwrap.dedent(
    """
    import argparse, json, sys
    from http.server import BaseHTTPRequestHandler, HTTPServer
    p = argparse.ArgumentParser()
    p.add_argument("-m"); p.add_argument("--model"); p.add_argument("--model_alias")
    p.add_argument("--host"); p.add_argument("--port", type=int)
    args, _ = p.parse_known_args()
    print("fake llama server args:", sys.argv[1:], flush=True)
    if args.model_alias == "crash":
        sys.exit("cannot load model")
    class H(BaseHTTPRequestHandler):
        def log_message(self, *a): pass
        def do_GET(self):
            body = json.dumps({"data": [{"id": args.model_alias}]}).encode()
            self.send_response(200); self.send_header("Content-Length", str(len(body)))
            self.end_headers(); self.wfile.write(body)
    HTTPServer((args.host, args.port), H).serve_forever()
    """
)


@pytest.fixture
def fake_python(tmp_path):
    """An executable that runs the stand-in server whatever module it is asked for."""
    script = tmp_path / "fake_llama.py"
    script.write_text(FAKE_SERVER)
    exe = tmp_path / "python-llama"
    exe.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{script}" "$@"\n')
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
    return str(exe)


@pytest.fixture
def model_file(tmp_path):
    path = tmp_path / "model.gguf"
    path.write_bytes(b"GGUF")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_status_without_a_server(tmp_path):
    status = server_status(tmp_path / "state")
    assert status["running"] is False and status["ready"] is False
    assert stop_server(tmp_path / "state") is False


def test_start_status_stop(tmp_path, fake_python, model_file):
    state = tmp_path / "state"
    port = free_port()
    info = start_server(
        state, model_path=model_file, python=fake_python, port=port, alias="tiny", timeout=30
    )
    try:
        assert info.base_url == f"http://127.0.0.1:{port}/v1" and ping(info.base_url)
        status = server_status(state)
        assert status["running"] and status["ready"] and status["pid"] == info.pid
        log_text = (state / "server.log").read_text()
        assert "--model_alias tiny" in log_text and "--chat_format gemma" in log_text
        again = start_server(
            state, model_path=model_file, python=fake_python, port=port, timeout=30
        )
        assert again.pid == info.pid  # idempotent: the running server is reused
    finally:
        assert stop_server(state) is True
    assert not (state / "server.json").exists()
    assert not ping(info.base_url)
    with pytest.raises(ProcessLookupError):
        os.kill(info.pid, 0)
    assert server_status(state)["running"] is False


def test_start_failure_reports_the_log(tmp_path, fake_python, model_file):
    with pytest.raises(ServerError, match="cannot load model"):
        start_server(
            tmp_path / "s",
            model_path=model_file,
            python=fake_python,
            port=free_port(),
            alias="crash",
            timeout=30,
        )
    assert not (tmp_path / "s" / "server.json").exists()


def test_refuses_a_port_someone_else_serves(tmp_path, fake_python, model_file):
    port = free_port()
    first = start_server(
        tmp_path / "a", model_path=model_file, python=fake_python, port=port, timeout=30
    )
    try:
        with pytest.raises(ServerError, match="already answers"):
            start_server(tmp_path / "b", model_path=model_file, python=fake_python, port=port)
    finally:
        stop_server(tmp_path / "a")
    assert not ping(first.base_url)


def test_stale_state_file_is_ignored(tmp_path, fake_python, model_file):
    state = tmp_path / "state"
    port = free_port()
    info = start_server(state, model_path=model_file, python=fake_python, port=port, timeout=30)
    saved = (state / "server.json").read_text()
    stop_server(state)
    (state / "server.json").write_text(saved)  # the recorded process is gone
    assert server_status(state)["running"] is False
    assert stop_server(state) is False
    time.sleep(0.1)
    assert not ping(info.base_url)


def test_missing_model_file(tmp_path, fake_python):
    with pytest.raises(ServerError, match="not found"):
        start_server(
            tmp_path, model_path=tmp_path / "nope.gguf", python=fake_python, port=free_port()
        )


def test_llama_python_comes_from_config_then_env_else_a_clear_error(
    tmp_path, monkeypatch, fake_python
):
    monkeypatch.delenv("AUTOCODER_LLAMA_PYTHON", raising=False)
    with pytest.raises(ServerError, match=r"setup-llm\.sh.*llm\.server_python"):
        llama_python(None)
    monkeypatch.setenv("AUTOCODER_LLAMA_PYTHON", fake_python)  # read at call time
    assert llama_python(None) == fake_python
    assert llama_python(sys.executable) == sys.executable  # the config wins
    with pytest.raises(ServerError, match="does not exist"):
        llama_python(str(tmp_path / "nope" / "python"))


def test_start_without_a_configured_python_says_what_to_do(tmp_path, monkeypatch, model_file):
    monkeypatch.delenv("AUTOCODER_LLAMA_PYTHON", raising=False)
    with pytest.raises(ServerError, match="setup-llm.sh"):
        start_server(tmp_path / "s", model_path=model_file, port=free_port())
    assert not (tmp_path / "s" / "server.json").exists()


def test_cli_passes_the_configured_python(tmp_path, monkeypatch, fake_python, model_file):
    from typer.testing import CliRunner

    from autocoder.cli import app

    monkeypatch.delenv("AUTOCODER_LLAMA_PYTHON", raising=False)
    ws = tmp_path / "ws"
    base = ["--set", f"workspace.home={ws}", "--set", f"llm.server_python={fake_python}"]
    runner = CliRunner()
    port = str(free_port())
    started = runner.invoke(
        app, [*base, "llm-server", "start", "--model", str(model_file), "--port", port]
    )
    try:
        assert started.exit_code == 0, started.output
        status = runner.invoke(app, [*base, "llm-server", "status"])
        assert status.exit_code == 0 and '"ready": true' in status.output
    finally:
        stopped = runner.invoke(app, [*base, "llm-server", "stop"])
    assert stopped.output.strip() == "stopped"
