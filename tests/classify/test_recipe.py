from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from autocoder.classify import data as D
from autocoder.classify.calibrate import DEFAULT_CONFORMAL_METHOD
from autocoder.classify.data import load_training_data
from autocoder.classify.model import load_model
from autocoder.classify.recipe import (
    Recipe,
    RecipeError,
    holdout_set,
    load_recipe,
    save_recipe,
    train_from_recipe,
)
from autocoder.config import EmbedderConfig
from autocoder.records import JobRecord
from autocoder.taxonomy.model import Code, Taxonomy
from autocoder.taxonomy.store import save_taxonomy
from autocoder.workspace import Workspace

from .conftest import HashEmbedder

RECIPE = """
name = "toy"
[data]
taxonomy = "toy"
holdout = "{holdout}"
title_duties_pairs = 1
val_fraction = 0.3
val_formats = ["title"]
[model]
hidden = 32
[loss]
name = "cdb"
params = {{ tau = 1.0 }}
[train]
epochs = 40
patience = 40
lr = 0.01
batch_size = 16
[calibration]
conformal_alpha = 0.2
"""


def _toy_taxonomy() -> Taxonomy:
    words = {
        "11-1": (
            "Nurse",
            [
                "ward nurse",
                "icu nurse",
                "clinic nurse",
                "nurse aide",
                "night nurse",
                "staff nurse",
                "nurse practitioner",
                "school nurse",
            ],
        ),
        "11-2": (
            "Cook",
            [
                "line cook",
                "head chef",
                "kitchen cook",
                "grill cook",
                "prep cook",
                "pastry chef",
                "sous chef",
                "chef de partie",
            ],
        ),
        "11-3": (
            "Driver",
            [
                "truck driver",
                "bus driver",
                "delivery driver",
                "taxi driver",
                "van driver",
                "lorry driver",
                "tram driver",
                "forklift driver",
            ],
        ),
    }
    codes = [Code("11", "Group", 1, "major")]
    for code, (title, alts) in words.items():
        codes.append(
            Code(
                code,
                title,
                2,
                "detail",
                parent="11",
                alt_titles=alts,
                tasks=[f"{title.lower()} tasks daily", f"work as {title.lower()}"],
            )
        )
    return Taxonomy("toy", "1", ["major", "detail"], codes)


def test_train_from_recipe_end_to_end(tmp_path) -> None:
    ws = Workspace.resolve(tmp_path / "home")
    save_taxonomy(ws, _toy_taxonomy())
    holdout = tmp_path / "dev.csv"
    pd.DataFrame(
        {"id": ["d1", "d2"], "title": ["Night Nurse", "sous chef"], "codes": ["11-1", "11-2"]}
    ).to_csv(holdout, index=False)
    recipe = tmp_path / "toy.toml"
    recipe.write_text(RECIPE.format(holdout=holdout))
    emb = HashEmbedder()
    out = train_from_recipe(recipe, tmp_path / "model", workspace=ws, embedder=emb)
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["classes"] == ["11-1", "11-2", "11-3"]
    assert cfg["metadata"]["taxonomy"] == {"name": "toy", "version": "1"}
    assert cfg["metadata"]["holdout"]["removed"] == 2
    assert cfg["params"]["loss"] == "cdb"
    assert cfg["conformal"]["alpha"] == 0.2 and cfg["conformal"]["threshold"] is not None
    saved = load_recipe(out / "recipe.toml")  # the recipe applied, not a copy of the file
    assert saved.model_dump() == cfg["metadata"]["recipe"] and saved.data.holdout == str(holdout)
    assert str(ws.root) not in json.dumps(cfg["metadata"]["dataset"])
    data = load_training_data(ws.root / cfg["metadata"]["dataset"]["path"])
    all_titles = {t.lower() for s in data.values() for t in s["title"]}
    assert "night nurse" not in all_titles and "sous chef" not in all_titles
    assert "icu nurse" in all_titles
    model = load_model(out, embedder=emb)
    recs = [JobRecord("icu nurse"), JobRecord("truck driver", "drives a truck")]
    assert list(model.predict(recs)) == ["11-1", "11-3"]
    sets = model.predict_sets(recs)
    assert all(s and s[0] == p for s, p in zip(sets, model.predict(recs), strict=True))
    assert np.isfinite(model.temperature_)


def test_recipe_errors(tmp_path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[model]\nhiden = 3\n")
    with pytest.raises(RecipeError, match="hiden"):
        load_recipe(bad)
    with pytest.raises(RecipeError, match="not found"):
        load_recipe(tmp_path / "missing.toml")


def test_default_recipe_is_valid() -> None:
    recipe = load_recipe()
    assert recipe.data.holdout == "onet-dev"
    assert recipe.loss.name in ("cross_entropy", "focal", "cdb")
    assert recipe.calibration.conformal_method == DEFAULT_CONFORMAL_METHOD == "lac"
    assert isinstance(recipe.embedder, EmbedderConfig)  # one definition of the embedder keys


def test_recipe_validation_at_the_edge(tmp_path) -> None:
    with pytest.raises(RecipeError, match="unknown loss 'fokal'"):
        load_recipe(overrides={"loss.name": "fokal"})
    with pytest.raises(RecipeError, match="cache"):
        load_recipe(overrides={"embedder.cache": "maybe"})
    # recipes saved in older model directories carry an empty data.release: still valid
    assert Recipe.model_validate({"data": {"release": "", "taxonomy": "x"}}).data.taxonomy == "x"
    with pytest.raises(RecipeError, match="data.release was removed"):
        load_recipe(overrides={"data.release": "/some/onet"})


def test_head_init_embedder_needs_a_codes_fine_tuned_linear_model() -> None:
    with pytest.raises(RecipeError, match="finetune.enabled = true.*model.hidden = 0"):
        load_recipe(overrides={"model.head_init": "embedder", "model.hidden": 512})
    recipe = load_recipe("esco-history-head")
    assert recipe.model.head_init == "embedder" and recipe.finetune.objective == "codes"
    with pytest.raises(RecipeError, match="finetune.objective = 'codes'"):
        load_recipe("esco-history-head", overrides={"finetune.objective": "pairs"})


def test_onet_head_is_the_default_recipe_with_a_fine_tuned_head() -> None:
    default, head = load_recipe(), load_recipe("onet-head")
    assert head.model.head_init == "embedder" and head.finetune.objective == "codes"
    assert not head.train.refit  # its dev titles stay unseen, for `autocoder calibrate`
    changed = {
        section
        for section in Recipe.model_fields
        if getattr(default, section) != getattr(head, section)
    }
    assert changed == {"name", "description", "finetune", "model", "train"}


def test_a_recipe_gives_only_what_differs_from_its_base(tmp_path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "mid.toml").write_text(
        'base = "classifier"\nname = "mid"\ndescription = "d"\n'
        '[train]\nepochs = 2\n[loss]\nname = "focal"\nparams = { gamma = 2.0 }\n'
    )
    (tmp_path / "top.toml").write_text(
        'base = "sub/mid.toml"\nname = "top"\ndescription = "t"\n[train]\nlr = 0.01\n'
    )
    default, top = load_recipe(), load_recipe(tmp_path / "top.toml")
    assert (top.name, top.description) == ("top", "t")
    assert top.train.epochs == 2 and top.train.lr == 0.01  # both levels, key by key
    assert top.train.batch_size == default.train.batch_size  # the rest from the packaged base
    assert top.loss.name == "focal" and top.loss.params == {"gamma": 2.0}
    assert top.data == default.data and top.model == default.model
    # overrides apply after the bases
    assert load_recipe(tmp_path / "top.toml", {"train.epochs": 5}).train.epochs == 5


NAMED = 'name = "mine"\ndescription = ""\n'


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ('base = "classifier"\n[train]\nepochs = 1\n', "a recipe with a base must give its own"),
        ('base = "nowhere.toml"\n' + NAMED, "its base 'nowhere.toml' is not a file"),
        ('base = "clasifier"\n' + NAMED, "base 'clasifier'.*packaged recipe"),
        ("base = 3\n" + NAMED, "base must be a packaged recipe's name"),
        ('base = "classifier"\n' + NAMED + "[train]\nepoks = 1\n", "epoks"),  # merged, validated
    ],
)
def test_recipe_base_errors_name_the_recipe(tmp_path, text: str, error: str) -> None:
    path = tmp_path / "mine.toml"
    path.write_text(text)
    with pytest.raises(RecipeError, match=f"mine.toml(.|\\n)*{error}"):
        load_recipe(path)


def test_recipe_bases_in_a_cycle_are_an_error(tmp_path) -> None:
    (tmp_path / "a.toml").write_text('base = "b.toml"\nname = "a"\ndescription = ""\n')
    (tmp_path / "b.toml").write_text('base = "a.toml"\nname = "b"\ndescription = ""\n')
    with pytest.raises(RecipeError, match=r"cycle \(a.toml -> b.toml -> a.toml\)"):
        load_recipe(tmp_path / "a.toml")


def test_packaged_recipes_with_a_base_save_every_key(tmp_path) -> None:
    head = load_recipe("onet-head")
    path = save_recipe(head, tmp_path)
    assert "base" not in path.read_text()
    assert load_recipe(path) == head  # the saved recipe stands alone
    assert load_recipe("esco-history-head").data == load_recipe("esco-history").data


def test_onet_dev_holdout_needs_the_taxonomy_release(tmp_path) -> None:
    taxonomy = _toy_taxonomy()  # no holdout, no source release
    with pytest.raises(RecipeError, match="needs the O\\*NET release"):
        holdout_set(load_recipe(), taxonomy)
    taxonomy.holdout = "2 titles listed in dev.csv"
    assert holdout_set(load_recipe(), taxonomy) == (
        set(),
        "taxonomy import holdout: 2 titles listed in dev.csv",
    )
    assert holdout_set(load_recipe(overrides={"data.holdout": "none"}), taxonomy)[1] == "none"


def test_overrides() -> None:
    recipe = load_recipe(overrides={"loss.name": "focal", "train.epochs": 3})
    assert recipe.loss.name == "focal" and recipe.train.epochs == 3


def test_refit_trains_on_dev_titles_and_keeps_calibration(tmp_path, monkeypatch) -> None:
    # as if the first fit had left some stored example titles out of training
    monkeypatch.setattr(D, "untrained_example_keys", lambda splits, also_trained=(): ["ab12"])
    ws = Workspace.resolve(tmp_path / "home")
    save_taxonomy(ws, _toy_taxonomy())
    holdout = tmp_path / "dev.csv"
    pd.DataFrame(
        {"id": ["d1", "d2"], "title": ["Night Nurse", "sous chef"], "codes": ["11-1", "11-2"]}
    ).to_csv(holdout, index=False)
    recipe = tmp_path / "toy.toml"
    text = RECIPE.format(holdout=holdout).replace("[train]\n", "[train]\nrefit = true\n")
    recipe.write_text(text + "[combine]\nretrieval_weight = 0.25\n")
    emb = HashEmbedder()
    from autocoder.coding.retrieval import RetrievalCoder
    from autocoder.index import MemoryIndex

    index = MemoryIndex()
    index.build(_toy_taxonomy(), emb)
    retrieval = RetrievalCoder(index, emb, classes=_toy_taxonomy().leaf_codes()).fit()
    out = train_from_recipe(
        recipe, tmp_path / "model", workspace=ws, embedder=emb, retrieval=retrieval
    )
    meta = json.loads((out / "config.json").read_text())["metadata"]
    # dev figures come from the first fit, on clean and noisy titles
    assert meta["dev"]["n"] == 2
    assert set(meta["dev"]["clean"]) == {
        "top1",
        "top3",
        "top5",
        "macro_top1",
        "ece",
        "coded_at_threshold",
        "precision_at_threshold",
    }
    for kind in ("clean", "noisy"):  # figures over n=2 titles: ordered, in steps of 1/2
        fig = meta["dev"][kind]
        assert fig["top1"] <= fig["top3"] <= fig["top5"]
        assert {2 * fig["top1"], 2 * fig["top5"]} <= {0.0, 1.0, 2.0}
    # the shipped network was trained again on every row, the 2 dev titles included
    first_rows = meta["dataset"]["train_rows"] + meta["dataset"]["validation_rows"]
    assert meta["refit"]["rows"] >= first_rows + 2
    assert meta["refit"]["epochs"] >= 1
    assert meta["examples"]["untrained_keys"] == []  # the refit trained on every example
    assert meta["recipe"]["combine"]["retrieval_weight"] == 0.25
    # too few held-out source titles to fit the mixture: the recipe's weight, and dev figures
    assert meta["combine"]["fitted_on"] == "recipe" and meta["combine"]["retrieval_weight"] == 0.25
    # the retrieval it was fitted with is recorded: coding mixes that retrieval back in
    assert meta["combine"]["retrieval"] == {"aggregation": "max", "temperature": 0.05}
    combined = meta["dev_combined"]["clean"]
    assert combined["top1"] <= combined["top3"] <= combined["top5"]
    assert {2 * combined["top1"], 2 * combined["top5"]} <= {0.0, 1.0, 2.0}
    model = load_model(out, embedder=emb)
    assert np.isfinite(model.temperature_) and model.temperature_ != 1.0
    assert model.conformal_threshold_ is not None
    assert list(model.predict([JobRecord("sous chef")])) == ["11-2"]


def test_extra_sources_are_weighted_and_keep_the_dev_titles_out(tmp_path) -> None:
    from autocoder.classify.recipe import build_rows

    folder = tmp_path / "data" / "bls"
    folder.mkdir(parents=True)
    pd.DataFrame(
        {
            "2018 SOC Code": ["11-1", "11-2", "11-2"],
            "2018 SOC Direct Match Title": ["Charge Nurse", "Sous Chef", "Saucier"],
        }
    ).to_csv(folder / "soc_2018_direct_match_title_file.csv", index=False)
    taxonomy = _toy_taxonomy()
    recipe = load_recipe(
        overrides={"data.sources": ["bls"], "data.sources_dir": str(tmp_path / "data")}
    )
    rows = build_rows(recipe, taxonomy, holdout={"sous chef"})
    from_bls = {r["title"]: r for r in rows if r["provenance"] == "source:bls_direct_match"}
    assert set(from_bls) == {"Charge Nurse", "Saucier"}  # the dev title is kept out
    assert from_bls["Saucier"]["code"] == "11-2" and from_bls["Saucier"]["weight"] == 1.0
    # a missing source is skipped (logged), not fatal
    recipe = load_recipe(
        overrides={"data.sources": ["esco_crosswalk"], "data.sources_dir": str(tmp_path)}
    )
    assert not [r for r in build_rows(recipe, taxonomy) if r["provenance"].startswith("source:")]


def test_row_weights_reach_the_fingerprint() -> None:
    from autocoder.classify.data import build_dataset, fingerprint, row_weights

    base = {"title": "cook", "duties": "", "input_format": "title", "provenance": "p"}
    one = build_dataset(
        [{**base, "text": "cook", "code": "a"}, {**base, "text": "chef", "code": "b"}]
    )
    assert row_weights(one) is None
    light = build_dataset(
        [
            {**base, "text": "cook", "code": "a", "weight": 0.3},
            {**base, "text": "chef", "code": "b"},
        ]
    )
    assert list(row_weights(light)) == [0.3, 1.0]
    assert fingerprint(one) != fingerprint(light)


def test_noisy_validation_copies_title_rows_as_the_coder_sees_them() -> None:
    from autocoder.classify.data import build_dataset
    from autocoder.classify.recipe import validation_rows

    base = {"duties": "", "input_format": "title", "provenance": "p"}
    rows = [
        {**base, "text": t, "title": t, "code": c}
        for t, c in [
            ("Line Cook", "a"),
            ("Head Chef", "a"),
            ("Staff Nurse", "b"),
            ("ICU Nurse", "b"),
        ]
    ]
    rows.append(
        {
            "text": "cooks food",
            "title": "",
            "duties": "cooks food",
            "input_format": "duties",
            "code": "a",
            "provenance": "p",
        }
    )
    val = build_dataset(rows)
    records, codes, acceptable = validation_rows(val, noisy_share=0.5, seed=3)
    assert len(records) == 5 + 2 and len(codes) == len(acceptable) == 7
    for record, code in zip(records[5:], codes[5:], strict=True):
        original = next(r for r in rows if r["title"].lower() in record.title.lower())
        assert code == original["code"] and not record.duties
    assert validation_rows(val, noisy_share=0.0, seed=3)[0] == records[:5]


def _store_examples(ws: Workspace, rows: list[dict]) -> str:
    """Write the toy taxonomy's examples store as given (codes unchecked, as an older store
    whose taxonomy has since lost a code); returns its content hash."""
    from autocoder.examples.store import COLUMNS, ExampleStore, example_key

    base = {"file": "history.csv", "added_at": "2026-01-01", "annotator": "import"}
    base |= {"weight": 1.0, "description": "", "source": "history"}
    table = pd.DataFrame([{**base, **r} for r in rows])
    table["row"] = range(1, len(table) + 1)
    table["key"] = table["title"].map(example_key)
    store = ExampleStore.of(ws, "toy")
    store.write(table[list(COLUMNS)])
    return store.content_hash()


def test_stored_examples_are_weighted_training_rows_recorded_in_the_model(tmp_path) -> None:
    ws = Workspace.resolve(tmp_path / "home")
    save_taxonomy(ws, _toy_taxonomy())
    holdout = tmp_path / "dev.csv"
    pd.DataFrame({"id": ["d1"], "title": ["Night Nurse"], "codes": ["11-1"]}).to_csv(
        holdout, index=False
    )
    digest = _store_examples(
        ws,
        [
            # only the example says so: an airship captain cooks here
            {"title": "sky captain", "description": "flies the airship", "code": "11-2",
             "weight": 3.0},
            {"title": "zeppelin steward", "code": "11-3"},
            {"title": "night  nurse", "code": "11-1"},  # the dev title: never a training row
            {"title": "moon miner", "code": "11-9"},  # no longer a code of the taxonomy
        ],
    )  # fmt: skip
    recipe = tmp_path / "toy.toml"
    recipe.write_text(RECIPE.format(holdout=holdout))
    emb = HashEmbedder()
    overrides = {"data.examples_weight": 2.0}
    out = train_from_recipe(recipe, tmp_path / "m", workspace=ws, embedder=emb, overrides=overrides)
    meta = json.loads((out / "config.json").read_text())["metadata"]
    seen = meta["examples"]
    assert seen["enabled"] and seen["content_hash"] == digest and len(digest) == 16
    assert (seen["stored"], seen["rows"], seen["held_out"]) == (4, 2, 1)
    assert seen["unknown_code"] == 1 and seen["unknown_codes"] == ["11-9"]
    assert seen["train_rows"] + seen["validation_rows"] == 2 and seen["weight"] == 2.0
    assert seen["provenance"] == {"examples:history": 2}
    assert str(tmp_path) not in json.dumps(seen)
    assert meta["recipe"]["data"]["examples"] is True
    assert meta["recipe"]["data"]["examples_weight"] == 2.0
    data = load_training_data(ws.root / meta["dataset"]["path"])
    from_store = {
        t: w
        for s in data.values()
        for t, p, w in zip(s["title"], s["provenance"], s["weight"], strict=True)
        if p == "examples:history"
    }
    assert from_store == {"sky captain": 6.0, "zeppelin steward": 2.0}  # stored weight x 2
    assert "night nurse" not in {t.lower() for s in data.values() for t in s["title"]}
    # the example titles the model never trained on (validation, in no train row), as digests
    from autocoder.examples.store import example_key, key_digest

    trained = {example_key(t) for t in data["train"]["title"]}
    untrained = {
        key_digest(example_key(t))
        for t, p in zip(data["validation"]["title"], data["validation"]["provenance"], strict=True)
        if p == "examples:history" and example_key(t) not in trained
    }
    assert sorted(untrained) == seen["untrained_keys"]
    assert "sky captain" not in json.dumps(seen)  # digests, not the titles
    sky = JobRecord("sky captain", "flies the airship")
    assert list(load_model(out, embedder=emb).predict([sky])) == ["11-2"]
    # examples = false: the store is not read, and the model says so
    off = {"data.examples": False}
    out = train_from_recipe(recipe, tmp_path / "m2", workspace=ws, embedder=emb, overrides=off)
    meta = json.loads((out / "config.json").read_text())["metadata"]
    assert meta["examples"] == {"enabled": False}
    data = load_training_data(ws.root / meta["dataset"]["path"])
    assert not any(p.startswith("examples:") for s in data.values() for p in s["provenance"])


def test_codes_objective_leaves_the_validation_titles_labels_out_of_fine_tuning(caplog) -> None:
    """The labels a codes-objective embedder is fine-tuned on skip the validation split's
    titles, so a validation example whose title is also a label stays untrained (``examples
    fit`` holds it out) and the head's temperature is fitted on titles it never saw."""
    from datasets import Dataset, DatasetDict

    from autocoder.classify.recipe import finetune_label_rows, finetune_labels
    from autocoder.examples.store import example_key, key_digest

    taxonomy = _toy_taxonomy()
    recipe = load_recipe("esco-history-head")
    every = finetune_label_rows(recipe, taxonomy)
    assert len(every) == sum(1 + len(c.alt_titles) for c in taxonomy.leaves())
    held = ["Night  Nurse!", "Theatre Nurse"]  # "night nurse" is a label of 11-1
    rows = finetune_label_rows(recipe, taxonomy, held_out=held)
    assert ("night nurse", "11-1") in every and ("night nurse", "11-1") not in rows
    assert len(rows) == len(every) - 1
    assert finetune_label_rows(load_recipe(), taxonomy) == []  # no codes objective, no labels
    splits = DatasetDict(
        {
            "train": Dataset.from_dict({"title": ["ward nurse"], "provenance": ["examples:h"]}),
            "validation": Dataset.from_dict(
                {"title": held, "provenance": ["examples:h", "examples:h"]}
            ),
        }
    )
    untrained = D.untrained_example_keys(
        splits, also_trained=finetune_labels(recipe, taxonomy, held_out=held)
    )
    assert untrained == sorted(key_digest(example_key(t)) for t in held)
    # fine-tuned on every label instead, the night nurse example would not be untrained
    assert D.untrained_example_keys(splits, also_trained=[t for t, _ in every]) == [
        key_digest(example_key("Theatre Nurse"))
    ]
