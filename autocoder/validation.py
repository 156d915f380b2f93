"""Check and normalise the tables that ``autocoder eval`` compares.

Gold table: ``id`` and ``codes`` (one or more ``;``-separated acceptable codes, the first one is
the row's class). Prediction table: ``id``, ``code_1..code_N`` and optional ``label_k``,
``score_k``, ``confidence``, ``status`` (``coded``, ``review`` or ``error:<reason>``),
``set_size`` and ``set_codes`` (conformal prediction sets, ``;``-separated).

Every problem names the table, the row and the record id. Rows are numbered from 1 in the
order of the table, header excluded (row 1 = first record). All problems found (up to
``MAX_PROBLEMS``) are raised together in one :class:`ValidationError`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

MAX_PROBLEMS = 20
STATUSES = ("coded", "review", "error")
_CODE_COL = re.compile(r"^code_(\d+)$")


class ValidationError(ValueError):
    """A gold or prediction table is malformed; ``problems`` lists every message."""

    def __init__(self, what: str, problems: list[str], n_more: int = 0) -> None:
        self.what = what
        self.problems = list(problems)
        self.n_more = n_more
        if len(problems) == 1 and not n_more:
            msg = problems[0]
        else:
            lines = [f"{what} has {len(problems) + n_more} problem(s):"]
            lines += [f"  - {p}" for p in problems]
            if n_more:
                lines.append(f"  ... and {n_more} more")
            msg = "\n".join(lines)
        super().__init__(msg)


class _Problems:
    """Collects messages, keeping the first ``MAX_PROBLEMS``."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.items: list[str] = []
        self.n_more = 0

    def add(self, msg: str) -> None:
        if len(self.items) < MAX_PROBLEMS:
            self.items.append(msg)
        else:
            self.n_more += 1

    def raise_if_any(self) -> None:
        if self.items:
            raise ValidationError(self.what, self.items, self.n_more)


def is_missing(value: Any) -> bool:
    """None, NaN/NA or a blank string."""
    if value is None:
        return True
    if isinstance(value, str):
        return value.strip() == ""
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def as_text(value: Any) -> str:
    """A cell as stripped text; missing -> ``""``; integral floats lose their ``.0``.

    Codes read as numbers (ISCO ``2654`` from a JSON number) come back as ``"2654"``. Leading
    zeros already lost by a numeric reader cannot be recovered; read such tables as text.
    """
    if is_missing(value):
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def split_codes(value: Any) -> tuple[str, ...]:
    """``"a; b;;a"`` -> ``("a", "b")``: stripped, empties dropped, first occurrence kept."""
    text = as_text(value)
    if not text:
        return ()
    out: list[str] = []
    for part in text.split(";"):
        part = part.strip()
        if part and part not in out:
            out.append(part)
    return tuple(out)


def _row_ref(what: str, i: int, rid: str) -> str:
    return f"{what} row {i + 1} (id={rid!r})" if rid else f"{what} row {i + 1}"


def _check_columns(df: Any, what: str, required: Iterable[str]) -> None:
    if not isinstance(df, pd.DataFrame):
        raise ValidationError(what, [f"{what} must be a pandas DataFrame, got {type(df).__name__}"])
    for col in required:
        if col not in df.columns:
            have = ", ".join(map(str, df.columns)) or "(none)"
            raise ValidationError(what, [f"{what} is missing column {col!r} (columns: {have})"])


def _ids(df: pd.DataFrame, what: str, problems: _Problems) -> list[str]:
    ids = [as_text(v) for v in df["id"].tolist()]
    first_row: dict[str, int] = {}
    for i, rid in enumerate(ids):
        if not rid:
            problems.add(f"{what} row {i + 1}: empty id")
        elif rid in first_row:
            problems.add(f"{what} has duplicate id {rid!r} (rows {first_row[rid] + 1} and {i + 1})")
        else:
            first_row[rid] = i
    return ids


def validate_gold(gold: pd.DataFrame) -> pd.DataFrame:
    """Check a gold table; return ``id`` (str) and ``codes`` (tuple of acceptable codes)."""
    what = "gold"
    _check_columns(gold, what, ("id", "codes"))
    problems = _Problems(what)
    ids = _ids(gold, what, problems)
    codes = [split_codes(v) for v in gold["codes"].tolist()]
    for i, (rid, cs) in enumerate(zip(ids, codes, strict=True)):
        if not cs:
            problems.add(f"{_row_ref(what, i, rid)}: empty codes")
    problems.raise_if_any()
    return pd.DataFrame(
        {"id": pd.Series(ids, dtype=object), "codes": pd.Series(codes, dtype=object)}
    )


@dataclass
class PredTable:
    """A checked prediction table (one entry per row, in table order)."""

    ids: list[str]
    ranked: list[list[str]]  # code_1..code_N, "" where empty
    labels: list[list[str]]  # label_1..label_N, "" where absent
    scores: list[list[float]]  # score_1..score_N, NaN where absent
    confidence: list[float]  # NaN only on error rows
    status: list[str]  # "coded" | "review" | "error"
    error_reason: list[str]
    set_codes: list[tuple[str, ...]] | None = None
    set_size: list[int] | None = None
    n_ranked: int = 0
    columns: list[str] = field(default_factory=list)


def _code_columns(df: pd.DataFrame, what: str) -> int:
    nums = sorted(int(m.group(1)) for c in df.columns if (m := _CODE_COL.match(str(c))))
    if not nums or nums[0] != 1:
        raise ValidationError(what, [f"{what} is missing column 'code_1'"])
    for expected, got in enumerate(nums, start=1):
        if got != expected:
            raise ValidationError(
                what, [f"{what} has column 'code_{got}' but not 'code_{expected}'"]
            )
    return nums[-1]


def _number(value: Any) -> float | None:
    """A numeric cell as float; NaN when missing; None when not a number."""
    if is_missing(value):
        return math.nan
    if isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _parse_status(value: Any) -> tuple[str, str] | None:
    text = as_text(value)
    low = text.lower()
    if low in ("coded", "review"):
        return low, ""
    if low == "error" or low.startswith("error:"):
        return "error", text[len("error:") :].strip() if ":" in text else ""
    return None


def _confidence_column(pred: pd.DataFrame, what: str) -> str:
    if "confidence" in pred.columns:
        return "confidence"
    if "score_1" in pred.columns:
        return "score_1"
    raise ValidationError(
        what, [f"{what} is missing column 'confidence' (and has no 'score_1' to use instead)"]
    )


def _text_column(pred: pd.DataFrame, col: str) -> list[str]:
    """A column as stripped text; ``""`` everywhere when the column is absent."""
    if col not in pred.columns:
        return [""] * len(pred)
    return [as_text(v) for v in pred[col].tolist()]


def _score_column(pred: pd.DataFrame, col: str, ids: list[str], problems: _Problems) -> list[float]:
    """A numeric column; NaN where empty, where not a number (a problem) or when absent."""
    if col not in pred.columns:
        return [math.nan] * len(pred)
    vals: list[float] = []
    for i, v in enumerate(pred[col].tolist()):
        x = _number(v)
        if x is None:
            problems.add(f"{_row_ref('pred', i, ids[i])}: {col} {v!r} is not a number")
            x = math.nan
        vals.append(x)
    return vals


def _statuses(pred: pd.DataFrame, ids: list[str], problems: _Problems) -> list[tuple[str, str]]:
    """``(status, error reason)`` per row; ``coded`` when the table has no status column."""
    if "status" not in pred.columns:
        return [("coded", "")] * len(pred)
    out: list[tuple[str, str]] = []
    for i, v in enumerate(pred["status"].tolist()):
        parsed = _parse_status(v)
        if parsed is None:
            problems.add(
                f"{_row_ref('pred', i, ids[i])}: unknown status {as_text(v)!r} "
                "(expected 'coded', 'review' or 'error:<reason>')"
            )
            parsed = ("error", "invalid status")
        out.append(parsed)
    return out


def _confidences(
    pred: pd.DataFrame, col: str, ids: list[str], status: list[str], problems: _Problems
) -> list[float]:
    """Confidence in [0, 1] per row; it may be missing (NaN) only on error rows."""
    out: list[float] = []
    for i, v in enumerate(pred[col].tolist()):
        x = _number(v)
        ref = _row_ref("pred", i, ids[i])
        if x is None:
            problems.add(f"{ref}: {col} {v!r} is not a number")
            x = math.nan
        elif math.isnan(x):
            if status[i] != "error":
                problems.add(f"{ref}: {col} is missing (only error rows may omit it)")
        elif not 0.0 <= x <= 1.0:
            problems.add(f"{ref}: {col} {x:g} outside [0, 1]")
        out.append(x)
    return out


def _set_size(value: Any, ref: str, codes: tuple[str, ...] | None, problems: _Problems) -> int:
    """One row's ``set_size``; an empty cell is the number of ``set_codes`` (0 without them)."""
    x = _number(value)
    if x is None or (not math.isnan(x) and (x < 0 or not float(x).is_integer())):
        problems.add(f"{ref}: set_size {value!r} is not a non-negative integer")
        x = 0.0
    elif math.isnan(x):
        x = float(len(codes)) if codes is not None else 0.0
    size = int(x)
    if codes is not None and size != len(codes):
        problems.add(f"{ref}: set_size {size} but set_codes lists {len(codes)} code(s)")
    return size


def _prediction_sets(
    pred: pd.DataFrame, ids: list[str], problems: _Problems
) -> tuple[list[tuple[str, ...]] | None, list[int] | None]:
    """``set_codes`` and ``set_size`` (conformal prediction sets), None when absent."""
    set_codes = None
    if "set_codes" in pred.columns:
        set_codes = [split_codes(v) for v in pred["set_codes"].tolist()]
    if "set_size" not in pred.columns:
        return set_codes, [len(s) for s in set_codes] if set_codes is not None else None
    sizes = [
        _set_size(v, _row_ref("pred", i, ids[i]), set_codes[i] if set_codes else None, problems)
        for i, v in enumerate(pred["set_size"].tolist())
    ]
    return set_codes, sizes


def _rows(columns: list[list[Any]], n: int) -> list[list[Any]]:
    """Column lists -> row lists."""
    return [list(r) for r in zip(*columns, strict=True)] if n else []


def validate_pred(pred: pd.DataFrame) -> PredTable:
    """Check a prediction table and return it as a :class:`PredTable`.

    ``confidence`` falls back to ``score_1`` when the column is absent; ``status`` defaults to
    ``coded``. Confidence must lie in [0, 1]; it may be empty only on ``error`` rows.
    """
    what = "pred"
    _check_columns(pred, what, ("id",))
    n_ranked = _code_columns(pred, what)
    conf_col = _confidence_column(pred, what)
    problems = _Problems(what)
    ids = _ids(pred, what, problems)
    ks = range(1, n_ranked + 1)
    ranked = [_text_column(pred, f"code_{k}") for k in ks]
    labels = [_text_column(pred, f"label_{k}") for k in ks]
    scores = [_score_column(pred, f"score_{k}", ids, problems) for k in ks]
    statuses = _statuses(pred, ids, problems)
    status = [s for s, _ in statuses]
    confidence = _confidences(pred, conf_col, ids, status, problems)
    set_codes, set_size = _prediction_sets(pred, ids, problems)
    problems.raise_if_any()
    n = len(pred)
    return PredTable(
        ids=ids,
        ranked=_rows(ranked, n),
        labels=_rows(labels, n),
        scores=_rows(scores, n),
        confidence=confidence,
        status=status,
        error_reason=[r for _, r in statuses],
        set_codes=set_codes,
        set_size=set_size,
        n_ranked=n_ranked,
        columns=[str(c) for c in pred.columns],
    )


@dataclass
class Alignment:
    """Where each gold row's prediction is: ``index[i]`` is a pred row or -1 when missing."""

    index: list[int]
    missing_ids: list[str]
    extra_ids: list[str]


def align(gold_ids: list[str], pred_ids: list[str]) -> Alignment:
    """Match gold ids to prediction rows. Missing ones are reported, never an error."""
    pos = {rid: i for i, rid in enumerate(pred_ids)}
    index = [pos.get(rid, -1) for rid in gold_ids]
    gold_set = set(gold_ids)
    return Alignment(
        index=index,
        missing_ids=[rid for rid, j in zip(gold_ids, index, strict=True) if j < 0],
        extra_ids=[rid for rid in pred_ids if rid not in gold_set],
    )
