"""The local Label Studio: start/stop/status. Unit parts first, then the real server."""

from __future__ import annotations

import os
import socket
import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner

from autocoder.cli import app
from autocoder.config import load_settings
from autocoder.review import server
from autocoder.workspace import Workspace

from .conftest import LiveServer


def test_secret_files_are_owner_only_and_stable(tmp_path: Path) -> None:
    path = tmp_path / "token"
    first = server._secret(path, 20)
    assert len(first) == 40 and server._secret(path, 20) == first
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_missing_labelstudio_venv_is_a_clear_error(tmp_path: Path) -> None:
    s = load_settings(overrides=[f"review.server_python='{tmp_path}/nope/python'"])
    with pytest.raises(server.ServerError, match="setup-labelstudio.sh"):
        server.start_server(Workspace.resolve(tmp_path), s.review)


def test_labelstudio_python_is_config_then_env_at_call_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(server.PYTHON_ENV, raising=False)
    cfg = load_settings(overrides=[f"workspace.home='{tmp_path}'"]).review
    assert cfg.server_python is None
    with pytest.raises(
        server.ServerError, match=r"setup-labelstudio\.sh.*AUTOCODER_LABELSTUDIO_PYTHON"
    ):
        server.server_python(cfg)
    from_env, from_cfg = tmp_path / "env-python", tmp_path / "cfg-python"
    from_env.touch()
    from_cfg.touch()
    monkeypatch.setenv(server.PYTHON_ENV, str(from_env))  # read when asked, not at import
    assert server.server_python(cfg) == from_env
    assert server.server_python(cfg.model_copy(update={"server_python": str(from_cfg)})) == from_cfg
    monkeypatch.setenv(server.PYTHON_ENV, str(tmp_path / "gone"))
    with pytest.raises(server.ServerError, match="gone not found"):
        server.server_python(cfg)


def test_labelstudio_python_falls_back_to_the_workspace_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(server.PYTHON_ENV, raising=False)
    ws = Workspace.resolve(tmp_path)
    cfg = load_settings(overrides=[f"workspace.home='{tmp_path}'"]).review
    with pytest.raises(server.ServerError, match="review server start` makes one"):
        server.server_python(cfg, ws)
    own = server.workspace_venv(ws) / "bin" / "python"
    own.parent.mkdir(parents=True)
    own.touch()
    assert server.server_python(cfg, ws) == own
    monkeypatch.setenv(server.PYTHON_ENV, str(tmp_path / "gone"))  # a configured one wins
    with pytest.raises(server.ServerError, match="gone not found"):
        server.server_python(cfg, ws)


def test_start_makes_the_workspace_env_when_none_is_configured(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """No config, no env, no workspace env: start says so and creates it (here the base Python
    does not exist, so creating fails with a clear error naming the folder)."""
    monkeypatch.delenv(server.PYTHON_ENV, raising=False)
    ws = Workspace.resolve(tmp_path)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    cfg = load_settings(overrides=[f"workspace.home='{tmp_path}'", f"review.port={port}"])
    monkeypatch.setattr(server.sys, "executable", str(tmp_path / "no-python"))
    with pytest.raises(server.ServerError, match="could not create Label Studio's environment"):
        server.start_server(ws, cfg.review)
    assert "creating" in caplog.text and str(server.workspace_venv(ws)) in caplog.text


def test_status_and_stop_without_a_server(tmp_path: Path) -> None:
    ws = Workspace.resolve(tmp_path)
    st = server.server_status(ws)
    assert st["running"] is False and st["token_file"] is False
    assert server.stop_server(ws) is False
    r = CliRunner().invoke(
        app, ["--set", f"workspace.home='{tmp_path}'", "review", "server", "status"]
    )
    assert r.exit_code == 3 and "not running" in r.output


@pytest.mark.integration
def test_busy_port_is_refused(tmp_path: Path, live_server: LiveServer) -> None:
    s = load_settings(overrides=[f"review.port={live_server.port}"])
    with pytest.raises(server.ServerError, match="already in use"):
        server.start_server(Workspace.resolve(tmp_path), s.review)


@pytest.mark.integration
@pytest.mark.slow
def test_cli_start_is_idempotent_stop_and_restart(live_server: LiveServer) -> None:
    runner = CliRunner()
    base = ["--set", f"workspace.home={str(live_server.ws.root)!r}",
            "--set", f"review.server_python={str(live_server.python)!r}"]  # fmt: skip
    port = ["--port", str(live_server.port)]
    r = runner.invoke(app, [*base, "review", "server", "start", *port])
    assert r.exit_code == 0 and "already running" in r.output, r.output
    assert live_server.token not in r.output
    r = runner.invoke(app, [*base, "review", "server", "status", "--json"])
    assert r.exit_code == 0 and '"ready": true' in r.output and live_server.token not in r.output
    r = runner.invoke(app, [*base, "review", "server", "stop"])
    assert r.exit_code == 0 and "stopped" in r.output
    assert not server.healthy(live_server.url)
    r = runner.invoke(app, [*base, "review", "server", "status"])
    assert r.exit_code == 3
    r = runner.invoke(
        app, [*base, "--set", "review.start_timeout=600", "review", "server", "start", *port]
    )
    assert r.exit_code == 0 and "started" in r.output, r.output
    assert server.healthy(live_server.url)
    assert server.local_connection(live_server.ws) == (live_server.url, live_server.token)
    log = Path(server.server_status(live_server.ws)["log_path"]).read_text()
    assert live_server.token not in log
