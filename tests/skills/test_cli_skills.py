from __future__ import annotations

import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from autocoder.cli import app

runner = CliRunner()


@pytest.fixture(scope="module")
def _imported(tmp_path_factory, fixtures_dir) -> str:
    """One workspace with the ESCO fixture imported, shared by this module's tests."""
    home = str(tmp_path_factory.mktemp("skills-ws"))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AUTOCODER_HOME", home)
        result = runner.invoke(app, ["taxonomy", "import", "esco", str(fixtures_dir / "esco_mini")])
    assert result.exit_code == 0, result.output
    return home


@pytest.fixture
def home(_imported, monkeypatch) -> str:
    monkeypatch.setenv("AUTOCODER_HOME", _imported)
    return _imported


def test_skills_commands_need_an_imported_esco(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("AUTOCODER_HOME", str(tmp_path / "empty"))
    result = runner.invoke(app, ["skills", "distinctive"])
    assert result.exit_code == 2 and "taxonomy import esco" in result.output


def test_distinctive_and_paths(home, tmp_path) -> None:
    out = tmp_path / "d.csv"
    result = runner.invoke(app, ["skills", "distinctive", "--level", "4", "-o", str(out)])
    assert result.exit_code == 0, result.output
    table = pd.read_csv(out, dtype=str)
    assert set(table["level"]) == {"4"} and "2654" in set(table["group"])
    result = runner.invoke(
        app, ["skills", "paths", "art director", "technical director", "--max-step", "0.9"]
    )
    assert result.exit_code == 0, result.output
    assert "0. 2654.1 art director" in result.output and "total distance" in result.output
    bad = runner.invoke(app, ["skills", "distinctive", "--level", "7"])
    assert bad.exit_code == 2 and "1-4" in bad.output


def test_graph_commands_take_cooccurrence_from_coded_postings(home, tmp_path) -> None:
    """Postings coded as art director name theatre techniques: the path to technical director
    (theatre techniques + lead a team) becomes free."""
    skill = "http://data.europa.eu/esco/skill/00000000-0000-4000-9000-00000000000"
    coded, found = tmp_path / "coded.csv", tmp_path / "skills.csv"
    pd.DataFrame({"id": ["p1", "p2"], "code_1": ["2654.1", "2654.1"]}).to_csv(coded, index=False)
    pd.DataFrame(
        {"id": ["p1", "p2", "p2"], "skill_uri": [f"{skill}3", f"{skill}3", f"{skill}4"]}
    ).to_csv(found, index=False)
    args = ["skills", "paths", "art director", "technical director", "--max-step", "0.9"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0 and "total distance 0.500" in result.output, result.output
    extra = ["--postings", str(coded), "--skills", str(found)]
    result = runner.invoke(app, [*args, *extra])
    assert result.exit_code == 0, result.output
    assert "total distance 0.000" in result.output
    assert "1 edges reinforced, 1 added, 0 skipped" in result.output
    result = runner.invoke(
        app, ["skills", "distinctive", "--level", "4", "--group", "2654", *extra]
    )
    assert result.exit_code == 0 and "theatre techniques" in result.output, result.output
    result = runner.invoke(app, [*args, "--postings", str(coded)])
    assert result.exit_code == 2 and "go together" in result.output
    onet = tmp_path / "onet.csv"
    pd.DataFrame({"id": ["p1"], "code_1": ["27-1011.00"]}).to_csv(onet, index=False)
    result = runner.invoke(app, [*args, "--postings", str(onet), "--skills", str(found)])
    assert result.exit_code == 2 and "ESCO occupation codes" in result.output
    result = runner.invoke(app, [*args, *extra, "--code-column", "code_2"])
    assert result.exit_code == 2 and "no column 'code_2'" in result.output


def test_train_rank_and_linkpred(home, tmp_path) -> None:
    result = runner.invoke(app, ["skills", "train"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout[result.stdout.index("{") :])["skills"] == 4
    result = runner.invoke(app, ["skills", "rank", "software developer", "--top", "2"])
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert lines[0].startswith("2512.4\tsoftware developer") and len(lines) == 3
    report = tmp_path / "lp.json"
    result = runner.invoke(app, ["skills", "linkpred", "--report", str(report), "--max-ratio", "2"])
    assert result.exit_code == 0, result.output
    f1 = json.loads(report.read_text())
    assert set(f1) == {"preferential_attachment", "node2vec"} and set(f1["node2vec"]) == {"1", "2"}


def test_linkpred_explains_too_few_non_edges(home, tmp_path) -> None:
    result = runner.invoke(app, ["skills", "linkpred", "--report", str(tmp_path / "x.json")])
    assert result.exit_code == 2 and "negatives" in result.output


def test_rank_without_a_model_says_how_to_train(home, tmp_path) -> None:
    result = runner.invoke(
        app, ["skills", "rank", "software developer", "--model", str(tmp_path / "none")]
    )
    assert result.exit_code == 2 and "autocoder skills train" in result.output


@pytest.mark.slow
def test_extract_plain_minilm_end_to_end(home, tmp_path) -> None:
    src = tmp_path / "postings.jsonl"
    pd.DataFrame(
        {
            "id": ["a", "b", "c"],
            "body": ["You will write software and do programming.", "", "Lead a team on stage."],
        }
    ).to_json(src, orient="records", lines=True)
    out = tmp_path / "skills.csv"
    result = runner.invoke(
        app,
        [
            "skills",
            "extract",
            str(src),
            "-o",
            str(out),
            "--top-k",
            "2",
            "--text-column",
            "body",
            "--plain",
            "--no-llm",
        ],
    )
    assert result.exit_code == 0, result.output
    table = pd.read_csv(out, dtype={"id": str}, keep_default_na=False)
    assert table.groupby("id").size().to_dict() == {"a": 2, "b": 1, "c": 2}
    assert table.loc[table["id"] == "b", "status"].item() == "error:empty_text"
    a = table[table["id"] == "a"]
    assert set(a["skill_label"]) <= {
        "develop software",
        "computer programming",
        "lead a team",
        "theatre techniques",
    }
    assert a["skill_label"].iloc[0] in {"develop software", "computer programming"}
