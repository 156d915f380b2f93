from pathlib import Path

import pytest
from pydantic import BaseModel, ConfigDict

from autocoder.tomlfile import apply_overrides, deep_merge, load_toml_model, read_toml


class _Err(ValueError):
    pass


class _Train(BaseModel):
    model_config = ConfigDict(extra="forbid")
    epochs: int = 1


class _Recipe(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = "x"
    train: _Train = _Train()


def test_deep_merge_merges_tables_and_replaces_other_values() -> None:
    base = {"name": "a", "train": {"epochs": 2, "lr": 0.1}, "loss": {"params": {"tau": 1.0}}}
    update = {"name": "b", "train": {"epochs": 3}, "loss": {"params": {"gamma": 2}}, "tags": [1]}
    assert deep_merge(base, update) == {
        "name": "b",
        "train": {"epochs": 3, "lr": 0.1},
        "loss": {"params": {"tau": 1.0, "gamma": 2}},
        "tags": [1],
    }
    assert base["train"] == {"epochs": 2, "lr": 0.1}  # inputs unchanged
    assert deep_merge({"kinds": [1, 2]}, {"kinds": [3]}) == {"kinds": [3]}
    assert deep_merge({"train": {"epochs": 1}}, {"train": 5}) == {"train": 5}


def test_apply_overrides_sets_nested_keys_creating_sections() -> None:
    raw = {"train": {"epochs": 2}}
    assert apply_overrides(raw, {"train.epochs": 5, "data.path": "a.csv", "name": "y"}) == {
        "train": {"epochs": 5},
        "data": {"path": "a.csv"},
        "name": "y",
    }
    assert apply_overrides({"a": 1}, None) == {"a": 1}


def test_errors_use_the_callers_class_and_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(_Err, match="widget not found: .*missing.toml"):
        read_toml(tmp_path / "missing.toml", error=_Err, what="widget")
    bad = tmp_path / "bad.toml"
    bad.write_text("name = \n")
    with pytest.raises(_Err, match="recipe .*bad.toml is not valid TOML"):
        read_toml(bad, error=_Err)
    typo = tmp_path / "typo.toml"
    typo.write_text("[train]\nepochz = 3\n")
    with pytest.raises(_Err, match="(?s)invalid recipe .*typo.toml.*epochz"):
        load_toml_model(typo, _Recipe, error=_Err)


def test_load_toml_model_applies_overrides(tmp_path: Path) -> None:
    good = tmp_path / "good.toml"
    good.write_text('name = "r"\n[train]\nepochs = 3\n')
    recipe = load_toml_model(good, _Recipe, overrides={"train.epochs": 7})
    assert (recipe.name, recipe.train.epochs) == ("r", 7)


def test_dump_toml_round_trips_a_recipe_shaped_dict() -> None:
    import tomllib

    from autocoder.tomlfile import dump_toml

    data = {
        "name": 'a "quoted" name',
        "weight": 0.4,
        "big": float("inf"),
        "n": 3,
        "on": True,
        "unset": None,
        "data": {"kinds": ["title", "task"], "path": "dev.csv", "empty": []},
        "loss": {"name": "cdb", "params": {"tau": 1.0, "momentum": 0.5}},
    }
    text = dump_toml(data, header="first line\nsecond")
    assert text.startswith("# first line\n# second\n")
    expected = {k: v for k, v in data.items() if k != "unset"}
    assert tomllib.loads(text) == expected
    with pytest.raises(TypeError, match="cannot write"):
        dump_toml({"x": object()})
