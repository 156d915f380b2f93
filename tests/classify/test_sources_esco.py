"""O*NET titles mapped to ESCO occupations through the crosswalk (training text for ESCO)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from autocoder.classify.data import build_dataset, source_rows
from autocoder.classify.sources import SOURCE_COLUMNS
from autocoder.classify.sources_esco import ALL_TITLE_KINDS, esco_links, onet_titles_for_esco
from autocoder.taxonomy.esco import import_esco

OCC = "http://data.europa.eu/esco/occupation/00000000-0000-4000-8000-00000000000"
SOFTWARE, ART, TECH, ASSIST = OCC + "1", OCC + "2", OCC + "3", OCC + "4"


@pytest.fixture
def esco(fixtures_dir: Path):  # noqa: ANN201 - a Taxonomy
    return import_esco(fixtures_dir / "esco_mini")


def _crosswalk(folder: Path) -> Path:
    """A crosswalk in the official layout (metadata lines, header on line 17)."""
    folder.mkdir(parents=True, exist_ok=True)
    meta = "".join(f"Meta line {i},x,,,,,\n" for i in range(15)) + ",,,,,,\n"
    links = [
        ("15-1252.00", SOFTWARE, "exactMatch"),
        ("15-1243.01", SOFTWARE, "closeMatch"),
        ("11-1011.03", TECH, "narrowMatch"),
        ("11-1011.03", ASSIST, "closeMatch"),
        ("11-1011.00", ART, "broadMatch"),  # broader on the O*NET side: not used
        ("29-1141.00", OCC.replace("0000000000", "9999999999") + "9", "exactMatch"),  # unknown
    ]
    rows = pd.DataFrame(
        {
            "O*NET Id": [o for o, _, _ in links],
            "O*NET Title": ["t"] * len(links),
            "O*NET Description": ["d"] * len(links),
            "ESCO or ISCO URI": [u for _, u, _ in links],
            "ESCO or ISCO Title": ["e"] * len(links),
            "ESCO or ISCO Description": ["d"] * len(links),
            "Type of Match": [m for _, _, m in links],
        }
    )
    (folder / "crosswalk_esco_onet.csv").write_text(meta + rows.to_csv(index=False))
    return folder


def test_links_weighted_by_match_type_and_split_over_esco_occupations(tmp_path, esco) -> None:
    uri_to_code = {c.uri: c.code for c in esco.leaves()}
    links = esco_links(_crosswalk(tmp_path / "cw"), uri_to_code)
    got = {(o, c): (m, w) for o, c, m, w in links[["onet_code", "code", "match", "weight"]].values}
    assert got == {
        ("15-1252.00", "2512.4"): ("exactMatch", 1.0),
        ("15-1243.01", "2512.4"): ("closeMatch", 0.6),
        ("11-1011.03", "2654.1.7"): ("narrowMatch", 0.4),  # 0.8 shared by two occupations
        ("11-1011.03", "2654.1.7.1"): ("closeMatch", 0.3),
    }


def test_onet_titles_become_esco_rows_with_code_uri_and_weight(
    tmp_path, esco, fixtures_dir: Path
) -> None:
    rows = onet_titles_for_esco(
        fixtures_dir / "onet_mini",
        _crosswalk(tmp_path / "cw"),
        esco,
        kinds=ALL_TITLE_KINDS,
        holdout={"applications developer"},
    )
    assert list(rows.columns) == [*SOURCE_COLUMNS, "uri"]
    software = rows[rows["code"] == "2512.4"]
    # official, alternate (and short) and reported titles, duplicates once, minus the holdout
    weights = dict(zip(software["text"], software["weight"], strict=True))
    assert weights == {
        "Data Warehousing Specialists": 0.6,
        "ETL Developer": 0.6,
        "ETL Developer (Extract, Transform, Load Developer)": 0.6,
        "Software Developers": 1.0,
        "Software Engineer": 1.0,  # alternate title, again lower-case and as a reported title
    }
    assert set(software["uri"]) == {SOFTWARE}
    assert set(rows["code"]) == {"2512.4", "2654.1.7", "2654.1.7.1"}  # no broad or unknown link
    assert set(rows["source"]) == {"onet_crosswalk"}


def test_rows_carry_their_weights_into_the_dataset(tmp_path, esco, fixtures_dir: Path) -> None:
    table = onet_titles_for_esco(fixtures_dir / "onet_mini", _crosswalk(tmp_path / "cw"), esco)
    rows = source_rows(table, classes=esco.leaf_codes())
    assert {r["provenance"] for r in rows} == {"source:onet_crosswalk"}
    data = build_dataset(rows).to_pandas()
    officers = data[data["title"] == "Chief Sustainability Officers"]
    assert sorted(zip(officers["code"], officers["weight"], strict=True)) == [
        ("2654.1.7", 0.4),
        ("2654.1.7.1", 0.3),
    ]
    assert set(officers["codes"]) == {"2654.1.7;2654.1.7.1"}  # either is right in validation


def test_missing_files_get_clear_errors(tmp_path, esco, fixtures_dir: Path) -> None:
    with pytest.raises(FileNotFoundError, match="crosswalk"):
        onet_titles_for_esco(fixtures_dir / "onet_mini", tmp_path, esco)
    with pytest.raises(FileNotFoundError, match="release not found"):
        onet_titles_for_esco(tmp_path / "nope", _crosswalk(tmp_path / "cw"), esco)


@pytest.mark.shared_data
def test_real_onet_titles_for_esco(shared_data_dir: Path) -> None:
    esco = import_esco(shared_data_dir / "esco_v1.1.1")
    onet, crosswalk = shared_data_dir / "onet_29.2", shared_data_dir / "esco_onet_crosswalk"
    default = onet_titles_for_esco(onet, crosswalk, esco)  # official and reported titles
    assert (len(default), default["text"].nunique()) == (17009, 5847)
    rows = onet_titles_for_esco(onet, crosswalk, esco, kinds=ALL_TITLE_KINDS)
    assert len(rows) == 107567 and rows["code"].nunique() == 1335
    assert rows["text"].nunique() == 35792
    assert rows["weight"].between(0, 1, inclusive="right").all()
    ceo = rows[rows["text"] == "Chief Executives"].set_index("code")["weight"].to_dict()
    assert ceo == {"1120.3": 0.5, "1112.7": 0.3}  # chief executive officer (exact), secretary
    # general (close); the broad matches (airport chief executive, ...) are left out
    assert all(esco.by_uri(u).code == c for u, c in zip(rows["uri"], rows["code"], strict=True))
