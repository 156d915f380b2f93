import pandas as pd
import pytest

from autocoder.devsplit import apply_holdout, holdout_titles, make_dev_split, normalize_title
from tests.fakes import tiny_taxonomy


def _alt() -> pd.DataFrame:
    rows = []
    for i in range(200):
        rows.append(
            {
                "code": "29-1141.00",
                "title": f"Nurse type {i}",
                "sources": ["02"] if i % 2 else ["04"],
            }
        )
    rows.append(
        {"code": "15-1252.00", "title": "nurse TYPE 1", "sources": ["08"]}
    )  # same title elsewhere
    return pd.DataFrame(rows)


def test_split_is_deterministic_and_only_real_world_titles() -> None:
    dev = make_dev_split(_alt(), fraction=0.3, seed=3)
    assert dev.equals(make_dev_split(_alt(), fraction=0.3, seed=3))
    assert not dev.equals(make_dev_split(_alt(), fraction=0.3, seed=1))  # the seed matters
    assert 10 < len(dev) < 60  # about 30 % of the 100 real-world titles
    numbers = {int(t.split()[-1]) for t in dev["title"]}
    assert all(n % 2 == 1 for n in numbers)  # sources 02 only, never 04
    # seed 3 puts "nurse type 1" in dev: it is also listed (source 08) under another code,
    # and both codes are acceptable
    assert 1 in numbers
    assert dev.set_index("title").loc["Nurse type 1", "codes"] == "15-1252.00;29-1141.00"
    assert dev["id"].is_unique
    with pytest.raises(ValueError, match="fraction"):
        make_dev_split(_alt(), fraction=1.5)


def test_holdout_removes_titles_everywhere() -> None:
    tax = tiny_taxonomy()
    removed = apply_holdout(
        tax, holdout_titles(pd.DataFrame({"title": ["  staff   NURSE", "programmer"]}))
    )
    assert removed == 2
    assert "Staff Nurse" not in tax.get("29-1141.00").alt_titles
    assert tax.get("15-1252.00").alt_titles == ["Java Developer"]
    assert normalize_title(" A  b ") == "a b"
