import pandas as pd
import pytest

from autocoder.records import JobRecord, as_records


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
