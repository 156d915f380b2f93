"""End to end through the CLI on a small O*NET fixture: real MiniLM, real embedded Chroma."""

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from autocoder.cli import app

runner = CliRunner()


@pytest.fixture()
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("AUTOCODER_HOME", str(tmp_path / "home"))
    return tmp_path


def _ok(args: list[str]) -> str:
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    return result.stdout


def test_import_index_code_eval(home: Path, fixtures_dir: Path) -> None:
    out = _ok(["taxonomy", "import", "onet", str(fixtures_dir / "onet_mini"), "--version", "mini"])
    assert json.loads(out)["n_leaves"] == 6
    assert "indexed" in _ok(["index", "build"])
    records = pd.DataFrame(
        {
            "id": ["a", "b", "c", "d"],
            "title": ["Staff Nurse", "Software Engineer", "", "Pediatrician"],
            "description": ["", "write code", "", ""],
        }
    )
    records.to_csv(home / "in.csv", index=False)
    out = _ok(["code", str(home / "in.csv"), "-o", str(home / "out.jsonl"), "--top-n", "3"])
    summary = json.loads(out)
    assert summary["rows"] == 4 and summary["status"]["error:empty_text"] == 1
    coded = pd.read_json(home / "out.jsonl", lines=True, dtype={"id": str})
    assert coded.set_index("id").loc["a", "code_1"] == "29-1141.00"
    assert coded.set_index("id").loc["b", "code_1"] == "15-1252.00"
    assert {"code_3", "label_3", "score_3", "confidence", "status"} <= set(coded.columns)
    gold = pd.DataFrame(
        {
            "id": ["a", "b", "c", "d"],
            "codes": ["29-1141.00", "15-1252.00", "11-1011.00", "29-1221.00"],
        }
    )
    gold.to_csv(home / "gold.csv", index=False)
    _ok(
        [
            "eval",
            "--gold",
            str(home / "gold.csv"),
            "--pred",
            str(home / "out.jsonl"),
            "-o",
            str(home / "rep"),
        ]
    )
    metrics = json.loads((home / "rep" / "metrics.json").read_text())
    assert metrics["top1_accuracy"] == pytest.approx(0.75)  # 3 right; the empty record is wrong
    assert any(p.suffix == ".png" for p in (home / "rep").iterdir())


def test_helpful_errors(home: Path) -> None:
    result = runner.invoke(app, ["index", "build"])
    assert result.exit_code == 2 and "autocoder taxonomy import onet" in result.output
    result = runner.invoke(app, ["--set", "coder.nope=1", "config"])
    assert result.exit_code == 2 and "nope" in result.output
