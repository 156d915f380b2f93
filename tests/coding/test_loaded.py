"""The loaded coder: one factory (`load_coder`), declared capabilities, and `code_frame`, which
returns exactly the rows `autocoder code` writes."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from autocoder import api
from autocoder.classify.model import EmbeddingClassifier
from autocoder.coding import code_frame, load_coder
from autocoder.coding.batch import code_file
from autocoder.coding.loaded import (
    PRETRAINED,
    RETRIEVAL,
    LoadedCoder,
    ModelFiles,
    index_version,
    pretrained_dir,
    resolve_model_dir,
    retrieval_coder,
    retrieval_sidecar,
)
from autocoder.coding.mixture import CombinedPredictor
from autocoder.coding.predictor import Capabilities
from autocoder.coding.retrieval import RetrievalCoder
from autocoder.config import CoderConfig, load_settings
from autocoder.io import read_table, write_table
from autocoder.taxonomy.store import save_taxonomy
from autocoder.workspace import Workspace
from tests.coding.test_mixture import _parts
from tests.fakes import KeywordPredictor, mini_taxonomy, tiny_taxonomy

KEYWORDS = {"nurse": "29-1141.00", "java": "15-1252.00", "truck": "53-3032.00"}
LABELS = {"29-1141.00": "Registered Nurses", "15-1252.00": "Software Developers"}


def _bad_and_good_records() -> pd.DataFrame:
    """Good rows, repeats, and one of each bad record (no id, a repeated id, no text)."""
    return pd.DataFrame(
        {
            "id": ["a", "b", "", "d", "b", "f", "g", "h"],
            "title": [
                "Staff nurse",
                "Java developer",
                "Nurse",
                "",
                "Truck driver",
                "Sr. Truck Driver - Dallas, TX",
                "Astronaut",
                "staff NURSE",
            ],  # fmt: skip
            "description": ["", "", "", "", "", "", "", "cares for patients"],
        }
    )


def test_retrieval_coder_on_the_memory_backend_needs_no_index_build(tmp_path: Path) -> None:
    settings = load_settings(overrides=['index.backend="memory"'])
    ws = Workspace.resolve(tmp_path)
    coder = retrieval_coder(settings, ws, tiny_taxonomy(), top_k=2)
    codes, probs, _ = coder.rank(["hgv truck driver"])
    assert codes[0][0] == "53-3032.00" and len(codes[0]) == 2
    assert abs(float(probs[0].sum()) - 1.0) < 1e-6


def test_retrieval_alone_is_calibrated_in_the_workspace_per_index_and_settings(
    tmp_path: Path,
) -> None:
    from autocoder.coding.trust import coder_assigner

    settings = load_settings(overrides=['index.backend="memory"'])
    ws = Workspace.resolve(tmp_path)
    taxonomy = tiny_taxonomy()
    coder = retrieval_coder(settings, ws, taxonomy)
    built = index_version(coder)
    path = retrieval_sidecar(settings, ws, taxonomy, coder, built)
    assert path.parent == ws.calibration / taxonomy.name and path.name.startswith("retrieval-")
    assert retrieval_sidecar(settings, ws, taxonomy, coder, built) == path
    where = settings.index.model_copy(update={"host": "127.0.0.1", "timeout": 5.0})
    moved = settings.model_copy(update={"index": where})
    assert (
        retrieval_sidecar(moved, ws, taxonomy, coder, built) == path
    )  # where it is: not its scores
    for change in ({"temperature": 0.08}, {"aggregation": "max"}, {"kinds": ["title"]}):
        other = settings.model_copy(update={"index": settings.index.model_copy(update=change)})
        assert retrieval_sidecar(other, ws, taxonomy, coder, built) != path, change
    # (a rebuilt Chroma index is another build: tests/test_cli_calibrate.py)
    # the assigner uses retrieval's calibration as it uses a model's
    trust = {"format_version": 1, "levels": [], "thresholds": {}}
    loaded = LoadedCoder.from_predictor(coder, taxonomy=taxonomy, calibration=trust)
    assert coder_assigner(loaded, CoderConfig(target_precision=0.9)).trust == trust
    assert coder_assigner(LoadedCoder.from_predictor(coder, taxonomy=taxonomy),
                          CoderConfig(target_precision=0.9)).trust is None  # fmt: skip


def test_model_resolution() -> None:
    assert resolve_model_dir(PRETRAINED) == pretrained_dir()
    assert resolve_model_dir(None) is None and resolve_model_dir("") is None
    assert resolve_model_dir("some/dir") == Path("some/dir")


def test_code_frame_equals_the_file_output_row_for_row(tmp_path: Path) -> None:
    df = _bad_and_good_records()
    src, out = tmp_path / "in.parquet", tmp_path / "out.parquet"
    write_table(df, src)
    opts = CoderConfig(top_n=2, threshold=0.5, batch_size=3)  # several batches in the file
    coder = LoadedCoder.from_predictor(KeywordPredictor(KEYWORDS), labels=LABELS)
    code_file(src, out, coder=coder, runs_dir=tmp_path / "runs", options=opts, show_progress=False)
    frame = code_frame(coder, df, opts)
    pd.testing.assert_frame_equal(frame, pd.read_parquet(out))
    assert frame["status"].tolist() == [
        "coded", "coded", "error:missing_id", "error:empty_text", "error:duplicate_id",
        "coded", "review", "coded",
    ]  # fmt: skip
    assert frame.loc[0, "label_1"] == "Registered Nurses" and frame.loc[5, "label_1"] == ""
    assert df["title"].tolist() == _bad_and_good_records()["title"].tolist()  # not changed


def test_code_frame_equals_what_autocoder_code_writes(tmp_path: Path) -> None:
    """The real retrieval coder (MiniLM, memory index) through `api.code` and `code_frame`."""
    settings = load_settings(overrides=['index.backend="memory"', "coder.top_n=3"])
    ws = Workspace.resolve(tmp_path / "home")
    save_taxonomy(ws, tiny_taxonomy())
    df = _bad_and_good_records()
    src, out, again = tmp_path / "in.csv", tmp_path / "out.csv", tmp_path / "frame.csv"
    write_table(df, src)
    api.code(settings, ws, src, out, taxonomy_name="onet", show_progress=False)
    coder = load_coder(settings, ws, taxonomy_name="onet")
    write_table(code_frame(coder, read_table(src, string_columns=("id",)), settings.coder), again)
    assert again.read_bytes() == out.read_bytes()
    assert coder.index_version and coder.index_version in out.read_text()


def test_load_coder_mixes_in_retrieval_as_the_model_says(tmp_path: Path) -> None:
    clf, _ = _parts()
    ws = Workspace.resolve(tmp_path / "home")
    tax = mini_taxonomy()
    save_taxonomy(ws, tax)
    clf.metadata_ = {
        "recipe": {"combine": {"retrieval_weight": 0.4}},
        "taxonomy": {"name": tax.name},
    }
    model_dir = clf.save(tmp_path / "model")
    settings = load_settings(overrides=['index.backend="memory"', "embedder.cache=false"])
    coder = load_coder(settings, ws, model=model_dir)  # the taxonomy from the model
    assert isinstance(coder.predictor, CombinedPredictor)
    assert coder.predictor.retrieval_weight == 0.4 and coder.retrieval is coder.predictor.retrieval
    assert "+retrieval:0.4:" in coder.predictor_id and coder.index_version
    assert coder.taxonomy is not None and coder.taxonomy.name == tax.name
    assert coder.model_dir == model_dir and coder.fingerprint["model"]["config_sha256"]
    assert coder.labels[tax.leaf_codes()[0]] == tax.get(tax.leaf_codes()[0]).title
    assert coder.capabilities == Capabilities(sets=True, embeddings=True)

    off = load_settings(overrides=['index.backend="memory"', "coder.retrieval_weight=0"])
    alone = load_coder(off, ws, model=model_dir)
    assert isinstance(alone.predictor, EmbeddingClassifier) and alone.retrieval is None
    assert alone.index_version == ""

    configured = settings.model_copy(
        update={"coder": settings.coder.model_copy(update={"model": str(model_dir)})}
    )
    plain = load_coder(configured, ws, model=RETRIEVAL, taxonomy_name=tax.name)
    assert isinstance(plain.predictor, RetrievalCoder)
    assert plain.capabilities == Capabilities(sets=False, embeddings=True)
    assert plain.reload().predictor_id == plain.predictor_id  # the source says retrieval too
    vectors = plain.embed(["staff nurse", "software developer"])
    assert vectors.shape == (2, 384) and vectors.dtype == np.float32


def test_a_model_mixes_retrieval_as_its_mixture_was_fitted(tmp_path: Path) -> None:
    clf, _ = _parts()
    ws = Workspace.resolve(tmp_path / "home")
    tax = mini_taxonomy()
    save_taxonomy(ws, tax)
    settings = load_settings(overrides=['index.backend="memory"', "embedder.cache=false"])
    assert settings.index.aggregation == "softmax_sum"  # the configured retrieval (default)
    fitted = {"retrieval_weight": 0.4, "temperature": 0.8, "conformal_threshold": None}
    cases = (
        ({**fitted, "retrieval": {"aggregation": "max", "temperature": 0.03}}, "max", 0.03),
        (fitted, "max", 0.05),  # a model from before the record: the defaults it was fitted with
        (None, "softmax_sum", 0.05),  # no fitted mixture (the recipe's weight): as configured
    )
    for i, (combine, aggregation, temperature) in enumerate(cases):
        clf.metadata_ = {"recipe": {"combine": {"retrieval_weight": 0.4}},
                         "taxonomy": {"name": tax.name}} | ({"combine": combine} if combine else {})  # fmt: skip
        coder = load_coder(settings, ws, model=clf.save(tmp_path / f"model{i}"))
        assert coder.retrieval is not None
        assert coder.retrieval.describe() == {
            "aggregation": aggregation,
            "temperature": temperature,
        }
        assert f":{aggregation}@{temperature:g}:" in coder.predictor_id
    plain = load_coder(settings, ws, model=RETRIEVAL, taxonomy_name=tax.name)
    assert plain.predictor_id.endswith(":softmax_sum@0.05")
    # the index settings are part of a job's key with a model too (retrieval, examples)
    other = load_settings(overrides=['index.backend="memory"', "embedder.cache=false",
                                     "index.candidates_per_query=50"])  # fmt: skip
    first, again = (load_coder(s, ws, model=tmp_path / "model0") for s in (settings, other))
    assert again.fingerprint["model"] == first.fingerprint["model"]
    assert again.fingerprint["index"] != first.fingerprint["index"]


def test_a_copied_model_is_the_same_coder_and_its_id_names_no_machine_path(
    tmp_path: Path,
) -> None:
    """The predictor id keys the examples fit and the review model version: a copy of the
    model (``calibrate --output``, another machine) must keep them, other weights must not."""
    clf, _ = _parts()
    ws = Workspace.resolve(tmp_path / "home")
    tax = mini_taxonomy()
    save_taxonomy(ws, tax)
    clf.metadata_ = {"recipe": {"combine": {"retrieval_weight": 0.4}},
                     "taxonomy": {"name": tax.name}}  # fmt: skip
    first = clf.save(tmp_path / "here" / "model")
    copy = tmp_path / "there" / "model"
    shutil.copytree(first, copy)
    settings = load_settings(overrides=['index.backend="memory"', "embedder.cache=false"])
    a, b = (load_coder(settings, ws, model=m) for m in (first, copy))
    assert a.predictor_id == b.predictor_id
    assert a.predictor_id.startswith("model:unnamed@") and str(tmp_path) not in a.predictor_id
    (copy / "calibration.json").write_text("{}")  # a calibration sidecar is not the model
    assert ModelFiles.read(copy).model_id() == ModelFiles.read(first).model_id()
    (copy / "weights.pt").write_bytes((first / "weights.pt").read_bytes() + b"\0")
    assert ModelFiles.read(copy).model_id() != ModelFiles.read(first).model_id()


def test_capabilities_are_declared_not_guessed() -> None:
    bare = LoadedCoder.from_predictor(KeywordPredictor(KEYWORDS))
    assert bare.capabilities == Capabilities()  # it declares nothing
    with pytest.raises(ValueError, match="declares no embeddings"):
        bare.embed(["nurse"])
    with pytest.raises(ValueError, match="not made by load_coder"):
        bare.reload()

    class Liar(KeywordPredictor):
        capabilities = Capabilities(sets=True)  # but no predict_sets

    with pytest.raises(TypeError, match="declares sets"):
        LoadedCoder.from_predictor(Liar(KEYWORDS))
