"""The local queue and feedback store (SQLite), agreement figures: no server needed."""

from __future__ import annotations

import pandas as pd
import pytest

from autocoder.review import queue
from autocoder.review.queue import Answer, QueuedTask
from autocoder.workspace import Workspace


@pytest.fixture()
def ws(tmp_path) -> Workspace:  # type: ignore[no-untyped-def]
    return Workspace.resolve(tmp_path / "home")


def _task(rid: str) -> QueuedTask:
    return QueuedTask(rid, f"title {rid}", "duties", [{"code": "A", "title": "a", "score": 0.4}],
                      "m1", "entropy", 0.9)  # fmt: skip


def _answer(aid: int, rid: str, code: str, who: str = "ann", updated: str = "t1") -> Answer:
    return Answer(aid, rid, code, annotator=who, created_at="t0", updated_at=updated,
                  model_version="m1", ls_task_id=aid)  # fmt: skip


def test_empty_feedback_has_the_columns(ws: Workspace) -> None:
    fb = queue.load_feedback(ws)
    assert list(fb.columns) == queue.FEEDBACK_COLUMNS and fb.empty
    assert not queue.queue_path(ws).exists()  # reading creates nothing


def test_a_record_is_queued_once_per_project(ws: Workspace) -> None:
    assert queue.enqueue(ws, "p", [_task("1"), _task("2")]) == 2
    assert queue.enqueue(ws, "p", [_task("2"), _task("3")]) == 1
    assert queue.enqueue(ws, "other", [_task("1")]) == 1
    assert [t.record_id for t in queue.pending_tasks(ws, "p")] == ["1", "2", "3"]
    queue.mark_sent(ws, "p", {"1": 11, "3": 13})
    assert [t.record_id for t in queue.pending_tasks(ws, "p")] == ["2"]
    assert set(queue.sent_tasks(ws, "p")) == {11, 13}
    assert queue.sent_tasks(ws, "p")[11].candidates[0]["code"] == "A"
    assert queue.counts(ws, "p") == {
        "queued": 3,
        "pushed": 2,
        "pending": 1,
        "annotated": 0,
        "pulled": 0,
    }
    assert queue.list_projects(ws) == ["other", "p"]


def test_answers_are_stored_once_and_updated_when_edited(ws: Workspace) -> None:
    queue.enqueue(ws, "p", [_task("1"), _task("2")])
    assert queue.store_answers(ws, "p", [_answer(1, "1", "A"), _answer(2, "1", "B", "bob")]) == (
        2,
        0,
    )
    assert queue.store_answers(ws, "p", [_answer(1, "1", "A"), _answer(2, "1", "B", "bob")]) == (
        0,
        0,
    )
    assert queue.store_answers(ws, "p", [_answer(2, "1", "C", "bob", updated="t2")]) == (0, 1)
    fb = queue.load_feedback(ws, "p")
    assert list(fb.columns) == queue.FEEDBACK_COLUMNS
    assert fb[["id", "code", "annotator"]].values.tolist() == [["1", "A", "ann"], ["1", "C", "bob"]]
    assert fb["title"].tolist() == ["title 1", "title 1"]
    assert fb["emerging"].dtype == bool and fb["project"].tolist() == ["p", "p"]
    assert queue.counts(ws, "p")["annotated"] == 1 and queue.counts(ws, "p")["pulled"] == 2
    assert queue.load_feedback(ws, "missing").empty


def _fb(rows: list[tuple[str, str]]) -> pd.DataFrame:
    return pd.DataFrame(
        [{"project": "p", "id": rid, "code": code, "emerging": False, "cannot_code": code == ""}
         for rid, code in rows]
    )  # fmt: skip


def test_agreement_identical_share_and_fleiss_kappa() -> None:
    assert queue.agreement(pd.DataFrame())["multi_annotated"] == 0
    single = queue.agreement(_fb([("1", "A"), ("2", "B")]))
    assert single == {"multi_annotated": 0, "identical": None, "fleiss_kappa": None}
    perfect = queue.agreement(_fb([("1", "A"), ("1", "A"), ("2", "B"), ("2", "B")]))
    assert perfect["identical"] == 1.0 and perfect["fleiss_kappa"] == pytest.approx(1.0)
    mixed = queue.agreement(
        _fb([("1", "A"), ("1", "A"), ("2", "A"), ("2", "B"), ("3", "B"), ("3", ""), ("4", "x")])
    )
    assert mixed["multi_annotated"] == 3 and mixed["identical"] == pytest.approx(1 / 3)
    # hand-computed Fleiss: P_i = 1, 0, 0 -> 1/3; p = A 3/6, B 2/6, cannot 1/6 -> P_e = 14/36
    assert mixed["fleiss_kappa"] == pytest.approx((1 / 3 - 14 / 36) / (1 - 14 / 36))
