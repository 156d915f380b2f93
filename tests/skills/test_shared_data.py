"""Skills on the real public data in ../shared/data (ESCO v1.1.1, TECH/HOUSE validation)."""

from __future__ import annotations

import random

import pytest

from autocoder.embed import Embedder
from autocoder.skills.data import SkillCatalog, read_annotations, read_onet_technology
from autocoder.skills.extract import SkillExtractor, evaluate_extractor
from autocoder.taxonomy.esco import import_esco

pytestmark = pytest.mark.shared_data


def test_validation_sets_have_the_published_sentence_counts(shared_data_dir) -> None:
    folder = shared_data_dir / "skill_extraction"
    tech = read_annotations(folder / "tech_validation_annotations.csv")
    house = read_annotations(folder / "house_validation_annotations.csv")
    assert (len(tech), len(house)) == (75, 61)  # sentences with at least one ESCO label
    assert all(g.labels and "LABEL NOT PRESENT" not in g.labels for g in tech + house)


def test_onet_technology_reader(shared_data_dir) -> None:
    tech = read_onet_technology(shared_data_dir / "onet_29.2")
    assert len(tech) > 30000 and {"code", "example", "commodity", "hot"} == set(tech.columns)


@pytest.mark.slow
def test_plain_minilm_extraction_ranks_gold_skills_on_tech(shared_data_dir, tmp_path) -> None:
    """Real MiniLM on TECH against the gold skills plus 500 random ESCO distractors."""
    esco = import_esco(shared_data_dir / "esco_v1.1.1")
    full = SkillCatalog.from_taxonomy(esco)
    gold = read_annotations(
        shared_data_dir / "skill_extraction" / "tech_validation_annotations.csv"
    )
    wanted = {label for g in gold for label in g.labels}
    keep = [i for i, label in enumerate(full.labels) if label in wanted]
    keep += random.Random(0).sample(range(len(full)), 500)
    keep = sorted(set(keep))
    catalog = SkillCatalog(
        [full.uris[i] for i in keep],
        [full.labels[i] for i in keep],
        [full.alt_labels[i] for i in keep],
        [full.descriptions[i] for i in keep],
        [full.skill_types[i] for i in keep],
    )
    embedder = Embedder(cache_dir=tmp_path)
    scores = evaluate_extractor(SkillExtractor(embedder).fit(catalog), gold)
    sentence_only = evaluate_extractor(
        SkillExtractor(embedder, use_spans=False, use_jaccard=False).fit(catalog), gold
    )
    assert scores["rp@5"] > 0.6
    assert scores["rp@5"] >= sentence_only["rp@5"]


@pytest.mark.slow
def test_fast_path_equals_exhaustive_with_real_minilm_on_tech(shared_data_dir, tmp_path) -> None:
    """Real MiniLM, real TECH sentences, gold skills + 800 random ESCO distractors, both
    label-key modes: the default path ranks exactly as scoring every pair."""
    full = SkillCatalog.from_taxonomy(import_esco(shared_data_dir / "esco_v1.1.1"))
    gold = read_annotations(
        shared_data_dir / "skill_extraction" / "tech_validation_annotations.csv"
    )[:30]
    wanted = {label for g in gold for label in g.labels}
    keep = sorted(
        {i for i, label in enumerate(full.labels) if label in wanted}
        | set(random.Random(1).sample(range(len(full)), 800))
    )
    catalog = SkillCatalog(
        *(
            [values[i] for i in keep]
            for values in (full.uris, full.labels, full.alt_labels, full.descriptions)
        ),
        [full.skill_types[i] for i in keep],
    )
    embedder = Embedder()
    sentences = [g.sentence for g in gold]
    for keys in ("preferred", "all"):
        opts = dict(label_keys=keys, cache_dir=tmp_path, span_weight=0.9)
        fast = SkillExtractor(embedder, **opts).fit(catalog).rank_sentences(sentences, 10)
        slow = SkillExtractor(embedder, exhaustive=True, **opts).fit(catalog)
        exact = slow.rank_sentences(sentences, 10)
        assert [[h.uri for h in r] for r in fast] == [[h.uri for h in r] for r in exact]
        assert [[h.span for h in r] for r in fast] == [[h.span for h in r] for r in exact]
