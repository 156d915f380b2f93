"""CodeIndex on a real embedded Chroma store (and the in-memory twin)."""

from pathlib import Path

import numpy as np
import pytest

from autocoder.index import (
    ChromaIndex,
    IndexConnectionError,
    IndexNotBuiltError,
    MemoryIndex,
    aggregate,
    code_documents,
)
from tests.fakes import HashingEmbedder, tiny_taxonomy


def _chroma(tmp_path: Path, **kw: object) -> ChromaIndex:
    return ChromaIndex(
        taxonomy_name="onet",
        taxonomy_version="test-1",
        model_id="hashing",
        path=tmp_path / "chroma",
        **kw,
    )  # type: ignore[arg-type]


def test_documents_one_per_text_with_metadata() -> None:
    docs = code_documents(tiny_taxonomy())
    nurse = [d for d in docs if d.code == "29-1141.00"]
    assert {d.kind for d in nurse} == {"title", "alt_title", "description", "task"}
    assert len(nurse) == 5
    assert all(d.code.endswith(".00") for d in docs)  # only leaves are indexed


def test_aggregate_max_and_softmax_sum() -> None:
    codes, scores, ev, votes = aggregate(
        ["a", "b", "a", "c"], [0.9, 0.8, 0.5, 0.1], ["x", "y", "z", "w"], k=2
    )
    assert codes == ["a", "b"] and np.allclose(scores, [0.9, 0.8]) and ev == ["x", "y"]
    assert np.allclose(votes, scores)  # max: a code's vote is its best similarity
    codes, scores, _, votes = aggregate(
        ["a", "b", "b", "b"],
        [0.9, 0.88, 0.87, 0.86],
        ["", "", "", ""],
        k=1,
        method="softmax_sum",
        temperature=0.05,
    )
    assert codes == ["b"]  # many good matches outvote one slightly better match
    assert np.allclose(scores, [0.88])  # its best similarity
    expected = 0.05 * np.log(np.exp(np.array([0.88, 0.87, 0.86]) / 0.05).sum())
    assert np.allclose(votes, [expected])  # T * log of its share of the vote (unnormalised)
    with pytest.raises(ValueError, match="unknown aggregation"):
        aggregate(["a"], [1.0], [""], k=1, method="mean")


def test_chroma_build_search_and_idempotent_rebuild(tmp_path: Path) -> None:
    tax, emb = tiny_taxonomy(), HashingEmbedder()
    index = _chroma(tmp_path)
    n = index.build(tax, emb, show_progress=False)  # type: ignore[arg-type]
    assert n == index.count() == len(code_documents(tax))
    res = index.search(emb.encode(["hgv truck driver", "java developer"]), k=3)
    assert res.codes[0][0] == "53-3032.00"
    assert res.codes[1][0] == "15-1252.00"
    assert res.scores[0][0] >= res.scores[0][-1]
    # rebuilding (e.g. after a crash half-way) gives the same collection, not duplicates
    assert index.build(tax, emb, show_progress=False) == n  # type: ignore[arg-type]
    again = _chroma(tmp_path)  # a new client on the same persistent store
    assert again.count() == n
    assert again.search(emb.encode(["hgv truck driver"]), k=1).codes[0] == ["53-3032.00"]


def test_chroma_adds_in_chunks_of_the_client_max_batch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    index = _chroma(tmp_path)
    monkeypatch.setattr(index.client, "get_max_batch_size", lambda: 3)
    sizes: list[int] = []
    import chromadb.api.models.Collection as coll_mod

    original = coll_mod.Collection.add

    def spy(self, **kwargs):  # type: ignore[no-untyped-def]
        sizes.append(len(kwargs["ids"]))
        return original(self, **kwargs)

    monkeypatch.setattr(coll_mod.Collection, "add", spy)
    n = index.build(tiny_taxonomy(), HashingEmbedder(), show_progress=False)  # type: ignore[arg-type]
    assert max(sizes) <= 3 and sum(sizes) == n == index.count()


def test_search_before_build_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(IndexNotBuiltError, match="autocoder index build"):
        _chroma(tmp_path).search(np.zeros((1, 8), dtype=np.float32), k=1)


def test_unreachable_server_names_host_and_port_not_index_build() -> None:
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    index = ChromaIndex(
        taxonomy_name="onet", taxonomy_version="t", model_id="m", host="127.0.0.1", port=port
    )
    with pytest.raises(IndexConnectionError, match=f"127.0.0.1:{port}") as info:
        index.count()
    assert "index build" not in str(info.value)


def test_memory_index_agrees_with_chroma(tmp_path: Path) -> None:
    tax, emb = tiny_taxonomy(), HashingEmbedder()
    chroma, memory = _chroma(tmp_path), MemoryIndex()
    chroma.build(tax, emb, show_progress=False)  # type: ignore[arg-type]
    memory.build(tax, emb)  # type: ignore[arg-type]
    q = emb.encode(["staff nurse administering medications", "programmer writing code"])
    assert chroma.search(q, k=2).codes == memory.search(q, k=2).codes


# --- issue 23: a search whose result does not depend on the run -------------------------------
def _many_codes_taxonomy(n: int = 400) -> object:
    """``n`` leaf codes with random three-word titles (enough for HNSW to approximate)."""
    from autocoder.taxonomy.model import Code, Taxonomy

    rng = np.random.default_rng(7)
    words = [f"w{i}" for i in range(60)]
    codes = [Code("11-0000", "Group", 1, "major")]
    for i in range(n):
        title = " ".join(rng.choice(words, 3, replace=False))
        codes.append(Code(f"11-{1000 + i:04d}.00", title, 2, "onet", "11-0000"))
    return Taxonomy("onet", "t", ["major", "onet"], codes, leaf_level=2)


def test_chroma_search_does_not_depend_on_how_the_graph_was_built(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two stores of the same documents inserted in other orders (as parallel insertion does)
    with a coarse HNSW graph: the same codes and scores, equal to exact search."""
    import autocoder.index as index_module

    tax, emb = _many_codes_taxonomy(), HashingEmbedder(dim=64)
    coarse = {"M": 2, "construction_ef": 2, "search_ef": 2}
    a = _chroma(tmp_path / "a", candidates=30, hnsw=coarse)
    a.build(tax, emb, show_progress=False)  # type: ignore[arg-type]
    real = index_module.code_documents
    monkeypatch.setattr(index_module, "code_documents", lambda *x: real(*x)[::-1])
    b = _chroma(tmp_path / "b", candidates=30, hnsw=coarse)
    b.build(tax, emb, show_progress=False)  # type: ignore[arg-type]
    monkeypatch.setattr(index_module, "code_documents", real)
    memory = MemoryIndex(candidates=30)
    memory.build(tax, emb)  # type: ignore[arg-type]
    queries = emb.encode([f"w{i} w{i + 1} w{i + 7}" for i in range(40)])
    ra, rb, rm = (ix.search(queries, k=5) for ix in (a, b, memory))
    assert ra.codes == rb.codes == rm.codes
    assert np.array_equal(np.asarray(ra.scores), np.asarray(rb.scores))
    assert np.allclose(np.asarray(ra.scores), np.asarray(rm.scores), atol=1e-6)


def test_equal_scores_are_ordered_by_code() -> None:
    codes, _, _, _ = aggregate(["b", "a", "c"], [0.5, 0.5, 0.4], ["", "", ""], k=3)
    assert codes == ["a", "b", "c"]
    codes, _, _, _ = aggregate(["b", "a", "c"], [0.4, 0.5, 0.5], ["", "", ""], k=3)
    assert codes == ["a", "c", "b"]
    memory_ties = aggregate(["b", "a"], [0.5, 0.5], ["", ""], k=2, method="softmax_sum")
    assert memory_ties[0] == ["a", "b"]


def test_hnsw_search_mode_re_scores_exactly(tmp_path: Path) -> None:
    tax, emb = tiny_taxonomy(), HashingEmbedder()
    exact, approx = _chroma(tmp_path), _chroma(tmp_path, search="hnsw")
    exact.build(tax, emb, show_progress=False)  # type: ignore[arg-type]
    q = emb.encode(["hgv truck driver", "java developer"])
    a, b = exact.search(q, k=2), approx.search(q, k=2)
    assert a.codes == b.codes and np.array_equal(np.asarray(a.scores), np.asarray(b.scores))
