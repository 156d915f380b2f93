"""Retraining on reviewers' answers: feedback filtering, weighted warm start, the model dir."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from autocoder import api
from autocoder.classify.model import EmbeddingClassifier, load_model
from autocoder.classify.recipe import dev_rows, train_from_recipe
from autocoder.classify.train import epoch_order
from autocoder.records import JobRecord
from autocoder.review.retrain import feedback_rows, fit_with_feedback, refit_dev_rows, retrain
from autocoder.workspace import Workspace
from tests.fakes import HashingEmbedder

CODES = ["11-1011.00", "15-1252.00", "29-1141.00"]


def _feedback(rows: list[dict]) -> pd.DataFrame:
    base = {
        "description": "",
        "emerging": False,
        "cannot_code": False,
        "note": "",
        "annotator": "a@x",
        "created_at": "2026-01-01T00:00:00",
        "model_version": "m1",
        "project": "p1",
    }
    return pd.DataFrame([{**base, **r} for r in rows])


def test_feedback_rows_filters_votes_and_reports() -> None:
    fb = _feedback(
        [
            {"id": "1", "title": "code ninja", "code": "15-1252.00"},
            {"id": "2", "title": "mystery job", "code": "", "cannot_code": True},
            {"id": "3", "title": "prompt whisperer", "code": "", "emerging": True},
            {"id": "4", "title": "space miner", "code": "99-9999.00"},
            {"id": "5", "title": "ward sister", "code": "29-1141.00", "annotator": "a"},
            {
                "id": "5",
                "title": "ward sister",
                "code": "11-1011.00",
                "annotator": "b",
                "created_at": "2026-01-02",
            },
            {"id": "5", "title": "ward sister", "code": "29-1141.00", "annotator": "c"},
            {"id": "6", "title": "", "code": ""},
        ]
    )
    rows = feedback_rows(fb, CODES)
    assert rows.counts == {
        "answers": 8,
        "cannot_code": 1,
        "emerging": 1,
        "no_code": 1,
        "unknown_code": 1,
        "conflicting_records": 1,
        "used": 2,
    }
    assert rows.unknown_codes == ["99-9999.00"]
    assert dict(zip(rows.rows["id"], rows.rows["code"], strict=True)) == {
        "1": "15-1252.00",
        "5": "29-1141.00",  # two of three annotators
    }
    assert rows.projects == ["p1"]
    assert rows.ids_hash == feedback_rows(fb.iloc[::-1], CODES).ids_hash
    assert rows.ids_hash != feedback_rows(fb.iloc[:1], CODES).ids_hash


def test_group_codes_picked_in_the_taxonomy_tree_are_reported_not_trained(
    fixtures_dir: Path,
) -> None:
    """A reviewer may pick a group node (e.g. '29-1141' or '11-0000') in the Taxonomy tag; only
    the model's classes (the leaf codes) are trained on, the others are listed."""
    from autocoder.taxonomy.onet import import_onet

    leaves = import_onet(fixtures_dir / "onet_mini").leaf_codes()
    fb = _feedback(
        [
            {"id": "1", "title": "ward nurse", "code": "29-1141"},
            {"id": "2", "title": "top boss", "code": "11-0000"},
            {"id": "3", "title": "staff nurse", "code": "29-1141.00"},
        ]
    )
    rows = feedback_rows(fb, leaves)
    assert rows.rows["code"].tolist() == ["29-1141.00"]
    assert rows.unknown_codes == ["11-0000", "29-1141"]
    assert rows.counts["unknown_code"] == 2 and rows.counts["used"] == 1
    assert rows.summary()["unknown_codes"] == ["11-0000", "29-1141"]


def test_feedback_rows_ties_go_to_the_latest_answer() -> None:
    fb = _feedback(
        [
            {"id": "1", "title": "t", "code": CODES[0], "created_at": "2026-01-03"},
            {"id": "1", "title": "t", "code": CODES[1], "created_at": "2026-01-02"},
        ]
    )
    assert feedback_rows(fb, CODES).rows["code"].tolist() == [CODES[0]]


def test_feedback_rows_bad_input() -> None:
    with pytest.raises(ValueError, match="lacks columns"):
        feedback_rows(pd.DataFrame({"id": ["1"]}), CODES)
    empty = _feedback([{"id": "r9", "title": "", "code": CODES[0]}])
    with pytest.raises(ValueError, match="'r9'.*no title or description"):
        feedback_rows(empty, CODES)


def test_epoch_order_repeats_rows_by_weight() -> None:
    gen = torch.Generator().manual_seed(0)
    order = epoch_order(4, np.array([1.0, 3.0, 0.0, 2.0]), gen)
    assert sorted(order.tolist()) == [0, 1, 1, 1, 3, 3]
    w = np.array([1.0, 0.25])
    frac = [int((epoch_order(2, w, gen) == 1).sum()) for _ in range(400)]
    assert 0.15 < np.mean(frac) < 0.35  # 0.25 in expectation (sd 0.022)
    assert sorted(epoch_order(3, None, gen).tolist()) == [0, 1, 2]


def _blobs(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(3, 8)) * 3
    X = np.vstack([c + rng.normal(size=(30, 8)) for c in centers]).astype(np.float32)
    return X, np.repeat(np.array(["a", "b", "c"]), 30)


def test_warm_start_continues_from_fitted_weights() -> None:
    X, y = _blobs()
    clf = EmbeddingClassifier(hidden=16, epochs=30, lr=0.05, val_fraction=0.0, seed=0).fit(X, y)
    before = [p.detach().clone() for p in clf.network_.parameters()]
    # a point beyond class c, labeled "a": with a large weight the warm-started model learns it
    a, c = X[y == "a"].mean(axis=0), X[y == "c"].mean(axis=0)
    odd = (c + 2.0 * (c - a))[None, :].astype(np.float32)
    assert clf.predict(odd)[0] == "c"
    fit_with_feedback(clf, X, y, odd, ["a"], feedback_weight=40, epochs=15, lr=0.05)
    assert clf.predict(odd)[0] == "a"
    moved = sum(
        float((p.detach() - b).abs().sum())
        for p, b in zip(clf.network_.parameters(), before, strict=True)
    )
    assert moved > 0
    # warm start keeps the network object's shape and refuses other classes
    with pytest.raises(ValueError, match="warm_start needs the classes"):
        clf.fit(X, np.where(y == "a", "z", y))


def test_warm_start_is_not_a_fresh_fit() -> None:
    X, y = _blobs()
    clf = EmbeddingClassifier(hidden=16, epochs=30, lr=0.05, val_fraction=0.0, seed=0).fit(X, y)
    state = {k: v.clone() for k, v in clf.network_.state_dict().items()}
    clf.warm_start, clf.epochs, clf.lr = True, 1, 1e-9
    clf.fit(X, y)
    for k, v in clf.network_.state_dict().items():
        assert torch.allclose(v, state[k], atol=1e-5), k


RECIPE = """
name = "mini"
[data]
taxonomy = "onet"
holdout = "{holdout}"
title_duties_pairs = 1
val_fraction = 0.3
[finetune]
enabled = false
[model]
hidden = 32
[train]
epochs = 40
patience = 40
lr = 0.01
batch_size = 16
[calibration]
conformal_alpha = 0.2
"""


@pytest.fixture
def mini_model(tmp_path: Path, fixtures_dir: Path) -> tuple[Path, Workspace, HashingEmbedder]:
    ws = Workspace.resolve(tmp_path / "home")
    dev = tmp_path / "dev.csv"
    pd.DataFrame(
        {
            "id": ["d1", "d2"],
            "title": ["Staff Nurse", "Company President"],
            "codes": ["29-1141.00", "11-1011.00"],
        }
    ).to_csv(dev, index=False)
    recipe = tmp_path / "mini.toml"
    recipe.write_text(RECIPE.format(holdout=dev))
    api.import_taxonomy("onet", fixtures_dir / "onet_mini", ws)
    emb = HashingEmbedder(64)
    out = train_from_recipe(recipe, tmp_path / "model", workspace=ws, embedder=emb)
    return out, ws, emb


def test_retrain_learns_the_answers_and_records_them(mini_model, tmp_path: Path) -> None:
    model_dir, ws, emb = mini_model
    answers = {
        "kindergarten doctor": "29-1221.00",
        "chief green officer": "11-1011.03",
        "pipeline plumber for data": "15-1243.01",
        "bedside carer": "29-1141.00",
    }
    fb = _feedback(
        [{"id": f"r{i}", "title": t, "code": c} for i, (t, c) in enumerate(answers.items())]
        + [
            {"id": "x1", "title": "ai prompt crafter", "code": "", "emerging": True},
            {"id": "x2", "title": "asdf", "code": "", "cannot_code": True},
            {"id": "x3", "title": "astronaut", "code": "99-9999.00"},
            {"id": "x4", "title": "health worker", "code": "29-0000"},  # a group, not a class
        ]
    )
    records = [JobRecord(t) for t in answers]
    before = load_model(model_dir, embedder=emb).predict(records)
    result = retrain(
        model_dir,
        tmp_path / "model2",
        fb,
        workspace=ws,
        embedder=emb,
        feedback_weight=5,
        epochs=15,
        lr=0.01,
    )
    after_model = load_model(tmp_path / "model2", embedder=emb)
    assert list(after_model.predict(records)) == list(answers.values())
    assert list(before) != list(answers.values())  # the answers taught it something
    cfg = json.loads((tmp_path / "model2" / "config.json").read_text())
    seen = cfg["metadata"]["feedback"]
    assert seen["used"] == 4 and seen["weight"] == 5.0 and seen["projects"] == ["p1"]
    assert seen["lr"] == 0.01 and seen["epochs"] == 15
    assert seen["emerging"] == 1 and seen["cannot_code"] == 1 and seen["unknown_code"] == 2
    assert seen["unknown_codes"] == ["29-0000", "99-9999.00"] and len(seen["ids_hash"]) == 16
    assert cfg["metadata"]["retrained_from"] == model_dir.name  # a name, not a machine path
    assert cfg["classes"] == json.loads((model_dir / "config.json").read_text())["classes"]
    assert result.dev_source.endswith("dev.csv") and result.before["n"] == 2
    assert set(result.after) == {"n", "top1", "top5", "ece"}
    assert (tmp_path / "model2" / "recipe.toml").exists()
    assert json.loads((tmp_path / "model2" / "retrain.json").read_text())["feedback_weight"] == 5.0


def test_retrain_errors(mini_model, tmp_path: Path) -> None:
    model_dir, ws, emb = mini_model
    nothing = _feedback([{"id": "1", "title": "x", "code": "", "cannot_code": True}])
    with pytest.raises(ValueError, match="no usable feedback"):
        retrain(model_dir, tmp_path / "m2", nothing, workspace=ws, embedder=emb)
    ok = _feedback([{"id": "1", "title": "nurse", "code": "29-1141.00"}])
    with pytest.raises(ValueError, match="must differ"):
        retrain(model_dir, model_dir, ok, workspace=ws, embedder=emb)
    with pytest.raises(ValueError, match="epochs must be >= 1 and lr > 0"):
        retrain(model_dir, tmp_path / "m2", ok, workspace=ws, embedder=emb, lr=0.0)


def test_retrain_pretrained_loads_the_packaged_model(tmp_path: Path) -> None:
    """``--model pretrained`` is the packaged model (it used to be read as a directory named
    "pretrained"): it loads, and the next check (usable feedback) is what stops it here."""
    ws = Workspace.resolve(tmp_path / "home")
    nothing = _feedback([{"id": "1", "title": "x", "code": "", "cannot_code": True}])
    with pytest.raises(ValueError, match="no usable feedback"):
        retrain("pretrained", tmp_path / "m2", nothing, workspace=ws)


# --- the dev split retrain measures on (the recipe's holdout, never ``recipe.data.release``) ---
def _recipe_model(holdout: str) -> object:
    from types import SimpleNamespace

    from autocoder.classify.recipe import Recipe

    recipe = Recipe.model_validate({"data": {"taxonomy": "onet", "holdout": holdout}})
    return SimpleNamespace(metadata_={"recipe": recipe.model_dump(mode="json")})


VAL_SPLIT = {"validation": {"title": ["t"], "duties": [""], "codes": ["29-1141.00"]}}


def test_dev_split_onet_dev_comes_from_recipe_dev_table(
    tmp_path: Path, fixtures_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from autocoder.classify import recipe as R
    from autocoder.review.retrain import dev_split

    ws = Workspace.resolve(tmp_path / "home")
    api.import_taxonomy("onet", fixtures_dir / "onet_mini", ws)
    model = _recipe_model("onet-dev")
    rows, source = dev_split(model, ws, None, VAL_SPLIT)  # the real release dev split (empty here)
    assert source == "onet-dev" and list(rows.columns) == ["title", "description", "codes"]
    calls = []

    def fake_dev_table(recipe: object, taxonomy: object) -> pd.DataFrame:
        calls.append(taxonomy.source)  # type: ignore[attr-defined]
        return pd.DataFrame({"id": ["d1"], "title": ["Charge Nurse"], "codes": ["29-1141.00"]})

    monkeypatch.setattr(R, "dev_table", fake_dev_table)
    rows, source = dev_split(model, ws, None, VAL_SPLIT)
    assert len(calls) == 1 and calls[0].rstrip("/").endswith("onet_mini")  # taxonomy.source
    assert rows["title"].tolist() == ["Charge Nurse"] and source == "onet-dev"


def test_dev_split_taxonomy_holdout_dev_file_and_fallbacks(
    tmp_path: Path, fixtures_dir: Path
) -> None:
    from autocoder.review.retrain import dev_split

    dev = tmp_path / "dev.csv"
    dev.write_text("id,title,codes\nd1,Charge Nurse,29-1141.00\nd2,Pediatrician,29-1221.00\n")
    ws = Workspace.resolve(tmp_path / "home")
    api.import_taxonomy("onet", fixtures_dir / "onet_mini", ws, holdout=dev)
    rows, source = dev_split(_recipe_model("onet-dev"), ws, None, VAL_SPLIT)
    assert source == str(dev) and rows["codes"].tolist() == ["29-1141.00", "29-1221.00"]
    rows, source = dev_split(_recipe_model("none"), ws, None, VAL_SPLIT)
    assert source.startswith("validation split") and rows["title"].tolist() == ["t"]
    rows, source = dev_split(_recipe_model("none"), ws, dev, VAL_SPLIT)  # --dev wins
    assert source == str(dev) and len(rows) == 2
    # the recipe's dev table is gone: warn and measure on the validation split
    rows, source = dev_split(_recipe_model(str(tmp_path / "gone.csv")), ws, None, VAL_SPLIT)
    assert source.startswith("validation split")


def test_retrain_adds_the_stored_examples_once_beside_the_feedback(
    mini_model, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The store holds what `review pull` made of the feedback (source review:p1) and an
    office's history: the pulled answers are not counted twice, a dev title is no training row,
    the rest are base rows with their stored weights, and the model records it all."""
    from autocoder.examples.ops import add_rows, frame_rows
    from autocoder.examples.store import AddSpec, ExampleStore
    from autocoder.review import retrain as R
    from autocoder.taxonomy.store import load_taxonomy

    model_dir, ws, emb = mini_model
    answers = {"kindergarten doctor": "29-1221.00", "bedside carer": "29-1141.00"}
    fb = _feedback(
        [{"id": f"r{i}", "title": t, "code": c} for i, (t, c) in enumerate(answers.items())]
    )
    taxonomy, store = load_taxonomy(ws, "onet"), ExampleStore.of(ws, "onet")

    def add(source: str, rows: list[dict], weight: float = 1.0) -> None:
        spec = AddSpec("code", weight=weight)
        add_rows(store, taxonomy, frame_rows(pd.DataFrame(rows), spec, source=source, file=""))

    add("review:p1", [{"title": t, "code": c} for t, c in answers.items()])  # as review pull does
    add("review:p2", [{"title": "ward clerk nurse", "code": "29-1141.00"}])  # another project
    add("wave1", [
        {"title": "Bedside Carer!", "code": "29-1141.00"},  # a feedback answer again
        {"title": "data plumber", "code": "15-1243.01"},
        {"title": "staff nurse", "code": "29-1141.00"},  # a dev title
    ], weight=2.0)  # fmt: skip
    calls: list[dict] = []
    real = R.fit_with_feedback

    def spy(model, X_base, y_base, X_fb, y_fb, **kw):  # type: ignore[no-untyped-def]
        calls.append({"X": [*X_base, *X_fb], "y_base": list(y_base), "w": kw["base_weight"]})
        return real(model, X_base, y_base, X_fb, y_fb, **kw)

    monkeypatch.setattr(R, "fit_with_feedback", spy)
    # the model never trained on these stored titles; the retrain trains on all but the last
    from autocoder.examples.store import example_key, key_digest

    config = json.loads((model_dir / "config.json").read_text())
    untrained = ["data plumber", "Kindergarten doctor", "night porter"]
    config["metadata"]["examples"]["untrained_keys"] = [
        key_digest(example_key(t)) for t in untrained
    ]
    (model_dir / "config.json").write_text(json.dumps(config))
    result = retrain(model_dir, tmp_path / "m2", fb, workspace=ws, embedder=emb, epochs=2)
    seen = result.examples
    assert (seen["stored"], seen["in_feedback"], seen["held_out"], seen["rows"]) == (6, 3, 1, 2)
    assert seen["provenance"] == {"examples:review:p2": 1, "examples:wave1": 1}
    assert seen["content_hash"] == store.content_hash() and seen["replaced_rows"] == 0
    cfg = json.loads((tmp_path / "m2" / "config.json").read_text())
    assert cfg["metadata"]["retrain_examples"] == seen
    assert cfg["metadata"]["examples"]["untrained_keys"] == [key_digest("night porter")]
    (call,) = calls
    titles = [r.title.lower() for r in call["X"]]
    assert titles.count("kindergarten doctor") == 1 and titles.count("bedside carer") == 1
    assert "staff nurse" not in titles
    assert call["y_base"][-2:] == ["29-1141.00", "15-1243.01"]
    assert list(call["w"][-2:]) == [1.0, 2.0] and set(call["w"][:-2]) == {1.0}
    # --no-examples: the store is left alone
    off = retrain(model_dir, tmp_path / "m3", fb, workspace=ws, embedder=emb, epochs=1,
                  use_examples=False)  # fmt: skip
    assert off.examples == {"enabled": False} and calls[-1]["w"] is None


def test_retrain_says_the_calibration_is_gone_and_leaves_no_stale_one(
    mini_model, tmp_path: Path
) -> None:
    """A calibration belongs to one model: the retrained one has none (the old does not fit
    its scores, and one left in the output directory by an earlier model is removed)."""
    model_dir, ws, emb = mini_model
    fb = _feedback([{"id": "1", "title": "bedside carer", "code": "29-1141.00"}])
    first = retrain(model_dir, tmp_path / "m2", fb, workspace=ws, embedder=emb, epochs=1)
    assert first.source_calibrated is False
    (model_dir / "calibration.json").write_text('{"format_version": 1}')
    (tmp_path / "m2" / "calibration.json").write_text('{"format_version": 1}')
    again = retrain(model_dir, tmp_path / "m2", fb, workspace=ws, embedder=emb, epochs=1)
    assert again.source_calibrated is True
    assert not (tmp_path / "m2" / "calibration.json").exists()


def test_a_refit_model_keeps_its_dev_titles_as_training_rows(mini_model, tmp_path: Path) -> None:
    """A model refit on everything saw its dev titles; retraining without them forgets them."""
    model_dir, ws, emb = mini_model
    model = load_model(model_dir, embedder=emb)
    fb = feedback_rows(
        _feedback([{"id": "1", "title": "Staff Nurse", "code": "29-1141.00"}]), model.classes_
    )
    assert refit_dev_rows(model, ws, fb) is None  # not refit: its dev titles stay held out
    model.metadata_ = {**model.metadata_, "refit": {"rows": 1, "epochs": 1}}
    rows = refit_dev_rows(model, ws, fb)
    assert rows is not None
    assert list(rows["title"]) == ["Company President"] and list(rows["code"]) == ["11-1011.00"]
    answered = _feedback([{"id": "1", "title": "Staff Nurse", "code": "29-1141.00"},
                          {"id": "2", "title": "Company President", "code": "11-1011.00"}])  # fmt: skip
    empty = refit_dev_rows(model, ws, feedback_rows(answered, model.classes_))
    assert empty is not None and len(empty) == 0  # every dev title reviewed: nothing kept
    # a dev title the train split holds too (same text and code) is kept once, as the refit did
    from autocoder.classify import data as D
    from autocoder.review.retrain import rows_not_in

    train = D.build_dataset(dev_rows(pd.DataFrame({"title": ["Company President", "Chef"],
                                                   "codes": ["11-1011.00", "11-1011.00"]}),
                                     [str(c) for c in model.classes_]))  # fmt: skip
    assert len(rows_not_in(rows, train)) == 0 and len(rows_not_in(rows, train.select([1]))) == 1


def test_retrain_keeps_the_rows_own_weights(
    mini_model, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rows of a source weigh less in the model's training set (BLS, ESCO titles); retraining
    them at weight 1 would train another objective than the model's."""
    from autocoder.classify.model import load_model as load
    from autocoder.review import retrain as R

    model_dir, ws, emb = mini_model
    splits = R.base_training_data(load(model_dir, embedder=emb), ws)
    n = len(splits["train"])
    own = np.where(np.arange(n) % 2 == 0, 0.3, 1.0)
    train = splits["train"]
    if "weight" in train.column_names:  # every row 1 in the mini recipe
        train = train.remove_columns("weight")
    splits["train"] = train.add_column("weight", own.tolist())
    monkeypatch.setattr(R, "base_training_data", lambda *a, **k: splits)
    calls: list = []
    real = R.fit_with_feedback

    def spy(model, X_base, y_base, X_fb, y_fb, **kw):  # type: ignore[no-untyped-def]
        calls.append(kw["base_weight"])
        return real(model, X_base, y_base, X_fb, y_fb, **kw)

    monkeypatch.setattr(R, "fit_with_feedback", spy)
    fb = _feedback([{"id": "1", "title": "bedside carer", "code": "29-1141.00"}])
    retrain(model_dir, tmp_path / "m2", fb, workspace=ws, embedder=emb, epochs=1,
            use_examples=False)  # fmt: skip
    assert np.allclose(calls[0], own)
