"""The default (fast) extraction path against the exhaustive one: same skills, order, scores
and spans; label vectors kept on disk; batch duplicates encoded once."""

from __future__ import annotations

import random

import numpy as np
import pytest

from autocoder.skills.data import SkillCatalog
from autocoder.skills.extract import SkillExtractor, label_keys, label_vectors
from autocoder.taxonomy.esco import import_esco
from tests.skills.conftest import synthetic_taxonomy

SENTENCES = [
    "You develop software and write software in a team.",
    "Programming and coding skills, stage techniques a plus",
    "lead a team; supervise a team of 5",
    "Experience with computer programming",
    "theatre",
    "You develop software and write software in a team.",  # a duplicate in the batch
]


def _catalog() -> SkillCatalog:
    """The synthetic taxonomy's 52 skills, each with one to three alternate labels."""
    catalog = SkillCatalog.from_taxonomy(synthetic_taxonomy())
    rng = random.Random(0)
    pool = ["team", "software", "care", "driving", "stage", "leadership", "budget"]
    catalog.alt_labels = [
        [f"{rng.choice(pool)} {label.split()[0]} {n}" for n in range(rng.randint(1, 3))]
        for label in catalog.labels
    ]
    return catalog


def _same(fast: list, slow: list) -> None:
    assert [[h.uri for h in row] for row in fast] == [[h.uri for h in row] for row in slow]
    assert [[h.span for h in row] for row in fast] == [[h.span for h in row] for row in slow]
    np.testing.assert_allclose(
        [h.score for row in fast for h in row], [h.score for row in slow for h in row], atol=1e-9
    )


@pytest.mark.parametrize("keys", ["preferred", "all"])
@pytest.mark.parametrize("weight", [1.0, 0.8])
def test_fast_path_equals_exhaustive_on_esco_mini(fixtures_dir, bow, keys, weight) -> None:
    catalog = SkillCatalog.from_taxonomy(import_esco(fixtures_dir / "esco_mini"))
    kwargs = dict(label_keys=keys, span_weight=weight)
    fast = SkillExtractor(bow, **kwargs).fit(catalog).rank_sentences(SENTENCES, top_k=3)
    slow = SkillExtractor(bow, exhaustive=True, **kwargs).fit(catalog)
    _same(fast, slow.rank_sentences(SENTENCES, top_k=3))
    assert fast[0] == fast[-1]
    assert {h.label for h in fast[2]} >= {"lead a team"}


def test_fast_path_equals_exhaustive_on_many_random_sentences(bow) -> None:
    """52 skills, top 3 of each of 200 random sentences of skill words: the union the fast
    path rescores must hold every exhaustive top skill."""
    catalog = _catalog()
    words = " ".join(catalog.labels + [a for alts in catalog.alt_labels for a in alts]).split()
    words += ["and", "the", "with", "a"]
    rng = random.Random(1)
    sentences = [" ".join(rng.choices(words, k=rng.randint(1, 14))) for _ in range(200)]
    for keys in ("preferred", "all"):
        fast = SkillExtractor(bow, label_keys=keys, span_weight=0.9).fit(catalog)
        slow = SkillExtractor(bow, label_keys=keys, span_weight=0.9, exhaustive=True)
        _same(fast.rank_sentences(sentences, 3), slow.fit(catalog).rank_sentences(sentences, 3))


class CountingEmbedder:
    """Counts the texts it is asked for; declares a model id (so label vectors are cached)."""

    model_id = "counting-test"

    def __init__(self, base) -> None:
        self.base = base
        self.texts: list[str] = []

    def encode(self, texts, *, is_query=False, show_progress=False):
        self.texts += list(texts)
        return self.base.encode(texts, is_query=is_query)


def test_label_vectors_are_computed_once_and_kept_on_disk(tmp_path, bow) -> None:
    catalog = _catalog()
    keys, owners = label_keys(catalog, "all")
    assert owners == sorted(owners) and len(keys) > len(catalog)
    first = CountingEmbedder(bow)
    vecs = label_vectors(first, keys, tmp_path)
    again = CountingEmbedder(bow)
    np.testing.assert_array_equal(label_vectors(again, keys, tmp_path), vecs)
    assert len(first.texts) == len(keys) and again.texts == []
    other = CountingEmbedder(bow)
    label_vectors(other, keys[:-1], tmp_path)  # other labels: another file
    assert len(other.texts) == len(keys) - 1


def test_a_batch_encodes_each_distinct_text_once(bow) -> None:
    catalog = SkillCatalog.from_taxonomy(synthetic_taxonomy())
    counting = CountingEmbedder(bow)
    ex = SkillExtractor(counting).fit(catalog)
    counting.texts.clear()
    ex.rank_sentences(["managers skill 1 and team", "managers skill 1 and team", "team"])
    assert len(counting.texts) == len(set(counting.texts))
    assert "team" in counting.texts and "managers skill 1 and team" in counting.texts


def test_span_weight_must_be_positive(bow) -> None:
    with pytest.raises(ValueError, match="span_weight"):
        SkillExtractor(bow, span_weight=0).fit(SkillCatalog.from_taxonomy(synthetic_taxonomy()))


def test_memo_keeps_recent_texts_across_batches_with_the_same_output(bow) -> None:
    catalog = _catalog()
    counting = CountingEmbedder(bow)
    ex = SkillExtractor(counting, memo_size=3).fit(catalog)
    first = ex.rank_sentences(["team leadership", "managers skill 1"])
    counting.texts.clear()
    again = ex.rank_sentences(["team leadership", "managers skill 1"])
    assert again == first
    assert len(counting.texts) < 5  # most of the texts (sentences and spans) were kept
    assert len(ex.vectors_memo_.data) == 3 and len(ex.jaccard_memo_.data) <= 3
    no_memo = SkillExtractor(bow, memo_size=0).fit(catalog)
    assert no_memo.rank_sentences(["team leadership", "managers skill 1"]) == first
    assert no_memo.vectors_memo_.data == {}
