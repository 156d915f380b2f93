"""The coded-examples store and its checks, on the tiny taxonomy (plain functions)."""

from pathlib import Path

import pandas as pd
import pytest

from autocoder.examples.ops import add_file, add_rows, frame_rows, replace_source, stats
from autocoder.examples.store import AddSpec, ExampleStore, example_key, resolve_code
from autocoder.io import InputError
from autocoder.taxonomy.esco import import_esco
from tests.fakes import tiny_taxonomy

NURSE, DEV, TRUCK = "29-1141.00", "15-1252.00", "53-3032.00"


def _csv(path: Path, rows: list[dict[str, str]]) -> Path:
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def test_example_key_normalises_case_space_and_punctuation() -> None:
    assert (
        example_key("  Staff   NURSE (R.N.) ")
        == example_key("staff nurse r n")
        == "staff nurse r n"
    )


def test_resolve_code_rejects_unknown_and_group_codes() -> None:
    tax = tiny_taxonomy()
    assert resolve_code(tax, NURSE) == (NURSE, "")
    code, why = resolve_code(tax, "99-9999.00")
    assert code is None and "unknown code '99-9999.00'" in why
    code, why = resolve_code(tax, "29-0000")
    assert code is None and "group" in why
    assert resolve_code(tax, " ")[1] == "empty code"


def test_resolve_code_accepts_an_esco_occupation_with_narrower_occupations(
    fixtures_dir: Path,
) -> None:
    """A nested ESCO occupation (art director, with narrower technical director) is coded
    like any occupation (``Taxonomy.is_leaf``), so coded history naming it is kept (489 of
    the 11,596 JobBERT history rows had been refused)."""
    tax = import_esco(fixtures_dir / "esco_mini")
    art = tax.by_uri("http://data.europa.eu/esco/occupation/00000000-0000-4000-8000-000000000002")
    assert tax.children(art.code) and art.code in tax.leaf_codes() and tax.is_leaf(art.code)
    assert resolve_code(tax, art.code) == (art.code, "")
    assert resolve_code(tax, art.uri) == (art.code, "")
    code, why = resolve_code(tax, "2654")  # an ISCO unit group
    assert code is None and "group" in why


def test_add_reports_bad_rows_and_stores_only_good_ones(tmp_path: Path) -> None:
    store = ExampleStore(tmp_path / "ex")
    path = _csv(
        tmp_path / "history.csv",
        [
            {"title": "Staff Nurse", "soc": NURSE},
            {"title": "", "soc": NURSE},
            {"title": "Java dev", "soc": "99-9999.00"},
            {"title": "staff  nurse", "soc": NURSE},  # the same normalised title and code
            {"title": "Lorry driver", "soc": TRUCK},
        ],
    )
    report = add_file(store, tiny_taxonomy(), path, AddSpec(code_column="soc", weight=2.0))
    assert (report.rows, report.added) == (5, 2)
    reasons = {r["row"]: r["reason"] for r in report.rejected}
    assert reasons[2] == "empty title"
    assert "unknown code" in reasons[3]
    assert reasons[4].startswith("duplicate row")
    df = store.table()
    assert list(df["title"]) == ["Staff Nurse", "Lorry driver"]
    assert list(df["row"]) == [1, 5]
    assert set(df["source"]) == {"history"} and set(df["file"]) == {"history.csv"}
    assert set(df["annotator"]) == {"import"} and set(df["weight"]) == {2.0}
    # adding the same file again stores nothing: every row is now a duplicate (or bad)
    again = add_file(store, tiny_taxonomy(), path, AddSpec(code_column="soc"))
    assert again.added == 0 and len(again.rejected) == 5 and len(store) == 2


def test_conflicting_codes_are_kept_and_reported(tmp_path: Path) -> None:
    store = ExampleStore(tmp_path / "ex")
    tax = tiny_taxonomy()
    add_file(store, tax, _csv(tmp_path / "a.csv", [{"title": "Developer", "c": DEV}]),
             AddSpec(code_column="c"))  # fmt: skip
    report = add_file(
        store, tax, _csv(tmp_path / "b.csv", [{"title": "developer", "c": NURSE}]),
        AddSpec(code_column="c", weight=0.5),
    )  # fmt: skip
    assert report.added == 1
    assert report.conflicts == [{"key": "developer", "codes": {DEV: 1.0, NURSE: 0.5}}]
    assert len(store) == 2
    assert stats(store)["conflicting_titles"] == 1


def test_missing_column_and_bad_weight_are_input_errors(tmp_path: Path) -> None:
    store = ExampleStore(tmp_path / "ex")
    path = _csv(tmp_path / "a.csv", [{"title": "Nurse", "code": NURSE}])
    with pytest.raises(InputError, match="no column 'soc'"):
        add_file(store, tiny_taxonomy(), path, AddSpec(code_column="soc"))
    with pytest.raises(ValueError, match="positive"):
        add_file(store, tiny_taxonomy(), path, AddSpec(code_column="code", weight=0))
    assert len(store) == 0


def test_remove_source_and_content_hash(tmp_path: Path) -> None:
    store = ExampleStore(tmp_path / "ex")
    tax = tiny_taxonomy()
    assert store.content_hash() == ""
    add_file(store, tax, _csv(tmp_path / "a.csv", [{"title": "Nurse", "code": NURSE}]),
             AddSpec(code_column="code"))  # fmt: skip
    first = store.content_hash()
    add_file(store, tax, _csv(tmp_path / "b.csv", [{"title": "Trucker", "code": TRUCK}]),
             AddSpec(code_column="code"))  # fmt: skip
    assert store.content_hash() not in ("", first)
    assert store.remove_source("b") == 1
    assert store.content_hash() == first  # what coding reads is back as it was
    assert store.remove_source("b") == 0
    assert stats(store)["sources"] == {"a": 1}


def test_replace_source_keeps_every_annotator(tmp_path: Path) -> None:
    store = ExampleStore(tmp_path / "ex")
    tax = tiny_taxonomy()
    answers = pd.DataFrame(
        {"title": ["Coder", "Coder"], "code": [DEV, NURSE], "annotator": ["ann", "bob"]}
    )
    rows = frame_rows(answers, AddSpec(code_column="code"), source="review:p", file="")
    assert replace_source(store, tax, rows).added == 2
    assert replace_source(store, tax, rows.iloc[:1]).added == 1  # bob's answer was deleted
    assert list(store.table()["annotator"]) == ["ann"]
    assert add_rows(store, tax, rows.iloc[:0]).added == 0
