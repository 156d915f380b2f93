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
