"""The packaged ESCO recipe: found by name (`--recipe esco`), trains on an ESCO taxonomy, and
the coded output carries each candidate's ESCO code and URI."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from autocoder.classify.recipe import RecipeError, load_recipe, resolve_recipe
from autocoder.cli import app
from autocoder.resources import resource_dir
from autocoder.taxonomy.esco import import_esco

runner = CliRunner()


def test_recipe_names_resolve_to_packaged_recipes(tmp_path: Path) -> None:
    packaged = resource_dir("training")
    assert resolve_recipe("esco") == packaged / "esco.toml"
    assert resolve_recipe("esco.toml") == packaged / "esco.toml"
    assert resolve_recipe(None) == packaged / "classifier.toml"
    recipe = load_recipe("esco")
    assert recipe.name == "esco-mlp" and recipe.data.taxonomy == "esco"
    assert not recipe.finetune.enabled
    own = tmp_path / "esco.toml"  # a file path wins over the packaged name
    own.write_text('name = "mine"\n')
    assert load_recipe(own).name == "mine"
    with pytest.raises(RecipeError, match=r"no such file, nor a packaged recipe .*'esco'"):
        load_recipe("nope")
    with pytest.raises(RecipeError):
        load_recipe(tmp_path / "missing" / "esco.toml")  # a path is never looked up by name


def _ok(args: list[str]) -> str:
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    return result.stdout


@pytest.mark.slow
def test_train_recipe_esco_by_name_and_code_with_uris(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fixtures_dir: Path
) -> None:
    """Real MiniLM, the packaged recipe as shipped, on the small ESCO fixture."""
    monkeypatch.setenv("AUTOCODER_HOME", str(tmp_path / "home"))
    _ok(["taxonomy", "import", "esco", str(fixtures_dir / "esco_mini")])
    out = json.loads(_ok(["train", "--recipe", "esco", "--output", str(tmp_path / "model")]))
    model = Path(out["model"])
    cfg = json.loads((model / "config.json").read_text())
    assert cfg["metadata"]["recipe"]["name"] == "esco-mlp"
    saved = load_recipe(model / "recipe.toml")  # the recipe applied
    assert saved.model_dump() == cfg["metadata"]["recipe"]
    shipped = load_recipe(resource_dir("training") / "esco.toml")
    fitted = cfg["metadata"].get("combine", {}).get("retrieval_weight")
    weight = shipped.combine.retrieval_weight if fitted is None else fitted
    assert saved.combine.retrieval_weight == weight and saved.name == shipped.name
    pd.DataFrame({"id": ["a", "b"], "title": ["software developer", "army officer"]}).to_csv(
        tmp_path / "in.csv", index=False
    )
    _ok(["code", str(tmp_path / "in.csv"), "-o", str(tmp_path / "out.csv"), "--model", str(model)])
    coded = pd.read_csv(tmp_path / "out.csv", dtype=str)
    esco = import_esco(fixtures_dir / "esco_mini")
    assert list(coded["code_1"]) == ["2512.4", "0110.1"]
    for i in (1, 2, 3):  # every candidate's URI is the ESCO URI of its code
        assert [esco.get(c).uri for c in coded[f"code_{i}"]] == list(coded[f"uri_{i}"])


@pytest.mark.slow
@pytest.mark.parametrize("recipe", ["esco-history", "esco-history-codes", "esco-history-head"])
def test_esco_history_recipe_fine_tunes_on_the_examples_and_codes_on_that_embedder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fixtures_dir: Path, recipe: str
) -> None:
    """The documented coded-history recipes end to end on the small ESCO fixture: the embedder
    is fine-tuned on the stored examples (MNRL pairs, or as a classifier with the labels), the
    index and the coding use it."""
    from autocoder.classify.codehead import load_code_head
    from autocoder.classify.recipe import train_from_recipe
    from autocoder.workspace import Workspace

    home = tmp_path / "home"
    monkeypatch.setenv("AUTOCODER_HOME", str(home))
    _ok(["taxonomy", "import", "esco", str(fixtures_dir / "esco_mini")])
    with pytest.raises(ValueError, match="pairs_from = 'examples' but the train split holds 0"):
        train_from_recipe(recipe, tmp_path / "none", workspace=Workspace.resolve(home))
    history = pd.DataFrame(
        {
            "title": ["Java coder", "backend engineer", "platoon leader", "infantry captain"],
            "code": ["2512.4", "2512.4", "0110.1", "0110.1"],
        }
    )
    history.to_csv(tmp_path / "history.csv", index=False)
    _ok(["examples", "add", str(tmp_path / "history.csv"), "--code-column", "code",
         "--taxonomy", "esco", "--source", "history"])  # fmt: skip
    out = json.loads(_ok(["train", "--recipe", recipe, "--output", str(tmp_path / "model")]))
    model = Path(out["model"])
    tuned = json.loads((model / "embedder" / "autocoder_finetune.json").read_text())
    cfg = json.loads((model / "config.json").read_text())
    assert cfg["metadata"]["recipe"]["name"] == recipe
    if recipe == "esco-history":
        assert tuned["pairs"] == len(history)  # the examples only, not the label rows
    else:  # a classifier over the occupations: the train split's examples twice (`repeats`),
        # no other train rows, and the preferred and alternative labels once, less those in the
        # validation split (the head's temperature is fitted there)
        from autocoder.classify.data import load_training_data
        from autocoder.examples.store import example_key

        esco = import_esco(fixtures_dir / "esco_mini")
        data = load_training_data(home / cfg["metadata"]["dataset"]["path"])
        held = {example_key(t) for t in data["validation"]["title"]}
        labels = [t for c in esco.leaves() for t in (c.title, *c.alt_titles) if t.strip()]
        fine_tuned = [t for t in labels if example_key(t) not in held]
        assert tuned["objective"] == "codes"
        assert tuned["label_rows"] == len(fine_tuned) < len(labels)
        assert tuned["texts"] == 2 * cfg["metadata"]["examples"]["train_rows"] + len(fine_tuned)
        head = load_code_head(model / "embedder")  # the trained head travels with the embedder
        assert sorted(head.codes) == sorted(c.code for c in esco.leaves())
    assert cfg["params"]["head_init"] == ("embedder" if recipe == "esco-history-head" else "random")
    assert cfg["metadata"]["examples"]["train_rows"] + cfg["metadata"]["examples"][
        "validation_rows"
    ] == len(history)
    emb = f'embedder.model="{model / "embedder"}"'
    _ok(["--set", emb, "--set", 'taxonomy.default="esco"', "index", "build"])
    pd.DataFrame({"id": ["a", "b"], "title": ["Java coder", "army officer"]}).to_csv(
        tmp_path / "in.csv", index=False
    )
    _ok(["--set", emb, "code", str(tmp_path / "in.csv"), "-o", str(tmp_path / "out.csv"),
         "--model", str(model)])  # fmt: skip
    coded = pd.read_csv(tmp_path / "out.csv", dtype=str)
    assert list(coded["code_1"]) == ["2512.4", "0110.1"]
