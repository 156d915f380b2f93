from pathlib import Path

import pytest

from autocoder.resources import resource_dir


def test_finds_shipped_folders_without_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert (resource_dir("configs") / "default.toml").is_file()
    assert resource_dir("prompts").is_dir()


def test_override_and_unknown(tmp_path: Path) -> None:
    assert resource_dir("prompts", tmp_path) == tmp_path
    with pytest.raises(ValueError, match="unknown resource"):
        resource_dir("secrets")
