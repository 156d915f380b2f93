from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import pytest

from autocoder.taxonomy.onet import (
    LEVELS,
    SOC_MAJOR_GROUPS,
    OnetFormatError,
    import_onet,
    read_alternate_titles,
    soc2018_groups,
    soc_groups,
)


@pytest.fixture()
def onet_dir(fixtures_dir: Path) -> Path:
    return fixtures_dir / "onet_mini"


def _copy(onet_dir: Path, tmp_path: Path, name: str = "release") -> Path:
    target = tmp_path / name
    shutil.copytree(onet_dir, target)
    return target


def test_imports_leaves_with_texts(onet_dir: Path) -> None:
    tax = import_onet(onet_dir)
    assert tax.name == "onet"
    assert tax.levels == LEVELS
    assert tax.leaf_level == 5
    assert sorted(tax.leaf_codes()) == [
        "11-1011.00",
        "11-1011.03",
        "15-1243.01",
        "15-1252.00",
        "29-1141.00",
        "29-1221.00",
    ]
    ceo = tax.get("11-1011.00")
    assert ceo.title == "Chief Executives"
    assert ceo.description.startswith("Set the overall direction")
    # short titles kept as alternate titles; the occupation's own title is not repeated
    assert ceo.alt_titles == [
        "Managing Director",
        "Chief Executive Officer (CEO)",
        "CEO",
        "Company President",
    ]
    assert ceo.reported_titles == ["CEO", "President"]
    assert ceo.tasks == [
        "Direct the organization's financial and budget activities.",
        "Confer with board members to resolve problems.",
    ]
    dev = tax.get("15-1252.00")
    # "software engineer" is a case-insensitive duplicate of "Software Engineer"
    assert dev.alt_titles == ["Software Engineer", "Applications Developer"]
    assert tax.get("11-1011.03").alt_titles == []


def test_skills_technology_and_tools(onet_dir: Path) -> None:
    tax = import_onet(onet_dir)
    dev = {s.label: s for s in tax.get("15-1252.00").skills}
    assert set(dev) == {"Python", "Microsoft Excel", "Emacs"}
    assert dev["Python"].relation == "technology"
    assert dev["Python"].hot and not dev["Emacs"].hot
    assert dev["Python"].skill_type == "Development environment software"
    # the same example shared by two occupations is one skill
    ceo_excel = next(s for s in tax.get("11-1011.00").skills if s.label == "Microsoft Excel")
    assert ceo_excel.skill_id == dev["Microsoft Excel"].skill_id
    nurse = tax.get("29-1141.00").skills
    assert {s.label for s in nurse} == {"Stethoscopes", "Blood pressure cuffs"}
    assert all(s.relation == "tool" and not s.hot for s in nurse)
    assert tax.skills[dev["Python"].skill_id].label == "Python"
    assert len(tax.skills) == 7  # 4 distinct technologies + 3 tools


def test_hierarchy_derived_from_codes(onet_dir: Path) -> None:
    tax = import_onet(onet_dir)
    chain = [c.code for c in tax.ancestors("15-1252.00")]
    assert chain == ["15-0000", "15-1200", "15-1250", "15-1252", "15-1252.00"]
    assert [c.level_name for c in tax.ancestors("15-1252.00")] == LEVELS
    assert tax.parent("11-1011.03", "broad") == "11-1010"
    assert tax.parent("11-1011.03", "major") == "11-0000"
    assert tax.get("11-0000").title == "Management Occupations"
    assert tax.get("29-0000").title == "Healthcare Practitioners and Technical Occupations"
    # groups titled from the SOC 2018 structure shipped with autocoder
    assert tax.get("15-1252").title == "Software Developers"
    assert tax.get("15-1243").title == "Database Architects"
    assert tax.get("11-1010").title == "Chief Executives"
    assert tax.get("15-1250").title == "Software and Web Developers, Programmers, and Testers"
    # titles given win; a group in neither: its .00 occupation's title, else a readable fallback
    own = import_onet(onet_dir, group_titles={"11-1010": "Top bosses"})
    assert own.get("11-1010").title == "Top bosses"
    assert own.get("15-1252").title == "Software Developers"  # from 15-1252.00
    assert own.get("15-1243").title == "SOC 15-1243"
    # SOC 2018 groups whose numbers break the digit pattern
    assert tax.parent("29-1221.00", "broad") == "29-1210"
    assert "29-1220" not in tax
    # two O*NET occupations under one detailed SOC code
    assert {c.code for c in tax.children("11-1011")} == {"11-1011.00", "11-1011.03"}


def test_group_titles_override(onet_dir: Path) -> None:
    tax = import_onet(onet_dir, group_titles={"15-1200": "Computer Occupations"})
    assert tax.get("15-1200").title == "Computer Occupations"


def test_soc_groups_and_major_titles() -> None:
    assert soc_groups("11-1011.00") == ("11-0000", "11-1000", "11-1010", "11-1011")
    assert soc_groups("51-5112.00") == ("51-0000", "51-5100", "51-5110", "51-5112")
    assert soc_groups("31-1131.00")[1] == "31-1100"
    assert len(SOC_MAJOR_GROUPS) == 23
    groups = soc2018_groups()
    assert {code[:2]: title for code, (level, title, _) in groups.items() if level == "major"} == (
        SOC_MAJOR_GROUPS
    )
    assert SOC_MAJOR_GROUPS["55"] == "Military Specific Occupations"


def test_soc_groups_follow_the_official_structure_for_every_detailed_code() -> None:
    groups = soc2018_groups()
    counts = {level: sum(1 for g in groups.values() if g[0] == level) for level in LEVELS[:4]}
    assert counts == {"major": 23, "minor": 98, "broad": 459, "detailed": 867}  # SOC 2018
    for code, (level, _, _) in groups.items():
        if level != "detailed":
            continue
        chain = [code]
        while groups[chain[-1]][2]:
            chain.append(groups[chain[-1]][2])
        assert soc_groups(f"{code}.00") == tuple(reversed(chain)), code


def test_version_detection(onet_dir: Path, tmp_path: Path) -> None:
    assert import_onet(onet_dir).version == "unknown"
    assert import_onet(onet_dir, version="29.2").version == "29.2"
    named = _copy(onet_dir, tmp_path, "db_28_1_text")
    assert import_onet(named).version == "28.1"
    readme = _copy(onet_dir, tmp_path, "plain")
    (readme / "Read Me.txt").write_text("This is the O*NET 27.3 Database release.\n")
    assert import_onet(readme).version == "27.3"


def test_zip_with_top_folder(onet_dir: Path, tmp_path: Path) -> None:
    archive = tmp_path / "db_29_2_text.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for file in onet_dir.iterdir():
            zf.write(file, f"db_29_2_text/{file.name}")
    tax = import_onet(archive)
    assert tax.version == "29.2"
    assert tax.source == str(archive)
    assert len(tax.leaves()) == 6
    assert tax.get("15-1252.00").tasks == import_onet(onet_dir).get("15-1252.00").tasks


def test_folder_with_release_subfolder(onet_dir: Path, tmp_path: Path) -> None:
    shutil.copytree(onet_dir, tmp_path / "download" / "db_29_1_text")
    tax = import_onet(tmp_path / "download")
    assert len(tax.leaves()) == 6
    assert tax.version == "29.1"


def test_optional_files_may_be_missing(onet_dir: Path, tmp_path: Path) -> None:
    release = tmp_path / "release"
    release.mkdir()
    shutil.copy(onet_dir / "Occupation Data.txt", release)
    tax = import_onet(release)
    assert len(tax.leaves()) == 6
    assert all(not c.alt_titles and not c.tasks and not c.skills for c in tax)


def test_missing_occupation_data_is_clear(onet_dir: Path, tmp_path: Path) -> None:
    release = _copy(onet_dir, tmp_path)
    (release / "Occupation Data.txt").unlink()
    with pytest.raises(FileNotFoundError, match="Occupation Data.txt"):
        import_onet(release)


def test_whitespace_blank_lines_and_crlf(onet_dir: Path, tmp_path: Path) -> None:
    release = _copy(onet_dir, tmp_path)
    path = release / "Alternate Titles.txt"
    lines = path.read_text().splitlines()
    lines.insert(2, "")
    lines.insert(3, "   ")
    lines[1] = lines[1].replace("Managing Director", "  Managing Director  ")
    path.write_bytes(("\r\n".join(lines) + "\r\n\r\n").encode())
    tax = import_onet(release)
    assert tax.get("11-1011.00").alt_titles[0] == "Managing Director"
    assert len(tax.get("11-1011.00").alt_titles) == 4


def test_wrong_column_count_names_file_and_line(onet_dir: Path, tmp_path: Path) -> None:
    release = _copy(onet_dir, tmp_path)
    path = release / "Task Statements.txt"
    lines = path.read_text().splitlines()
    lines[3] = lines[3].replace("\t", " ", 1)
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(OnetFormatError, match=r"Task Statements\.txt: line 4: expected 8"):
        import_onet(release)


def test_missing_code_names_file_and_line(onet_dir: Path, tmp_path: Path) -> None:
    release = _copy(onet_dir, tmp_path)
    path = release / "Occupation Data.txt"
    lines = path.read_text().splitlines()
    lines[2] = "\t" + lines[2].split("\t", 1)[1]
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(OnetFormatError, match=r"Occupation Data\.txt: line 3: .*missing"):
        import_onet(release)


def test_not_tab_delimited_is_rejected(onet_dir: Path, tmp_path: Path) -> None:
    release = _copy(onet_dir, tmp_path)
    (release / "Occupation Data.txt").write_text("O*NET-SOC Code,Title\n11-1011.00,Chief\n")
    with pytest.raises(OnetFormatError, match="header"):
        import_onet(release)


def test_rows_for_unknown_codes_are_skipped(onet_dir: Path, tmp_path: Path) -> None:
    release = _copy(onet_dir, tmp_path)
    with (release / "Task Statements.txt").open("a") as fh:
        fh.write("47-2061.00\tConstruction Laborers\t1\tDig trenches.\tCore\t\t\t\n")
    tax = import_onet(release)
    assert "47-2061.00" not in tax
    assert all("Dig trenches." not in c.tasks for c in tax)


def test_read_alternate_titles(onet_dir: Path, tmp_path: Path) -> None:
    frame = read_alternate_titles(onet_dir)
    assert list(frame.columns) == ["code", "title", "short_title", "sources"]
    assert len(frame) == 11
    ceo = frame[frame["title"] == "Chief Executive Officer (CEO)"].iloc[0]
    assert ceo["code"] == "11-1011.00"
    assert ceo["short_title"] == "CEO"
    assert ceo["sources"] == ["02", "10"]
    rn = frame[frame["short_title"] == "RN"].iloc[0]
    assert rn["sources"] == ["02", "04", "10"]
    only_occ = tmp_path / "only"
    only_occ.mkdir()
    shutil.copy(onet_dir / "Occupation Data.txt", only_occ)
    with pytest.raises(FileNotFoundError, match="Alternate Titles"):
        read_alternate_titles(only_occ)


@pytest.mark.shared_data
def test_real_onet_release(shared_data_dir: Path) -> None:
    tax = import_onet(shared_data_dir / "onet_29.2")
    assert tax.version == "29.2"
    assert len(tax.leaves()) == 1016
    counts = {name: 0 for name in LEVELS}
    for code in tax:
        counts[code.level_name] += 1
    # SOC 2018 structure: 23 major, 98 minor, 459 broad, 867 detailed groups
    assert counts == {"major": 23, "minor": 98, "broad": 459, "detailed": 867, "onet": 1016}
    assert not [c.code for c in tax if c.title.startswith("SOC ")]  # every group has its title
    assert tax.get("43-3050").title == "Payroll and Timekeeping Clerks"
    assert sum(len(c.tasks) for c in tax) > 18_000
    assert sum(len(c.alt_titles) for c in tax) > 50_000
    assert sum(1 for c in tax for s in c.skills if s.relation == "technology") > 30_000
    assert any(s.hot for c in tax for s in c.skills)
    frame = read_alternate_titles(shared_data_dir / "onet_29.2")
    assert len(frame) > 50_000
    assert frame["code"].isin(tax.leaf_codes()).all()


# --- issue 23: a release is verified as what it claims -----------------------------------------
def test_a_file_named_zip_that_is_not_one_never_falls_back_to_a_sibling(
    onet_dir: Path, tmp_path: Path
) -> None:
    shutil.copytree(onet_dir, tmp_path / "db_29_1_text")
    fake = tmp_path / "db_29_3_text.zip"
    fake.write_text("<html>not found</html>")
    with pytest.raises(ValueError, match=r"db_29_3_text.zip is not a zip file"):
        import_onet(fake)


def test_a_damaged_zip_is_refused(onet_dir: Path, tmp_path: Path) -> None:
    archive = tmp_path / "db_29_2_text.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_STORED) as zf:
        for file in onet_dir.iterdir():
            zf.write(file, f"db_29_2_text/{file.name}")
    data = bytearray(archive.read_bytes())
    at = data.find(b"Chief Executives")
    data[at : at + 5] = b"XXXXX"
    archive.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"damaged zip file: member .* fails its CRC check"):
        import_onet(archive)


def test_a_read_me_that_names_another_version_is_an_error(onet_dir: Path, tmp_path: Path) -> None:
    release = _copy(onet_dir, tmp_path, "db_29_3_text")
    (release / "Read Me.txt").write_text("O*NET 29.1 Database\n")
    with pytest.raises(ValueError, match=r"named 29.3.*Read Me.txt says 29.1"):
        import_onet(release)
    (release / "Read Me.txt").write_text("O*NET 29.3 Database\n")
    assert import_onet(release).version == "29.3"
    assert import_onet(release, version="29.3-local").version == "29.3-local"
