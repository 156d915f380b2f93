from pathlib import Path

import pytest

from autocoder.workspace import Workspace


def test_env_and_explicit_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTOCODER_HOME", str(tmp_path / "env"))
    assert Workspace.resolve().root == (tmp_path / "env").resolve()
    ws = Workspace.resolve(tmp_path / "explicit")
    assert ws.root == (tmp_path / "explicit").resolve()
    assert ws.chroma.is_dir() and ws.chroma.is_relative_to(ws.root)
