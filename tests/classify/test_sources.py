"""Extra training sources: BLS direct-match titles and ESCO labels through the crosswalk."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from autocoder.classify.sources import (
    SOURCE_COLUMNS,
    bls_titles,
    esco_titles,
    read_crosswalk,
    soc_to_onet,
    source_summary,
)
from autocoder.devsplit import read_holdout

CODES = {"11-1011.00", "11-1011.03", "15-1299.01", "15-1299.02", "29-1141.00", "47-2111.00"}
URI = "http://data.europa.eu/esco/occupation/"


def _bls(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(
        {
            "2018 SOC Code": ["11-1011", "11-1011", "15-1299", "29-1141", "29-1141", "99-9999"],
            "2018 SOC Title": [
                "Chief Executives",
                "",
                "Computer Occupations, All Other",
                "",
                "",
                "",
            ],
            "2018 SOC Direct Match Title": [
                "CEO",
                "Admiral",
                "Web Admin",
                "Staff Nurse",
                "RN",
                "X",
            ],
            "Illustrative Example": ["", "x", "", "", "", ""],
        }
    ).to_csv(folder / "soc_2018_direct_match_title_file.csv", index=False)
    return folder


def _esco(crosswalk: Path, esco: Path) -> tuple[Path, Path]:
    crosswalk.mkdir(parents=True, exist_ok=True)
    esco.mkdir(parents=True, exist_ok=True)
    meta = "".join(f"Meta line {i},x,,,,,\n" for i in range(15)) + ",,,,,,\n"
    rows = pd.DataFrame(
        {
            "O*NET Id": ["29-1141.00", "29-1141.00", "47-2111.00", "11-1011.00", "11-1011.03"],
            "O*NET Title": ["RN", "RN", "Electricians", "CEO", "CSO"],
            "O*NET Description": ["d"] * 5,
            "ESCO or ISCO URI": [
                URI + "nurse",
                URI + "midwife",
                URI + "elec",
                URI + "ceo",
                URI + "ceo",
            ],
            "ESCO or ISCO Title": ["nurse", "midwife", "electrician", "ceo", "ceo"],
            "ESCO or ISCO Description": ["d"] * 5,
            "Type of Match": ["exactMatch", "broadMatch", "closeMatch", "exactMatch", "closeMatch"],
        }
    )
    (crosswalk / "crosswalk_esco_onet.csv").write_text(meta + rows.to_csv(index=False))
    pd.DataFrame(
        {
            "conceptUri": [URI + "nurse", URI + "midwife", URI + "elec", URI + "ceo"],
            "preferredLabel": ["general nurse", "midwife", "electrician", "chief executive"],
            "altLabels": ["staff nurse\nward nurse", "birth attendant", None, "CEO"],
        }
    ).to_csv(esco / "occupations_en.csv", index=False)
    return crosswalk, esco


def test_soc_codes_map_to_their_onet_occupation_or_are_left_out() -> None:
    mapping = soc_to_onet(["11-1011", "15-1299", "29-1141", "99-9999"], CODES)
    assert mapping == {"11-1011": "11-1011.00", "29-1141": "29-1141.00"}


def test_bls_titles(tmp_path: Path) -> None:
    rows = bls_titles(_bls(tmp_path / "bls"), CODES, holdout={"rn"})
    assert list(rows.columns) == SOURCE_COLUMNS
    assert sorted(zip(rows["text"], rows["code"], strict=True)) == [
        ("Admiral", "11-1011.00"),
        ("CEO", "11-1011.00"),
        ("Staff Nurse", "29-1141.00"),
    ]
    assert set(rows["source"]) == {"bls_direct_match"}
    assert set(rows["weight"]) == {1.0}


def test_esco_labels_weighted_by_match_and_split_over_codes(tmp_path: Path) -> None:
    crosswalk, esco = _esco(tmp_path / "cw", tmp_path / "esco")
    assert len(read_crosswalk(crosswalk / "crosswalk_esco_onet.csv")) == 5
    rows = esco_titles(crosswalk, esco, CODES, holdout={"ward nurse"})
    got = {(t, c): w for t, c, w in zip(rows["text"], rows["code"], rows["weight"], strict=True)}
    assert got == {
        ("general nurse", "29-1141.00"): 1.0,
        ("staff nurse", "29-1141.00"): 1.0,
        ("electrician", "47-2111.00"): 0.6,
        ("chief executive", "11-1011.00"): 0.5,  # exact, shared by two codes
        ("CEO", "11-1011.00"): 0.5,
        ("chief executive", "11-1011.03"): 0.3,  # close, shared by two codes
        ("CEO", "11-1011.03"): 0.3,
    }  # the midwife is a broad match: not used


def test_bad_files_get_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="direct match"):
        bls_titles(tmp_path, CODES)
    (tmp_path / "crosswalk_esco_onet.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="O\\*NET Id"):
        read_crosswalk(tmp_path / "crosswalk_esco_onet.csv")


def test_summary_counts_rows_codes_and_new_texts(tmp_path: Path) -> None:
    bls = bls_titles(_bls(tmp_path / "bls"), CODES)
    esco = esco_titles(*_esco(tmp_path / "cw", tmp_path / "esco"), CODES)
    summary = source_summary([bls, esco], CODES, known={"ceo"}).set_index("source")
    assert summary.loc["bls_direct_match", "rows"] == 4
    assert summary.loc["bls_direct_match", "new_texts"] == 3
    assert summary.loc["esco_crosswalk", "codes"] == 4
    assert summary.loc["esco_crosswalk", "codes_only_here"] == 2  # 47-2111.00, 11-1011.03


@pytest.mark.shared_data
def test_real_sources_row_and_code_counts(shared_data_dir: Path, tmp_path: Path) -> None:
    occupations = pd.read_csv(shared_data_dir / "onet_29.2" / "Occupation Data.txt", sep="\t")
    codes = set(occupations["O*NET-SOC Code"])
    bls = bls_titles(shared_data_dir / "bls_soc2018_direct_match_titles", codes)
    esco = esco_titles(
        shared_data_dir / "esco_onet_crosswalk", shared_data_dir / "esco_v1.1.1", codes
    )
    summary = source_summary([bls, esco], codes).set_index("source")
    assert summary.loc["bls_direct_match", ["rows", "codes"]].tolist() == [6215, 862]
    # 21,642: ESCO's "\u200bpublic relations consultant" is one title with its clean twin since
    # text cleaning drops zero-width characters
    assert summary.loc["esco_crosswalk", ["rows", "codes"]].tolist() == [21642, 765]
    dev = tmp_path / "dev.csv"
    pd.DataFrame({"title": bls["text"].head(10)}).to_csv(dev, index=False)
    held = bls_titles(
        shared_data_dir / "bls_soc2018_direct_match_titles", codes, holdout=read_holdout(dev)
    )
    assert len(held) < len(bls) and not set(held["text"]) & set(bls["text"].head(10))
