from pathlib import Path

import pytest
from typer.testing import CliRunner

from autocoder.cli import app
from autocoder.config import Settings, load_settings
from autocoder.service.keys import KeyStore
from autocoder.service.run import ServeError, check_bind, check_model, is_loopback
from autocoder.workspace import Workspace


def test_loopback() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("10.0.0.5")
    assert not is_loopback("example.org")


def test_public_bind_needs_keys(tmp_path: Path) -> None:
    ws = Workspace.resolve(tmp_path)
    assert check_bind("127.0.0.1", ws) is False
    with pytest.raises(ServeError, match="no API key is configured"):
        check_bind("0.0.0.0", ws)
    KeyStore.of(ws).add("proxy")
    assert check_bind("0.0.0.0", ws) is True


def test_cli_refuses_and_manages_keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTOCODER_HOME", str(tmp_path))
    runner = CliRunner()
    refused = runner.invoke(app, ["serve", "--host", "0.0.0.0", "--port", "9"])
    assert refused.exit_code == 2 and "not a loopback address" in refused.output
    added = runner.invoke(app, ["serve", "keys", "add", "survey"])
    assert added.exit_code == 0
    key = added.stdout.strip()
    listed = runner.invoke(app, ["serve", "keys", "list"])
    assert '"survey"' in listed.stdout and key not in listed.stdout
    assert runner.invoke(app, ["serve", "keys", "revoke", "survey"]).exit_code == 0
    assert KeyStore.of(Workspace.resolve(tmp_path)).check(key) is None
    again = runner.invoke(app, ["serve", "keys", "revoke", "survey"])
    assert again.exit_code == 2 and "no active key" in again.output


def test_cli_model_reaches_every_worker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``serve --model`` is ``coder.model`` for the parent and in the overrides each worker
    process builds its settings from."""
    monkeypatch.setenv("AUTOCODER_HOME", str(tmp_path))
    seen: dict[str, object] = {}

    def fake_serve(settings: Settings, ws: Workspace, *, config: str | None,
                   overrides: list[str]) -> None:  # fmt: skip
        seen.update(model=settings.coder.model, overrides=overrides)

    monkeypatch.setattr("autocoder.service.run.serve", fake_serve)
    done = CliRunner().invoke(app, ["serve", "--model", "models/it's mine", "--port", "8765"])
    assert done.exit_code == 0, done.output
    assert seen["model"] == "models/it's mine"
    worker = load_settings(overrides=seen["overrides"])  # type: ignore[arg-type]
    assert worker.coder.model == "models/it's mine" and worker.serve.port == 8765


def test_a_model_that_is_not_there_stops_the_server(tmp_path: Path) -> None:
    settings = load_settings(overrides=[f'coder.model="{tmp_path / "typo"}"'])
    with pytest.raises(ServeError, match="is not a model directory"):
        check_model(settings)
    for fine in ("retrieval", "pretrained"):
        check_model(load_settings(overrides=[f'coder.model="{fine}"']))
    check_model(load_settings())  # coder.model unset: retrieval
