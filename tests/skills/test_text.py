from __future__ import annotations

import pytest

from autocoder.records import fold_text
from autocoder.skills.text import (
    JaccardIndex,
    candidate_spans,
    jaccard,
    split_sentences,
)


def test_normalize_folds_case_accents_and_punctuation_but_keeps_plus_and_hash() -> None:
    assert fold_text("  Café-Management, C++ & C#! ") == "cafe management c++ c#"


def test_split_sentences_on_stops_bullets_and_long_runs() -> None:
    text = "We need Python. You know SQL!\n• Docker • Kubernetes"
    assert split_sentences(text) == ["We need Python.", "You know SQL!", "Docker", "Kubernetes"]
    long = " ".join(f"w{i}" for i in range(90))
    assert [len(s.split()) for s in split_sentences(long, max_tokens=40)] == [40, 40, 10]


def test_candidate_spans_skip_stopword_edges_and_duplicates() -> None:
    spans = candidate_spans("Experience with machine learning and Python", max_n=3)
    assert "machine learning" in spans and "Python" in spans
    assert "with machine" not in spans and "learning and" not in spans
    assert len(spans) == len({s.lower() for s in spans})


def test_jaccard_threshold_separates_variants_from_other_skills() -> None:
    assert jaccard("project management", "Project-Management") == 1.0  # punctuation, case
    assert jaccard("project managers", "project manager") == pytest.approx(14 / 17)  # plural
    assert jaccard("javascripts", "javascript") == pytest.approx(0.75)
    assert jaccard("manage projects", "project management") < 0.66
    assert jaccard("javascript", "java") < 0.66  # another skill
    # a split compound is not caught by character trigrams alone (its alt label must list it)
    assert jaccard("javascript", "java script") == pytest.approx(8 / 13)


def test_jaccard_index_returns_best_owner_above_threshold_only() -> None:
    index = JaccardIndex(threshold=0.66).fit(
        ["JavaScript", "java script", "Java (computer programming)", "teamwork"], [0, 0, 1, 2]
    )
    hits = index.search(["javascript", "teamworks", "team work", "cooking", "java script"])
    assert hits[0] == {0: 1.0}
    assert list(hits[1]) == [2] and hits[1][2] == pytest.approx(0.7)  # above 0.66: kept
    assert hits[2] == {}  # "team work" vs "teamwork": 0.55, below the threshold
    assert hits[3] == {}
    assert hits[4] == {0: 1.0}  # the alt label "java script" belongs to skill 0


def test_jaccard_index_equals_brute_force_on_random_variants() -> None:
    import random

    rng = random.Random(3)
    words = ["python", "java", "script", "data", "base", "team", "lead", "sql", "cook", "care"]
    labels = [" ".join(rng.sample(words, rng.randint(1, 3))) for _ in range(80)]
    owners = [i // 2 for i in range(len(labels))]
    index = JaccardIndex(threshold=0.5).fit(labels, owners)
    queries = [" ".join(rng.sample(words, rng.randint(1, 3))) + rng.choice(["", "s", "x"])
               for _ in range(150)]  # fmt: skip
    for query, found in zip(queries, index.search(queries), strict=True):
        expected: dict[int, float] = {}
        for label, owner in zip(labels, owners, strict=True):
            value = jaccard(query, label)
            if value >= 0.5 - 1e-9:
                expected[owner] = max(expected.get(owner, 0.0), value)
        assert found.keys() == expected.keys(), query
        for owner, value in expected.items():
            assert abs(found[owner] - value) < 1e-6
