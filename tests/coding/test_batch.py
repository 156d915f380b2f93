"""Batch coder: one row out per row in, statuses, formats, checkpoint and resume."""

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from autocoder.coding.batch import code_file, failure_status, output_columns
from autocoder.coding.loaded import LoadedCoder
from autocoder.coding.predictor import Capabilities
from autocoder.config import CoderConfig
from autocoder.io import InputError, read_table, write_table
from tests.fakes import KeywordPredictor

KEYWORDS = {"nurse": "29-1141.00", "java": "15-1252.00", "truck": "53-3032.00"}
LABELS = {
    "29-1141.00": "Registered Nurses",
    "15-1252.00": "Software Developers",
    "53-3032.00": "Truck Drivers",
}


def _records(n: int = 10, *, unique: bool = False) -> pd.DataFrame:
    """``n`` records cycling through four titles (``unique``: each title gets its row number)."""
    titles = ["Staff nurse", "Java developer", "Truck driver", "Astronaut"]
    return pd.DataFrame(
        {
            "id": [f"r{i:03d}" for i in range(n)],
            "title": [titles[i % 4] + (f" {i}" if unique else "") for i in range(n)],
            "description": ["" for _ in range(n)],
        }
    )


def _read_out(path: Path) -> pd.DataFrame:
    df = read_table(path)
    for col in ("row", "confidence", "score_1"):
        df[col] = pd.to_numeric(df[col].replace("", np.nan))
    return df


OPTIONS = CoderConfig(top_n=2, threshold=0.5, batch_size=3)


def _run(inp: Path, out: Path, runs: Path, predictor: KeywordPredictor, **kw: object):  # type: ignore[no-untyped-def]
    return code_file(
        inp,
        out,
        coder=LoadedCoder.from_predictor(predictor, labels=LABELS),
        runs_dir=runs,
        options=OPTIONS,
        show_progress=False,
        **kw,  # type: ignore[arg-type]
    )


class Interrupted(KeywordPredictor):
    """Stops the job (like Ctrl-C) when asked for batch number ``stop_at`` (0-based)."""

    def __init__(self, keywords: dict[str, str], stop_at: int) -> None:
        super().__init__(keywords)
        self.stop_at = stop_at

    def predict_proba(self, X: object) -> np.ndarray:
        if self.calls == self.stop_at:
            raise KeyboardInterrupt
        return super().predict_proba(X)


@pytest.mark.parametrize("ext", ["csv", "jsonl", "parquet"])
def test_every_row_gets_a_row_with_status(tmp_path: Path, ext: str) -> None:
    df = _records(8)
    df.loc[5, "title"] = ""  # empty text
    df.loc[6, "id"] = "r000"  # duplicate id
    inp, out = tmp_path / f"in.{ext}", tmp_path / f"out.{ext}"
    write_table(df, inp)
    summary = _run(inp, out, tmp_path / "runs", KeywordPredictor(KEYWORDS))
    res = _read_out(out)
    assert list(res.columns) == output_columns(2)
    assert len(res) == len(df) == summary.rows
    assert res["id"].tolist() == df["id"].tolist()
    status = dict(zip(res["row"], res["status"], strict=True))
    assert status[0] == "coded" and status[3] == "review"  # Astronaut: no keyword -> low confidence
    assert status[5] == "error:empty_text" and status[6] == "error:duplicate_id"
    assert res.loc[0, "code_1"] == "29-1141.00" and res.loc[0, "label_1"] == "Registered Nurses"
    assert res.loc[0, "confidence"] == pytest.approx(0.9)
    assert summary.status == {
        "coded": 4,
        "review": 2,
        "error:empty_text": 1,
        "error:duplicate_id": 1,
    }


def test_resume_after_interruption_has_no_duplicates_or_losses(tmp_path: Path) -> None:
    inp, out, runs = tmp_path / "in.csv", tmp_path / "out.csv", tmp_path / "runs"
    write_table(_records(10, unique=True), inp)
    first = Interrupted(KEYWORDS, stop_at=2)
    with pytest.raises(KeyboardInterrupt):  # interrupted after 2 of 4 batches
        _run(inp, out, runs, first, window_rows=3)
    assert not out.exists() and first.calls == 2
    second = KeywordPredictor(KEYWORDS)
    summary = _run(inp, out, runs, second, window_rows=3)
    assert summary.resumed_batches == 2 and second.calls == 2  # only the missing batches ran
    res = _read_out(out)
    assert res["row"].tolist() == list(range(10))
    assert res["id"].is_unique
    fresh = _run(inp, tmp_path / "fresh.csv", tmp_path / "runs2", KeywordPredictor(KEYWORDS))
    assert fresh.resumed_batches == 0
    pd.testing.assert_frame_equal(res, _read_out(tmp_path / "fresh.csv"))
    assert json.loads((Path(summary.run_dir) / "summary.json").read_text())["rows"] == 10


def test_failing_batch_is_flagged_and_job_finishes(tmp_path: Path) -> None:
    df = _records(6)
    df.loc[4, "title"] = "BOOM"
    inp, out = tmp_path / "in.csv", tmp_path / "out.csv"
    write_table(df, inp)
    _run(inp, out, tmp_path / "runs", KeywordPredictor(KEYWORDS, fail_on="boom"))
    res = _read_out(out)
    assert len(res) == 6
    failed = "error:predict_failed:RuntimeError: model crashed"  # the cause is kept
    assert (res["status"].iloc[3:] == failed).all()
    assert (res["status"].iloc[:3] != failed).all()
    assert np.isnan(res["confidence"].iloc[4])


def test_clear_errors_for_bad_files(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    pd.DataFrame({"key": ["1"], "title": ["x"]}).to_csv(bad, index=False)
    with pytest.raises(InputError, match="no id column 'id'.*coder.id_column"):
        _run(bad, tmp_path / "o.csv", tmp_path / "runs", KeywordPredictor(KEYWORDS))
    with pytest.raises(InputError, match="unsupported file type .xlsx"):
        _run(tmp_path / "x.xlsx", tmp_path / "o.csv", tmp_path / "runs", KeywordPredictor(KEYWORDS))
    with pytest.raises(InputError, match="file not found"):
        _run(
            tmp_path / "none.csv", tmp_path / "o.csv", tmp_path / "runs", KeywordPredictor(KEYWORDS)
        )


def test_hard_killed_process_resumes(tmp_path: Path) -> None:
    """The coding process dies abruptly (os._exit) in its third batch; a new run completes it."""
    import subprocess
    import sys

    from tests.conftest import REPO

    inp, out, runs = tmp_path / "in.csv", tmp_path / "out.csv", tmp_path / "runs"
    write_table(_records(12, unique=True), inp)
    script = f"""
import os
from autocoder.coding.batch import code_file
from autocoder.coding.loaded import LoadedCoder
from autocoder.config import CoderConfig
from tests.fakes import KeywordPredictor

class Dying(KeywordPredictor):
    def predict_proba(self, X):
        if self.calls == 2:
            os._exit(9)  # like SIGKILL: no cleanup, no finally blocks
        return super().predict_proba(X)

code_file({str(inp)!r}, {str(out)!r},
          coder=LoadedCoder.from_predictor(Dying({KEYWORDS!r}), labels={LABELS!r}),
          runs_dir={str(runs)!r}, options=CoderConfig(top_n=2, batch_size=3), show_progress=False,
          window_rows=3)
"""
    died = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True)
    assert died.returncode == 9 and not out.exists()
    second = KeywordPredictor(KEYWORDS)
    summary = code_file(
        inp,
        out,
        coder=LoadedCoder.from_predictor(second, labels=LABELS),
        runs_dir=runs,
        options=CoderConfig(top_n=2, batch_size=3),
        show_progress=False,
        window_rows=3,
    )
    # parts are written while the next window is coded: the last one may not have landed
    assert summary.resumed_batches in (1, 2) and second.calls == 4 - summary.resumed_batches
    res = _read_out(out)
    assert res["row"].tolist() == list(range(12)) and res["id"].is_unique


def test_failure_status_keeps_the_message_on_one_line_and_short() -> None:
    assert failure_status(ValueError("bad\n input")) == "error:predict_failed:ValueError: bad input"
    assert failure_status(MemoryError()) == "error:predict_failed:MemoryError"
    long = failure_status(RuntimeError("x" * 1000))
    assert long.startswith("error:predict_failed:RuntimeError: xxx") and len(long) < 260


def test_conformal_sets_are_written_for_a_set_predictor(tmp_path: Path) -> None:
    class WithSets(KeywordPredictor):
        capabilities = Capabilities(sets=True)  # declared: the coder writes the set columns

        def predict_sets(self, X: object, *, proba: np.ndarray | None = None) -> list[list[str]]:
            assert proba is not None  # the coder passes the probabilities it already has
            return [[str(self.classes_[j]) for j in np.flatnonzero(p > 0.3)] for p in proba]

    inp, out = tmp_path / "in.csv", tmp_path / "out.csv"
    write_table(_records(4), inp)
    _run(inp, out, tmp_path / "runs", WithSets(KEYWORDS))
    res = read_table(out)
    assert list(res.columns) == output_columns(2, with_sets=True)
    assert res["set_codes"].tolist()[0] == "29-1141.00"  # Staff nurse: a keyword hit
    assert res["set_size"].tolist() == ["1", "1", "1", "3"]  # Astronaut: no hit, every code


class Counting(KeywordPredictor):
    """Remembers every record it was asked about."""

    def __init__(self, keywords: dict[str, str]) -> None:
        super().__init__(keywords)
        self.seen: list[object] = []

    def predict_proba(self, X: object) -> np.ndarray:
        records = list(X)  # type: ignore[call-overload]
        self.seen += records
        return super().predict_proba(records)


def test_each_distinct_record_is_predicted_once_per_job(tmp_path: Path) -> None:
    inp, out = tmp_path / "in.csv", tmp_path / "out.csv"
    df = _records(40)
    df.loc[6, "description"] = "night shifts"  # same title, other duties: another record
    write_table(df, inp)
    predictor = Counting(KEYWORDS)
    _run(inp, out, tmp_path / "runs", predictor, window_rows=6)  # 14 batches, 7 windows
    assert len(predictor.seen) == len(set(predictor.seen)) == 5
    assert predictor.calls == 2  # the first window has 4 titles, the next one new record
    res = _read_out(out)
    assert len(res) == 40 and (res["code_1"].iloc[[0, 4, 36]] == "29-1141.00").all()
    assert res.loc[6, "code_1"] == "53-3032.00"  # truck driver, night shifts


@pytest.mark.parametrize("window_rows", [1, 5, 100])
def test_output_does_not_depend_on_the_window(tmp_path: Path, window_rows: int) -> None:
    inp = tmp_path / "in.csv"
    write_table(_records(23), inp)
    ref = tmp_path / "ref.csv"
    _run(inp, ref, tmp_path / "runs-ref", KeywordPredictor(KEYWORDS), window_rows=3)
    out = tmp_path / "out.csv"
    _run(inp, out, tmp_path / "runs", KeywordPredictor(KEYWORDS), window_rows=window_rows)
    assert out.read_bytes() == ref.read_bytes()


def test_prefetch_hands_over_items_and_errors() -> None:
    from autocoder.io import prefetch

    def items() -> Iterator[int]:
        yield from range(5)
        raise InputError("line 6: bad")

    got: list[int] = []
    with pytest.raises(InputError, match="line 6"):
        for i in prefetch(items(), depth=2):
            got.append(i)
    assert got == [0, 1, 2, 3, 4]
    assert list(prefetch(iter(range(1000)), depth=1))[:3] == [0, 1, 2]


def test_uri_columns_follow_the_codes(tmp_path: Path) -> None:
    inp, out = tmp_path / "in.csv", tmp_path / "out.csv"
    write_table(_records(8), inp)
    uris = {"29-1141.00": "http://data.europa.eu/esco/occupation/nurse"}
    code_file(
        inp,
        out,
        coder=LoadedCoder.from_predictor(KeywordPredictor(KEYWORDS), labels=LABELS, uris=uris),
        runs_dir=tmp_path / "runs",
        options=OPTIONS,
        show_progress=False,
    )
    res = read_table(out)
    assert list(res.columns) == output_columns(2, with_uris=True)
    nurse = res["code_1"] == "29-1141.00"
    assert nurse.sum() == 2 and (res.loc[nurse, "uri_1"] == uris["29-1141.00"]).all()
    assert (res.loc[~nurse, "uri_1"] == "").all()
