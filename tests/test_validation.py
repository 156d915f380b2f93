"""Error messages of the gold and prediction table checks."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from autocoder.validation import (
    ValidationError,
    align,
    split_codes,
    validate_gold,
    validate_pred,
)


def _pred(**overrides) -> pd.DataFrame:
    data = {
        "id": ["a", "b", "c"],
        "code_1": ["11-1011.00", "15-1252.00", "29-1141.00"],
        "code_2": ["11-1021.00", "15-1253.00", ""],
        "score_1": [0.9, 0.8, 0.7],
        "confidence": [0.9, 0.8, 0.7],
        "status": ["coded", "review", "coded"],
    }
    data.update(overrides)
    return pd.DataFrame(data)


# --- gold ------------------------------------------------------------------------------------
def test_gold_normalised() -> None:
    df = validate_gold(pd.DataFrame({"id": [1, "x"], "codes": ["a; b;a", " c "]}))
    assert df["id"].tolist() == ["1", "x"]
    assert df["codes"].tolist() == [("a", "b"), ("c",)]


def test_gold_empty_codes_names_row_and_id() -> None:
    ids = [f"r{i}" for i in range(1, 18)]
    codes = ["11-1011.00"] * 16 + [" ; "]
    ids[16] = "x"
    with pytest.raises(ValidationError, match=r"^gold row 17 \(id='x'\): empty codes$"):
        validate_gold(pd.DataFrame({"id": ids, "codes": codes}))


def test_gold_missing_column() -> None:
    with pytest.raises(ValidationError, match="gold is missing column 'codes'"):
        validate_gold(pd.DataFrame({"id": ["a"], "code": ["x"]}))


def test_gold_duplicate_and_empty_ids_reported_together() -> None:
    df = pd.DataFrame({"id": ["a", "b", "a", ""], "codes": ["x", "y", "z", "w"]})
    with pytest.raises(ValidationError) as info:
        validate_gold(df)
    err = info.value
    assert "gold has duplicate id 'a' (rows 1 and 3)" in err.problems
    assert "gold row 4: empty id" in err.problems
    assert str(err).startswith("gold has 2 problem(s):")


def test_many_problems_are_capped() -> None:
    df = pd.DataFrame({"id": [str(i) for i in range(30)], "codes": [""] * 30})
    with pytest.raises(ValidationError) as info:
        validate_gold(df)
    assert len(info.value.problems) == 20
    assert info.value.n_more == 10
    assert "... and 10 more" in str(info.value)


# --- pred ------------------------------------------------------------------------------------
def test_pred_ok() -> None:
    t = validate_pred(_pred())
    assert t.n_ranked == 2
    assert t.ranked[2] == ["29-1141.00", ""]
    assert t.status == ["coded", "review", "coded"]
    assert math.isnan(t.scores[0][1])  # no score_2 column


def test_pred_missing_code_1() -> None:
    with pytest.raises(ValidationError, match="pred is missing column 'code_1'"):
        validate_pred(_pred().drop(columns=["code_1"]))


def test_pred_missing_id_column() -> None:
    with pytest.raises(ValidationError, match="pred is missing column 'id'"):
        validate_pred(_pred().drop(columns=["id"]))


def test_pred_code_column_gap() -> None:
    df = _pred().rename(columns={"code_2": "code_3"})
    with pytest.raises(ValidationError, match="pred has column 'code_3' but not 'code_2'"):
        validate_pred(df)


def test_pred_confidence_falls_back_to_score_1_else_fails() -> None:
    t = validate_pred(_pred().drop(columns=["confidence"]))
    assert t.confidence == [0.9, 0.8, 0.7]
    with pytest.raises(ValidationError, match="pred is missing column 'confidence'"):
        validate_pred(_pred().drop(columns=["confidence", "score_1"]))


def test_pred_confidence_outside_unit_interval() -> None:
    with pytest.raises(
        ValidationError, match=r"pred row 2 \(id='b'\): confidence 1.3 outside \[0, 1\]"
    ):
        validate_pred(_pred(confidence=[0.5, 1.3, 0.2]))
    with pytest.raises(ValidationError, match=r"pred row 1 \(id='a'\): confidence -0.1 outside"):
        validate_pred(_pred(confidence=[-0.1, 0.3, 0.2]))


def test_pred_confidence_not_a_number_or_missing() -> None:
    with pytest.raises(ValidationError, match=r"pred row 3 \(id='c'\): confidence 'high' is not"):
        validate_pred(_pred(confidence=["0.5", "0.3", "high"]))
    with pytest.raises(ValidationError, match=r"pred row 1 \(id='a'\): confidence is missing"):
        validate_pred(_pred(confidence=[None, 0.3, 0.2]))


def test_pred_error_rows_may_omit_confidence() -> None:
    t = validate_pred(
        _pred(confidence=[None, 0.3, 0.2], status=["error:llm timeout", "coded", "review"])
    )
    assert t.status[0] == "error"
    assert t.error_reason[0] == "llm timeout"


def test_pred_unknown_status() -> None:
    with pytest.raises(ValidationError, match=r"pred row 2 \(id='b'\): unknown status 'done'"):
        validate_pred(_pred(status=["coded", "done", "coded"]))


def test_pred_duplicate_ids() -> None:
    with pytest.raises(ValidationError, match=r"pred has duplicate id 'a' \(rows 1 and 3\)"):
        validate_pred(_pred(id=["a", "b", "a"]))


def test_pred_bad_score() -> None:
    with pytest.raises(ValidationError, match=r"pred row 1 \(id='a'\): score_1 'n/a' is not a"):
        validate_pred(_pred(score_1=["n/a", "0.8", "0.7"]))


def test_pred_set_size_must_match_set_codes() -> None:
    with pytest.raises(ValidationError, match=r"pred row 2 \(id='b'\): set_size 3 but set_codes"):
        validate_pred(_pred(set_codes=["a", "a;b", "c"], set_size=[1, 3, 1]))
    with pytest.raises(ValidationError, match=r"set_size -1 is not a non-negative integer"):
        validate_pred(_pred(set_size=[1, -1, 1]))
    t = validate_pred(_pred(set_codes=["a", "a;b", ""]))
    assert t.set_size == [1, 2, 0]


def test_pred_must_be_dataframe() -> None:
    with pytest.raises(ValidationError, match="pred must be a pandas DataFrame"):
        validate_pred([{"id": "a"}])  # type: ignore[arg-type]


# --- helpers ---------------------------------------------------------------------------------
def test_split_codes_and_numeric_cells() -> None:
    assert split_codes(2654.0) == ("2654",)
    assert split_codes(None) == ()
    assert split_codes(float("nan")) == ()
    assert split_codes("b;a;b") == ("b", "a")


def test_align_reports_missing_and_extra_ids() -> None:
    al = align(["1", "2", "3"], ["3", "1", "9"])
    assert al.index == [1, -1, 0]
    assert al.missing_ids == ["2"]
    assert al.extra_ids == ["9"]
