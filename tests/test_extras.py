"""autocoder.extras: a missing optional dependency ends in one line naming the pip install."""

from __future__ import annotations

import importlib.util
import tomllib

import pytest
from typer.testing import CliRunner

from autocoder import extras
from autocoder.cli import app
from tests.conftest import REPO


def test_require_names_the_extra_to_install() -> None:
    with pytest.raises(extras.MissingExtra) as info:
        extras.require("ray", "json", "no_such_module_autocoder")
    message = str(info.value)
    assert "no_such_module_autocoder" in message and "json" not in message.split("needs")[1]
    assert message.endswith("run pip install 'autocoder[ray]'")
    assert "\n" not in message
    extras.require("ray", "json")  # installed: nothing raised


def test_unknown_extra_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown extra 'nope'"):
        extras.require("nope", "json")


def test_every_extra_is_declared_in_pyproject() -> None:
    declared = tomllib.loads((REPO / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    assert set(extras.EXTRAS) <= set(declared)
    members = declared["all"][0].split("[", 1)[1].rstrip("]").split(",")
    assert set(members) == set(extras.EXTRAS)


def test_cli_prints_one_line_and_exits_2(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    """`code --engine ray` without Ray installed (find_spec answers None for it)."""
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "ray" else real(name, *a)
    )
    src = tmp_path / "in.csv"
    src.write_text("id,title\n1,nurse\n")
    result = CliRunner().invoke(
        app,
        ["--set", f"workspace.home={tmp_path}", "code", str(src), "-o", str(tmp_path / "o.csv"),
         "--engine", "ray"],
    )  # fmt: skip
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert lines == ["error: coding on Ray (--engine ray) needs ray, which is not installed: "
                     "run pip install 'autocoder[ray]'"]  # fmt: skip
