"""Toy problems for the classifier tests: Gaussian blobs standing in for sentence embeddings."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest


def blobs(
    n_per_class: list[int], *, dim: int = 16, spread: list[float] | None = None, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Isotropic blobs, one per class, ``n_per_class[c]`` points with std ``spread[c]``."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(len(n_per_class), dim)) * 2.0
    spread = spread or [1.0] * len(n_per_class)
    X = np.vstack(
        [centers[c] + spread[c] * rng.normal(size=(n, dim)) for c, n in enumerate(n_per_class)]
    )
    y = np.concatenate([[f"c{c}"] * n for c, n in enumerate(n_per_class)])
    return X.astype(np.float32), y


class HashEmbedder:
    """Deterministic fake embedder: bag of hashed words, L2-normalised (no model download)."""

    def __init__(self, dim: int = 64) -> None:
        self.dim = dim
        self.model = "hash-embedder"
        self.model_id = "hash-embedder"
        self.calls = 0

    def encode(self, texts: list[str], **_: object) -> np.ndarray:
        self.calls += 1
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, t in enumerate(texts):
            for w in t.lower().replace(":", " ").split():
                h = int(hashlib.md5(w.encode()).hexdigest()[:8], 16)
                out[i, h % self.dim] += 1.0 if (h >> 20) % 2 else -1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.maximum(norms, 1e-9)


@pytest.fixture
def hash_embedder() -> HashEmbedder:
    return HashEmbedder()
