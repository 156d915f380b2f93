"""``autocoder examples add|list|stats|remove`` through the CLI on the real ESCO/O*NET fixtures."""

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from autocoder.cli import app

runner = CliRunner()
DEV_URI = "http://data.europa.eu/esco/occupation/00000000-0000-4000-8000-000000000001"


@pytest.fixture()
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("AUTOCODER_HOME", str(tmp_path / "home"))
    return tmp_path


def _run(args: list[str], code: int = 0) -> str:
    result = runner.invoke(app, args)
    assert result.exit_code == code, result.output
    return result.stdout


def test_add_stats_list_remove_onet(home: Path, fixtures_dir: Path) -> None:
    _run(["taxonomy", "import", "onet", str(fixtures_dir / "onet_mini"), "--version", "mini"])
    pd.DataFrame(
        {
            "job": ["Staff nurse", "staff nurse", "Coder", "", "Nurse", "coder"],
            "soc": ["29-1141.00", "29-1141.00", "15-1252.00", "15-1252.00", "11-9999.00",
                    "29-1141.00"],
        }
    ).to_json(home / "coded.jsonl", orient="records", lines=True)  # fmt: skip
    out = json.loads(
        _run(
            [
                "examples",
                "add",
                str(home / "coded.jsonl"),
                "--code-column",
                "soc",
                "--title-column",
                "job",
                "--source",
                "wave1",
                "--rejected",
                str(home / "rejected.csv"),
            ]
        )  # fmt: skip
    )
    assert out["added"] == 3 and out["rejected_rows"] == 3
    rejected = pd.read_csv(home / "rejected.csv")
    assert list(rejected["row"]) == [2, 4, 5]
    assert rejected["reason"].str.contains("duplicate|empty title|unknown code").all()
    assert out["conflicts"] == [{"key": "coder", "codes": {"15-1252.00": 1.0, "29-1141.00": 1.0}}]
    stats = json.loads(_run(["examples", "stats"]))
    assert stats["rows"] == 3 and stats["sources"] == {"wave1": 3} and stats["content_hash"]
    listed = [json.loads(line) for line in _run(["examples", "list"]).splitlines()]
    assert [r["title"] for r in listed] == ["Staff nurse", "Coder", "coder"]
    assert json.loads(_run(["examples", "remove", "--source", "wave1"]))["removed"] == 3
    assert (
        "no examples from source 'wave1'"
        in runner.invoke(app, ["examples", "remove", "--source", "wave1"]).output
    )
    assert json.loads(_run(["examples", "stats"]))["rows"] == 0


def test_add_esco_uris_and_all_bad_file_fails(home: Path, fixtures_dir: Path) -> None:
    _run(["taxonomy", "import", "esco", str(fixtures_dir / "esco_mini"), "--version", "mini"])
    pd.DataFrame({"title": ["Java programmer"], "uri": [DEV_URI]}).to_csv(home / "a.csv")
    out = json.loads(_run(["examples", "add", str(home / "a.csv"), "--code-column", "uri",
                           "--taxonomy", "esco"]))  # fmt: skip
    assert out["added"] == 1
    code = json.loads(_run(["examples", "list", "--taxonomy", "esco"]))["code"]
    assert code and not code.startswith("http")
    pd.DataFrame({"title": ["x"], "uri": ["http://nowhere/1"]}).to_csv(home / "b.csv")
    result = runner.invoke(app, ["examples", "add", str(home / "b.csv"), "--code-column", "uri",
                                 "--taxonomy", "esco"])  # fmt: skip
    assert result.exit_code == 2 and "no row of" in result.output
    result = runner.invoke(app, ["examples", "add", str(home / "b.csv"), "--code-column", "soc",
                                 "--taxonomy", "esco"])  # fmt: skip
    assert result.exit_code == 2 and "no column 'soc'" in result.output


MINI_WORDS = {
    "29-1141.00": ["ward", "sister", "matron", "clinic", "theatre", "midwifery", "icu", "night"],
    "15-1252.00": ["python", "backend", "frontend", "kotlin", "devops", "fullstack", "web", "lead"],
    "11-1011.00": ["ceo", "managing", "director", "president", "group", "chief", "board", "md"],
}


@pytest.mark.slow
def test_fit_chooses_vote_settings_that_coding_then_uses(home: Path, fixtures_dir: Path) -> None:
    """`examples fit` on a real MiniLM and embedded Chroma: settings and cross-fitted figures
    printed, the fit file written beside the store, and the next coder votes with them."""
    import numpy as np

    from autocoder.coding.loaded import load_coder
    from autocoder.config import load_settings
    from autocoder.workspace import Workspace

    _run(["taxonomy", "import", "onet", str(fixtures_dir / "onet_mini"), "--version", "mini"])
    _run(["index", "build"])
    rng = np.random.default_rng(3)
    codes = list(MINI_WORDS)
    rows = [(" ".join(rng.choice(MINI_WORDS[c], size=3, replace=False)), c)
            for c in (codes[i % 3] for i in range(150))]  # fmt: skip
    pd.DataFrame(rows, columns=["title", "soc"]).to_csv(home / "history.csv", index=False)
    added = json.loads(_run(["examples", "add", str(home / "history.csv"), "--code-column",
                             "soc"]))["added"]  # fmt: skip
    assert added > 100  # (repeated titles of a code are duplicate rows)
    out = json.loads(_run(["examples", "fit", "--model", "retrieval", "--share", "0.4"]))
    assert (
        out["held_out"] == round(0.4 * added) and out["voting_examples"] == added - out["held_out"]
    )
    figures = out["figures"]
    assert figures["fitted (cross-fitted)"]["top1"] > figures["base"]["top1"]
    assert Path(out["path"]).is_file() and Path(out["path"]).parent.parent.name == "onet"
    ws = Workspace.resolve(home / "home")
    coder = load_coder(load_settings(), ws, model="retrieval")
    assert coder.predictor.temperature == pytest.approx(out["settings"]["blend_temperature"])  # type: ignore[attr-defined]
    assert coder.predictor.voter.neighbours == out["settings"]["neighbours"]  # type: ignore[attr-defined]
    # a store fitted for another coder (the model before a retrain) is fitted for the new one
    from autocoder import api

    fit_file = Path(out["path"])
    other = fit_file.with_name("0" * 16 + ".json")
    fit_file.rename(other)
    refit = api.refit_examples_for(load_settings(), ws, "retrieval")
    assert refit is not None and fit_file.is_file() and other.is_file()
    other.unlink()
    fit_file.unlink()
    assert api.refit_examples_for(load_settings(), ws, "retrieval") is None  # never fitted
    # a store without enough examples is refused with the reason
    _run(["examples", "remove", "--source", "history"])
    pd.DataFrame({"title": ["ward sister"], "soc": [codes[0]]}).to_csv(home / "h.csv", index=False)
    _run(["examples", "add", str(home / "h.csv"), "--code-column", "soc"])
    fail = runner.invoke(app, ["examples", "fit", "--model", "retrieval"])
    assert fail.exit_code == 2 and "too few examples to fit" in fail.output
