from __future__ import annotations

import json

import numpy as np
import pytest

from autocoder.skills.data import SkillCatalog
from autocoder.skills.matcher import (
    META_FILE,
    MatcherRecipe,
    MatcherRecipeError,
    PairConfig,
    TrainConfig,
    build_pairs,
    load_matcher,
    load_or_train,
    load_recipe,
    surface_forms,
)
from autocoder.taxonomy.esco import import_esco


@pytest.fixture(scope="module")
def mini_catalog(fixtures_dir) -> SkillCatalog:
    return SkillCatalog.from_taxonomy(import_esco(fixtures_dir / "esco_mini"))


def test_catalog_from_the_esco_fixture(mini_catalog) -> None:
    assert len(mini_catalog) == 4
    i = mini_catalog.labels.index("lead a team")
    assert "manage a team" in mini_catalog.alt_labels[i]
    assert surface_forms(mini_catalog, i)[0] == "lead a team"


def test_build_pairs_targets_preferred_labels_from_every_source(mini_catalog) -> None:
    pairs = build_pairs(mini_catalog, PairConfig(alt_per_skill=5, templates_per_skill=3))
    assert set(pairs["positive"]) <= set(mini_catalog.labels)
    assert set(pairs["source"]) == {"alt", "description", "template"}
    assert ("manage a team", "lead a team") in set(zip(pairs.anchor, pairs.positive, strict=True))
    assert not pairs.duplicated(["anchor", "positive"]).any()
    capped = build_pairs(mini_catalog, PairConfig(max_pairs=5))
    assert len(capped) <= 5


def test_skillspan_pairs_link_spans_by_jaccard_and_skip_excluded(mini_catalog, tmp_path) -> None:
    rows = [
        {
            "tokens": ["You", "can", "program", "software", "well"],
            "tags_skill": ["O", "O", "B", "I", "O"],
            "tags_knowledge": ["O"] * 5,
        },
        {
            "tokens": ["We", "lead", "a", "team"],
            "tags_skill": ["O", "B", "I", "I"],
            "tags_knowledge": ["O"] * 4,
        },
    ]
    span_file = tmp_path / "train.json"
    span_file.write_text("\n".join(json.dumps(r) for r in rows))
    excluded = tmp_path / "val.csv"
    excluded.write_text("sentence,span,sub_span,label\nWe lead a team,x,,lead a team\n")
    cfg = PairConfig(
        alt_per_skill=0,
        descriptions=False,
        templates_per_skill=0,
        skillspan_path=str(span_file),
        exclude_sentences=[str(excluded)],
    )
    pairs = build_pairs(mini_catalog, cfg)
    assert pairs[["anchor", "positive"]].values.tolist() == [
        ["You can program software well", "develop software"]
    ]


def test_load_recipe_reports_bad_files(tmp_path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[train]\nepochz = 2\n")
    with pytest.raises(MatcherRecipeError, match="(?s)bad.toml.*epochz"):
        load_recipe(bad)
    with pytest.raises(MatcherRecipeError, match="not found"):
        load_recipe(tmp_path / "missing.toml")


def test_shipped_recipe_loads_and_drops_missing_data_paths(tmp_path) -> None:
    recipe = load_recipe()  # no data folder configured: its data sources are left out
    assert recipe.train.mode == "adapter" and recipe.pairs.jaccard_threshold == 0.66
    assert recipe.pairs.onet_path == "" and recipe.pairs.exclude_sentences == []
    moved = tmp_path / "r.toml"
    moved.write_text('[pairs]\nonet_path = "nowhere"\n')
    assert load_recipe(moved).pairs.onet_path == ""


def test_shipped_recipe_paths_start_from_the_configured_data_dir(tmp_path) -> None:
    from autocoder.resources import resource_dir

    shipped = (resource_dir("training") / "skill_matcher.toml").read_text()
    assert "../" not in shipped and "/tmp" not in shipped  # nothing names a machine
    (tmp_path / "onet_29.2").mkdir()
    (tmp_path / "skillspan" / "json").mkdir(parents=True)
    (tmp_path / "skillspan" / "json" / "train.json").write_text("[]")
    recipe = load_recipe(data_dir=tmp_path)
    assert recipe.pairs.onet_path == str(tmp_path / "onet_29.2")
    assert recipe.pairs.skillspan_path == str(tmp_path / "skillspan" / "json" / "train.json")
    assert recipe.pairs.exclude_sentences == []  # not in this data folder: left out


def _tiny(mode: str) -> MatcherRecipe:
    return MatcherRecipe(
        name=f"tiny-{mode}",
        pairs=PairConfig(alt_per_skill=3, templates_per_skill=2),
        train=TrainConfig(
            mode=mode,
            batch_size=4,
            max_seq_length=16,
            trainable_layers=1,
            adapter_epochs=20,
            adapter_batch_size=4,
            patience=20,
            val_fraction=0.0,
        ),
    )


@pytest.mark.slow
def test_adapter_matcher_trains_once_and_pulls_anchors_to_their_labels(
    mini_catalog, tmp_path
) -> None:
    recipe = _tiny("adapter")
    path = load_or_train(
        tmp_path / "models", mini_catalog, recipe, cache_dir=tmp_path / "c", show_progress=False
    )
    meta = json.loads((path / META_FILE).read_text())
    assert meta["mode"] == "adapter" and meta["history"][-1]["train"] < meta["history"][0]["train"]
    stamp = (path / META_FILE).stat().st_mtime_ns
    again = load_or_train(tmp_path / "models", mini_catalog, recipe, cache_dir=tmp_path / "c")
    assert again == path and (path / META_FILE).stat().st_mtime_ns == stamp  # cached, not retrained
    emb = load_matcher(path, cache_dir=tmp_path / "c")
    labels = emb.encode(mini_catalog.labels)
    plain = emb.encode(["supervise a team"])
    adapted = emb.encode(["supervise a team"], is_query=True)
    target = mini_catalog.labels.index("lead a team")
    assert not np.allclose(plain, adapted)
    assert int(np.argmax(adapted @ labels.T)) == target
    # labels are the base encoder's vectors: they share its label cache, queries do not
    assert emb.label_model_id == emb.base.model_id != emb.model_id
    assert emb.model_id == load_matcher(path).model_id  # a content hash, stable across loads


@pytest.mark.slow
def test_full_mode_fine_tunes_with_the_sentence_transformers_trainer(
    mini_catalog, tmp_path
) -> None:
    path = load_or_train(tmp_path / "models", mini_catalog, _tiny("full"), show_progress=False)
    meta = json.loads((path / META_FILE).read_text())
    assert meta["mode"] == "full" and meta["steps"] >= 1
    vec = load_matcher(path).encode(["lead a team"])
    assert vec.shape == (1, 384) and abs(float(np.linalg.norm(vec)) - 1) < 1e-4
