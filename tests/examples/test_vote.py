"""Examples vote: soft-vote kNN, exact titles, the blend, on a real Chroma store and server."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from autocoder.coding.examples import WithExamples
from autocoder.coding.retrieval import RetrievalCoder
from autocoder.examples.index import ChromaExampleIndex, MemoryExampleIndex
from autocoder.examples.ops import add_rows, frame_rows
from autocoder.examples.store import AddSpec, ExampleStore
from autocoder.examples.vote import (
    ExampleVoter,
    blend,
    example_distribution,
    knn_votes,
)
from autocoder.index import MemoryIndex
from autocoder.records import JobRecord
from tests.fakes import HashingEmbedder, tiny_taxonomy
from tests.test_index_server import chroma_server  # noqa: F401  (the real `chroma run` fixture)

NURSE, DEV, TRUCK = "29-1141.00", "15-1252.00", "53-3032.00"


def test_knn_votes_are_similarity_weighted() -> None:
    votes = knn_votes([DEV, NURSE, NURSE], np.array([0.9, 0.89, 0.88]), np.ones(3), k=3,
                      temperature=0.05)  # fmt: skip
    assert votes[NURSE] > votes[DEV]  # two close neighbours outvote one slightly closer
    assert sum(votes.values()) == pytest.approx(1.0)
    one = knn_votes([DEV, NURSE], np.array([0.9, 0.5]), np.ones(2), k=2, temperature=0.05)
    assert one[DEV] > 0.99
    heavy = knn_votes([DEV, NURSE], np.array([0.9, 0.9]), np.array([1.0, 3.0]), k=2,
                      temperature=0.05)  # fmt: skip
    assert heavy[NURSE] == pytest.approx(0.75)
    assert knn_votes([], np.zeros(0), np.zeros(0), k=5, temperature=0.05) == {}


def test_exact_votes_blend_and_trust() -> None:
    dist = example_distribution({DEV: 1.0}, {NURSE: 3.0, TRUCK: 1.0}, 0.8)
    assert dist == pytest.approx({DEV: 0.2, NURSE: 0.6, TRUCK: 0.2})
    p_base = np.array([[0.7, 0.2, 0.1], [0.7, 0.2, 0.1], [0.7, 0.2, 0.1]])
    p_ex = np.array([[0.0, 1.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 0.0]])
    p = blend(p_base, p_ex, np.array([True, False, False]), weight=0.5, exact_trust=0.95)
    assert p[0, 1] == pytest.approx(0.95 + 0.05 * 0.2)  # an agreeing exact match: near-certain
    assert p[1].tolist() == pytest.approx([0.35, 0.6, 0.05])  # neighbours only: weight 0.5
    assert p[2].tolist() == pytest.approx(p_base[2].tolist())  # no examples: the base as it is


def _store(tmp_path: Path, rows: list[tuple[str, str, str]]) -> ExampleStore:
    store = ExampleStore(tmp_path / "ex")
    df = pd.DataFrame(rows, columns=["title", "code", "annotator"])
    add_rows(store, tiny_taxonomy(), frame_rows(df, AddSpec("code"), source="s", file="f.csv"))
    return store


def _combined(index: object, store: ExampleStore) -> WithExamples:
    tax, emb = tiny_taxonomy(), HashingEmbedder()
    code_index = MemoryIndex()
    code_index.build(tax, emb)
    retrieval = RetrievalCoder(code_index, emb, classes=tax.leaf_codes()).fit()
    voter = ExampleVoter(index, emb, classes=tax.leaf_codes(), neighbours=5)  # type: ignore[arg-type]
    voter.fit(store.table(), store.content_hash())
    return WithExamples(retrieval, voter, weight=0.5, exact_trust=0.95).fit()


def _check_learns(index: object, tmp_path: Path) -> None:
    store = _store(
        tmp_path,
        [("Cake decorator", TRUCK, "ann"), ("Cake decorator", TRUCK, "bob"),
         ("Night porter", NURSE, "ann"), ("Night porter", DEV, "bob")],
    )  # fmt: skip
    model = _combined(index, store)
    classes = list(model.classes_)
    p = model.predict_proba(["cake decorator", "night porter", "java developer"])
    assert classes[int(p[0].argmax())] == TRUCK and p[0].max() >= 0.95  # agreeing: near-certain
    assert p[1].max() < 0.6  # the annotators disagree: not certain
    assert classes[int(p[2].argmax())] == DEV  # retrieval still codes what no example covers


def test_examples_on_a_real_chroma_store(tmp_path: Path) -> None:
    index = ChromaExampleIndex(taxonomy_name="onet", model_id="hashing-512",
                               path=tmp_path / "chroma")  # fmt: skip
    _check_learns(index, tmp_path)
    first = index.client.list_collections()
    assert len(first) == 1
    # a changed store is a new collection; the stale one is dropped
    store = _store(tmp_path, [("Cake decorator", NURSE, "cy")])
    index.ensure(store.table(), store.content_hash(), HashingEmbedder())
    names = [c.name for c in index.client.list_collections()]
    assert len(names) == 1 and names != [c.name for c in first]
    assert index.client.get_collection(names[0]).count() == len(store)


def test_memory_twin_agrees(tmp_path: Path) -> None:
    _check_learns(MemoryExampleIndex(), tmp_path)


@pytest.mark.integration
def test_examples_on_a_real_chroma_server(tmp_path: Path, chroma_server: int) -> None:  # noqa: F811
    index = ChromaExampleIndex(taxonomy_name="onet", model_id="hashing-512",
                               host="127.0.0.1", port=chroma_server)  # fmt: skip
    _check_learns(index, tmp_path)


def test_exact_match_on_the_title_as_written_then_the_cleaned_one(tmp_path: Path) -> None:
    store = _store(tmp_path, [("Manager II - Subcon Operations", TRUCK, "ann"),
                              ("Cake decorator", NURSE, "ann")])  # fmt: skip
    voter = ExampleVoter(
        MemoryExampleIndex(), HashingEmbedder(), classes=tiny_taxonomy().leaf_codes()
    )
    voter.fit(store.table(), store.content_hash())
    written = JobRecord("manager", written="Manager II - Subcon Operations")
    cleaned_only = JobRecord("cake decorator", written="Cake decorator, Hy-Vee")
    neither = JobRecord("manager", written="Manager III")
    codes, share = voter.exact_agreement([written, cleaned_only, neither])
    assert codes == [TRUCK, NURSE, ""] and share.tolist() == [1.0, 1.0, 0.0]


def test_the_batch_reader_keeps_the_title_as_written() -> None:
    from autocoder.coding.batch import BatchReader
    from autocoder.config import CoderConfig

    chunk = pd.DataFrame({"id": ["a"], "title": ["Manager II - Subcon Operations"]})
    record = BatchReader(CoderConfig()).pending(chunk, 0, 0).records[0]
    assert record.written == "Manager II - Subcon Operations"
    assert record.title != record.written  # what is coded is the cleaned title
