"""Fixtures for the skills tests: a synthetic ESCO-like taxonomy and a bag-of-words embedder."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence

import numpy as np
import pytest

from autocoder.taxonomy.model import Code, Skill, SkillLink, Taxonomy

GROUPS = {"1": "Managers", "2": "Professionals", "3": "Technicians", "7": "Craft workers"}


def synthetic_taxonomy(
    n_per_group: int = 10, skills_per_group: int = 12, seed: int = 0
) -> Taxonomy:
    """4 ISCO major groups, each with its own skill pool (plus shared skills); occupations
    draw most skills from their group's pool, so groups are learnable and paths exist."""
    rng = random.Random(seed)
    codes: list[Code] = []
    skills: list[Skill] = []
    shared = [f"s-shared-{i}" for i in range(4)]
    for uri in shared:
        skills.append(Skill(uri, f"shared skill {uri[-1]}", "skill/competence"))
    for g, name in GROUPS.items():
        codes.append(Code(g, name, 1, "isco1"))
        codes.append(Code(f"{g}1", f"{name} sub", 2, "isco2", parent=g))
        codes.append(Code(f"{g}11", f"{name} minor", 3, "isco3", parent=f"{g}1"))
        codes.append(Code(f"{g}111", f"{name} unit", 4, "isco4", parent=f"{g}11"))
        pool = [f"s-{g}-{j}" for j in range(skills_per_group)]
        skills += [Skill(u, f"{name.lower()} skill {u[-1]}", "knowledge") for u in pool]
        for i in range(n_per_group):
            chosen = rng.sample(pool, 6) + rng.sample(shared, 1)
            links = [
                SkillLink(u, "", "essential" if k < 4 else "optional") for k, u in enumerate(chosen)
            ]
            codes.append(
                Code(
                    f"{g}111.{i}",
                    f"{name.lower()} worker {i}",
                    5,
                    "occupation",
                    parent=f"{g}111",
                    alt_titles=[f"{name.lower()} specialist {i}", f"{name.lower()} assistant {i}"],
                    skills=links,
                )
            )
    return Taxonomy(
        "esco",
        "test",
        ["isco1", "isco2", "isco3", "isco4", "occupation"],
        codes,
        skills=skills,
        leaf_level=5,
    )


class BagOfWordsEmbedder:
    """Deterministic stand-in for a sentence encoder: hashed word vectors, L2-normalised."""

    def __init__(self, dim: int = 256) -> None:
        self.dim = dim
        self.calls = 0

    def encode(
        self, texts: Sequence[str], *, is_query: bool = False, show_progress: bool = False
    ) -> np.ndarray:
        self.calls += 1
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            for word in text.lower().replace(",", " ").replace(".", " ").split():
                h = int(hashlib.md5(word.encode()).hexdigest(), 16)
                out[i, h % self.dim] += 1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.maximum(norms, 1e-9)


@pytest.fixture
def taxonomy() -> Taxonomy:
    return synthetic_taxonomy()


@pytest.fixture
def bow() -> BagOfWordsEmbedder:
    return BagOfWordsEmbedder()
