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


def validate_pred(pred: pd.DataFrame) -> PredTable:
    """Check a prediction table and return it as a :class:`PredTable`.

    ``confidence`` falls back to ``score_1`` when the column is absent; ``status`` defaults to
    ``coded``. Confidence must lie in [0, 1]; it may be empty only on ``error`` rows.
    """
    what = "pred"
    _check_columns(pred, what, ("id",))
    n_ranked = _code_columns(pred, what)
    if "confidence" in pred.columns:
        conf_col = "confidence"
    elif "score_1" in pred.columns:
        conf_col = "score_1"
    else:
        raise ValidationError(
            what, [f"{what} is missing column 'confidence' (and has no 'score_1' to use instead)"]
        )
    problems = _Problems(what)
    ids = _ids(pred, what, problems)
    n = len(pred)
    cols = [str(c) for c in pred.columns]

    ranked = [[as_text(v) for v in pred[f"code_{k}"].tolist()] for k in range(1, n_ranked + 1)]
    labels = [
        [as_text(v) for v in pred[f"label_{k}"].tolist()]
        if f"label_{k}" in pred.columns
        else [""] * n
        for k in range(1, n_ranked + 1)
    ]
    scores: list[list[float]] = []
    for k in range(1, n_ranked + 1):
        col = f"score_{k}"
        if col not in pred.columns:
            scores.append([math.nan] * n)
            continue
        vals: list[float] = []
        for i, v in enumerate(pred[col].tolist()):
            x = _number(v)
            if x is None:
                problems.add(f"{_row_ref(what, i, ids[i])}: {col} {v!r} is not a number")
                x = math.nan
            vals.append(x)
        scores.append(vals)

    status: list[str] = []
    reasons: list[str] = []
    if "status" in pred.columns:
        for i, v in enumerate(pred["status"].tolist()):
            parsed = _parse_status(v)
            if parsed is None:
                problems.add(
                    f"{_row_ref(what, i, ids[i])}: unknown status {as_text(v)!r} "
                    "(expected 'coded', 'review' or 'error:<reason>')"
                )
                parsed = ("error", "invalid status")
            status.append(parsed[0])
            reasons.append(parsed[1])
    else:
        status = ["coded"] * n
        reasons = [""] * n

    confidence: list[float] = []
    for i, v in enumerate(pred[conf_col].tolist()):
        x = _number(v)
        ref = _row_ref(what, i, ids[i])
        if x is None:
            problems.add(f"{ref}: {conf_col} {v!r} is not a number")
            x = math.nan
        elif math.isnan(x):
            if status[i] != "error":
                problems.add(f"{ref}: {conf_col} is missing (only error rows may omit it)")
        elif not 0.0 <= x <= 1.0:
            problems.add(f"{ref}: {conf_col} {x:g} outside [0, 1]")
        confidence.append(x)

    set_codes: list[tuple[str, ...]] | None = None
    set_size: list[int] | None = None
    if "set_codes" in pred.columns:
        set_codes = [split_codes(v) for v in pred["set_codes"].tolist()]
    if "set_size" in pred.columns:
        set_size = []
        for i, v in enumerate(pred["set_size"].tolist()):
            x = _number(v)
            ref = _row_ref(what, i, ids[i])
            if x is None or (not math.isnan(x) and (x < 0 or not float(x).is_integer())):
                problems.add(f"{ref}: set_size {v!r} is not a non-negative integer")
                x = 0.0
            elif math.isnan(x):
                x = float(len(set_codes[i])) if set_codes is not None else 0.0
            size = int(x)
            if set_codes is not None and size != len(set_codes[i]):
                problems.add(
                    f"{ref}: set_size {size} but set_codes lists {len(set_codes[i])} code(s)"
                )
            set_size.append(size)
    elif set_codes is not None:
        set_size = [len(s) for s in set_codes]

    problems.raise_if_any()
    return PredTable(
        ids=ids,
        ranked=[list(r) for r in zip(*ranked, strict=True)] if n else [],
        labels=[list(r) for r in zip(*labels, strict=True)] if n else [],
        scores=[list(r) for r in zip(*scores, strict=True)] if n else [],
        confidence=confidence,
        status=status,
        error_reason=reasons,
        set_codes=set_codes,
        set_size=set_size,
        n_ranked=n_ranked,
        columns=cols,
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
