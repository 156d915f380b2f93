from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import pytest

from autocoder.taxonomy.esco import LEVELS, EscoFormatError, import_esco

OCC = "http://data.europa.eu/esco/occupation/00000000-0000-4000-8000-00000000000"
SKILL = "http://data.europa.eu/esco/skill/00000000-0000-4000-9000-00000000000"


@pytest.fixture()
def esco_dir(fixtures_dir: Path) -> Path:
    return fixtures_dir / "esco_mini"


def _copy(esco_dir: Path, tmp_path: Path, name: str = "export") -> Path:
    target = tmp_path / name
    shutil.copytree(esco_dir, target)
    return target


def test_groups_and_occupations(esco_dir: Path) -> None:
    tax = import_esco(esco_dir)
    assert tax.name == "esco"
    assert tax.levels == LEVELS
    assert sorted(tax.leaf_codes()) == ["0110.1", "2512.4", "2654.1", "2654.1.7", "2654.1.7.1"]
    assert len(tax) == 11 + 5
    group = tax.get("2654")
    assert (group.level, group.level_name, group.parent) == (4, "isco4", "265")
    assert group.title == "Film, stage and related directors and producers"
    assert group.uri == "http://data.europa.eu/esco/isco/C2654"
    # leading zeros of ISCO codes are kept
    assert [c.code for c in tax.ancestors("0110.1")] == ["0", "01", "011", "0110", "0110.1"]
    assert tax.get("0").parent is None


def test_occupation_texts(esco_dir: Path) -> None:
    tax = import_esco(esco_dir)
    dev = tax.get("2512.4")
    assert dev.title == "software developer"
    assert dev.uri == OCC + "1"
    assert dev.level_name == "occupation"
    # multi-line altLabels split; preferred label not repeated; hidden labels left out
    assert dev.alt_titles == ["programmer", "application developer"]
    assert dev.description.startswith("Software developers implement")
    assert tax.by_uri(OCC + "3").code == "2654.1.7"
    assert tax.get("2512").alt_titles == ["programmers"]


def test_hidden_labels_on_request(esco_dir: Path) -> None:
    tax = import_esco(esco_dir, include_hidden_labels=True)
    assert tax.get("2512.4").alt_titles[-1] == "softwre developer"
    assert "techincal director" in tax.get("2654.1.7").alt_titles


def test_nested_occupations_are_leaves(esco_dir: Path) -> None:
    tax = import_esco(esco_dir)
    assert tax.get("2654.1.7").parent == "2654.1"
    assert tax.get("2654.1.7.1").parent == "2654.1.7"
    assert tax.get("2654.1").parent == "2654"
    chain = [c.code for c in tax.ancestors("2654.1.7.1")]
    assert chain == ["2", "26", "265", "2654", "2654.1", "2654.1.7", "2654.1.7.1"]
    assert tax.parent("2654.1.7.1", "isco4") == "2654"
    assert tax.parent("2654.1.7.1", "isco1") == "2"
    assert {c.code for c in tax.children("2654.1")} == {"2654.1.7"}
    assert "2654.1" in tax.leaf_codes()


def test_skills(esco_dir: Path) -> None:
    tax = import_esco(esco_dir)
    assert len(tax.skills) == 4
    skill = tax.skills[SKILL + "4"]
    assert skill.label == "lead a team"
    assert skill.skill_type == "skill/competence"
    assert skill.alt_labels == ["manage a team", "supervise a team"]
    links = {s.label: s for s in tax.get("2512.4").skills}
    assert set(links) == {"develop software", "computer programming", "lead a team"}
    assert links["develop software"].relation == "essential"
    assert links["lead a team"].relation == "optional"
    assert links["computer programming"].skill_type == "knowledge"
    assert links["computer programming"].skill_id == SKILL + "2"
    assert sum(len(c.skills) for c in tax) == 8


def test_zip_export_and_version(esco_dir: Path, tmp_path: Path) -> None:
    archive = tmp_path / "ESCO dataset - v1.1.1 - classification - en - csv.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for file in esco_dir.iterdir():
            zf.write(file, f"esco/{file.name}")
    tax = import_esco(archive)
    assert tax.version == "v1.1.1"
    assert len(tax.leaves()) == 5
    assert tax.get("2654.1.7").parent == "2654.1"
    assert import_esco(esco_dir).version == "unknown"
    assert import_esco(esco_dir, version="v1.2.0").version == "v1.2.0"
    assert import_esco(_copy(esco_dir, tmp_path, "esco_v1.0.8")).version == "v1.0.8"


def test_relation_files_with_language_suffix(esco_dir: Path, tmp_path: Path) -> None:
    export = _copy(esco_dir, tmp_path)
    (export / "occupationSkillRelations.csv").rename(export / "occupationSkillRelations_en.csv")
    tax = import_esco(export)
    assert len(tax.get("2512.4").skills) == 3


def test_without_optional_files(esco_dir: Path, tmp_path: Path) -> None:
    export = tmp_path / "export"
    export.mkdir()
    for name in ("occupations_en.csv", "ISCOGroups_en.csv"):
        shutil.copy(esco_dir / name, export)
    tax = import_esco(export)
    assert len(tax.leaves()) == 5
    assert not tax.skills
    # without broader relations every occupation hangs under its ISCO unit group
    assert tax.get("2654.1.7").parent == "2654"


def test_missing_occupations_file(esco_dir: Path, tmp_path: Path) -> None:
    export = _copy(esco_dir, tmp_path)
    (export / "occupations_en.csv").unlink()
    with pytest.raises(FileNotFoundError, match="occupations_en.csv"):
        import_esco(export)


def test_missing_column_is_clear(esco_dir: Path, tmp_path: Path) -> None:
    export = _copy(esco_dir, tmp_path)
    path = export / "occupations_en.csv"
    path.write_text(path.read_text().replace(",code\n", ",isco_code\n", 1))
    with pytest.raises(EscoFormatError, match=r"occupations_en\.csv: missing column.*'code'"):
        import_esco(export)


def test_unknown_isco_group_is_an_error(esco_dir: Path, tmp_path: Path) -> None:
    export = _copy(esco_dir, tmp_path)
    (export / "broaderRelationsOccPillar.csv").unlink()
    path = export / "occupations_en.csv"
    path.write_text(path.read_text().replace(",0110,army officer", ",0999,army officer"))
    with pytest.raises(EscoFormatError, match=r"0110\.1.*'0999'"):
        import_esco(export)


def test_relations_to_unknown_concepts_are_skipped(esco_dir: Path, tmp_path: Path) -> None:
    export = _copy(esco_dir, tmp_path)
    with (export / "occupationSkillRelations.csv").open("a") as fh:
        fh.write(f"{OCC}9,essential,knowledge,{SKILL}1\n{OCC}1,essential,knowledge,{SKILL}9\n")
    with (export / "broaderRelationsOccPillar.csv").open("a") as fh:
        fh.write(f"Occupation,{OCC}9,Occupation,{OCC}1\n")
    tax = import_esco(export)
    assert len(tax.get("2512.4").skills) == 3
    assert len(tax.leaves()) == 5


@pytest.mark.shared_data
def test_real_esco_release(shared_data_dir: Path) -> None:
    tax = import_esco(shared_data_dir / "esco_v1.1.1")
    assert tax.version == "v1.1.1"
    assert len(tax.leaves()) == 3007
    assert sum(1 for c in tax if c.level < 5) == 619
    assert len(tax.skills) == 13_896
    assert sum(len(c.skills) for c in tax) > 120_000
    nested = [
        c for c in tax.leaves() if c.parent and c.parent in tax and tax.get(c.parent).level == 5
    ]
    assert len(nested) > 1000
    for code in nested[:200]:
        isco4 = tax.parent(code.code, "isco4")
        assert isco4 is not None and code.code.startswith(isco4 + ".")


def test_a_file_named_zip_that_is_not_one_is_refused(esco_dir: Path, tmp_path: Path) -> None:
    shutil.copytree(esco_dir, tmp_path / "esco_v1.1.0")
    fake = tmp_path / "ESCO dataset - v1.1.1 - classification - en - csv.zip"
    fake.write_bytes(b"\x00" * 64)
    with pytest.raises(ValueError, match="is not a zip file"):
        import_esco(fake)
