from __future__ import annotations

from pathlib import Path

import pytest

from autocoder.taxonomy.esco import import_esco
from autocoder.taxonomy.model import Code, Skill, SkillLink, Taxonomy
from autocoder.taxonomy.onet import import_onet


def _small() -> Taxonomy:
    codes = [
        Code("1", "Managers", 1, "major"),
        Code("11", "Chief executives", 2, "minor", parent="1", uri="urn:x:11"),
        Code(
            "111",
            "CEO",
            3,
            "unit",
            parent="11",
            description="Runs the company.",
            alt_titles=["managing director"],
            reported_titles=["boss"],
            tasks=["set strategy", "chair meetings"],
            skills=[SkillLink("s1", "leadership", "essential", "skill/competence")],
        ),
    ]
    return Taxonomy(
        "toy",
        "1.0",
        ["major", "minor", "unit"],
        codes,
        skills=[Skill("s1", "leadership", "skill/competence", ["leading"])],
    )


def test_parent_ancestors_and_leaves() -> None:
    tax = _small()
    assert [c.code for c in tax.ancestors("111")] == ["1", "11", "111"]
    assert tax.parent("111", "major") == "1"
    assert tax.parent("111", 2) == "11"
    assert tax.leaf_codes() == ["111"]
    assert tax.by_uri("urn:x:11").code == "11"
    with pytest.raises(ValueError, match="unknown level"):
        tax.parent("111", "sector")
    with pytest.raises(KeyError, match="'999'"):
        tax.get("999")


def test_texts_by_kind() -> None:
    tax = _small()
    assert tax.texts("111") == [
        ("title", "CEO"),
        ("alt_title", "managing director"),
        ("reported_title", "boss"),
        ("description", "Runs the company."),
        ("task", "set strategy"),
        ("task", "chair meetings"),
    ]
    assert tax.texts("111", kinds=("title", "task")) == [
        ("title", "CEO"),
        ("task", "set strategy"),
        ("task", "chair meetings"),
    ]


def test_duplicate_code_rejected() -> None:
    with pytest.raises(ValueError, match="duplicate code '1'"):
        Taxonomy("toy", "1", ["major"], [Code("1", "a", 1, "major"), Code("1", "b", 1, "major")])


@pytest.mark.parametrize(
    "importer, folder", [(import_onet, "onet_mini"), (import_esco, "esco_mini")]
)
def test_imported_round_trip(importer, folder: str, fixtures_dir: Path, tmp_path: Path) -> None:
    original = importer(fixtures_dir / folder)
    loaded = Taxonomy.load(original.save(tmp_path / "store"))
    assert loaded.meta() == original.meta()
    assert [c.to_dict() for c in loaded] == [c.to_dict() for c in original]
    assert loaded.skills == original.skills
    leaf = original.leaf_codes()[-1]
    assert loaded.ancestors(leaf) == original.ancestors(leaf)
    assert loaded.texts(leaf) == original.texts(leaf)


def test_load_missing_store(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="taxonomy.json"):
        Taxonomy.load(tmp_path)
