"""Toy problems for the classifier tests: Gaussian blobs standing in for sentence embeddings."""

from __future__ import annotations

import numpy as np
import pytest

from tests.fakes import HashingEmbedder


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


class HashEmbedder(HashingEmbedder):
    """The package's hashing embedder at a small dimension (no model download)."""

    def __init__(self, dim: int = 64) -> None:
        super().__init__(dim)


@pytest.fixture
def hash_embedder() -> HashEmbedder:
    return HashEmbedder()
