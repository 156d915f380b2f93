"""``review pull`` → coded examples, against a real Label Studio with a real (small) model."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from autocoder.examples.ops import stats
from autocoder.examples.store import ExampleStore
from autocoder.review.pull import pull
from autocoder.review.push import push
from autocoder.review.simulate import simulate
from autocoder.workspace import Workspace

from .conftest import RECORDS, LiveServer, review_settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_pull_adds_every_usable_answer_with_each_annotators_vote(
    live_server: LiveServer, mini_model: Path, review_ws: Workspace, tmp_path: Path
) -> None:
    s = review_settings(review_ws.root, live_server.url, live_server.token)
    res = push(s, review_ws, RECORDS, project="ex", model_dir=mini_model,
               strategy="per_answer", limit=12)  # fmt: skip
    assert res.queued == 12 and res.settles == 12 and res.settled_per_answer == 1.0
    simulate(s, review_ws, project="ex", gold_path=RECORDS)
    first = pull(s, review_ws, project="ex")
    store = ExampleStore.of(review_ws, "onet")
    df = store.table()
    gold = pd.read_csv(RECORDS, dtype=str, keep_default_na=False)
    coded = gold[gold["codes"] != ""]
    assert first.examples == len(df) == len(coded) == 11  # r12 has no answer: no example
    assert set(df["source"]) == {"review:ex"} and set(df["annotator"]) == {"admin@example.com"}
    assert dict(zip(df["title"], df["code"], strict=True)) == dict(
        zip(coded["title"], coded["codes"].str.split(";").str[0], strict=True)
    )
    assert pull(s, review_ws, project="ex").examples == 11 and len(store) == 11  # idempotent

    # a second annotator who disagrees on one record: both votes kept, the conflict reported
    other = gold.copy()
    other.loc[other["id"] == "r05", "codes"] = "29-1221.00"
    other.to_csv(tmp_path / "other.csv", index=False)
    simulate(s, review_ws, project="ex", gold_path=tmp_path / "other.csv",
             annotator="second@example.com")  # fmt: skip
    second = pull(s, review_ws, project="ex")
    assert second.examples == len(store) == 22
    assert second.conflicting_titles == 1
    nurse = store.table().query("title == 'Staff Nurse'")
    assert sorted(nurse["code"]) == ["29-1141.00", "29-1221.00"]
    assert stats(store)["conflicts"][0]["key"] == "staff nurse"
