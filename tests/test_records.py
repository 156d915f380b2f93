import pandas as pd
import pytest

from autocoder.io import InputError
from autocoder.records import JobRecord, as_records, duties_column, normalize_text, table_texts


def test_three_input_formats() -> None:
    r = JobRecord("Nurse", "Care for patients")
    assert r.text("title_duties") == "job_title=Nurse job_duties=Care for patients"
    assert r.text("title") == "job_title=Nurse"
    assert r.text("duties") == "job_duties=Care for patients"
    assert JobRecord("Nurse").text() == "job_title=Nurse"


def test_as_records_accepts_many_shapes() -> None:
    df = pd.DataFrame({"title": ["  Nurse  ", None], "description": ["x", "Drive trucks"]})
    assert as_records(df) == [JobRecord("Nurse", "x"), JobRecord("", "Drive trucks")]
    assert as_records(["Cook", ("Cook", "fry"), {"title": "Cook"}]) == [
        JobRecord("Cook"),
        JobRecord("Cook", "fry"),
        JobRecord("Cook"),
    ]
    with pytest.raises(ValueError, match="record 0"):
        as_records([3.5])


def test_normalize_text_is_the_one_comparison_key() -> None:
    assert normalize_text("  Staff   NURSE ") == "staff nurse"
    assert normalize_text("R.N. (ICU)") == "r.n. (icu)"
    assert normalize_text("R.N. (ICU)", keep_punctuation=False) == "r n icu"
    assert normalize_text(None) == normalize_text(float("nan")) == ""


def test_duties_column_prefers_the_configured_then_duties_then_description() -> None:
    assert duties_column(["title", "description", "duties"]) == "duties"
    assert duties_column(["title", "description"]) == "description"
    assert duties_column(["tasks", "description"], "tasks") == "tasks"
    assert duties_column(["title"]) is None


def test_table_texts_cleans_and_names_the_problem() -> None:
    df = pd.DataFrame({"title": [" Nurse ", None], "duties": ["a\n b", ""]})
    assert table_texts(df) == (["Nurse", ""], ["a b", ""])
    with pytest.raises(InputError, match="jobs.csv: needs a title column 'job'"):
        table_texts(pd.DataFrame({"id": ["1"]}), title_column="job", source="jobs.csv")
