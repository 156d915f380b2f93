"""Push helpers that need no server: input checks, candidates, model version."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from autocoder.config import load_settings
from autocoder.io import InputError
from autocoder.review.labelstudio import ReviewUnavailable
from autocoder.review.push import model_version_of, push, read_records, top_candidates
from autocoder.workspace import Workspace

from .conftest import RECORDS


def test_read_records_names_the_bad_record(tmp_path: Path) -> None:
    s = load_settings()
    df = read_records(RECORDS, s)
    assert list(df.columns) == ["id", "title", "description"] and len(df) == 12
    cases = {
        "title\nNurse\n": "no 'id' column",
        "id,title\nr1,Nurse\nr1,Cook\n": "record id 'r1' appears more than once",
        "id,title\nr1,Nurse\n,Cook\n": "record 2 has an empty id",
        "id,title,description\nr1,Nurse,\nr2,,\n": "record 'r2' has neither a title",
    }
    for i, (text, message) in enumerate(cases.items()):
        path = tmp_path / f"in{i}.csv"
        path.write_text(text)
        with pytest.raises(InputError, match=message):
            read_records(path, s)


def test_top_candidates_and_model_version() -> None:
    row = np.array([0.1, 0.6, 0.3], dtype=np.float32)
    cands = top_candidates(row, np.array(["a", "b", "c"]), {"b": "Bee"}, 2)
    assert [c["code"] for c in cands] == ["b", "c"] and cands[0]["title"] == "Bee"
    assert cands[0]["score"] == pytest.approx(0.6)
    assert model_version_of("model:x") == "model:x"
    long = model_version_of("m" * 400)
    assert len(long) <= 250 and long != model_version_of("m" * 399 + "n")


def test_push_without_server_config_keeps_nothing_half_done(tmp_path: Path, fixtures_dir: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    from autocoder.api import import_taxonomy

    monkeypatch.delenv("AUTOCODER_REVIEW_URL", raising=False)
    ws = Workspace.resolve(tmp_path)
    import_taxonomy("onet", fixtures_dir / "onet_mini", ws)
    with pytest.raises(ReviewUnavailable, match="review server start"):
        push(load_settings(), ws, None, project="p")
    with pytest.raises(ValueError, match="--limit"):
        push(load_settings(), ws, RECORDS, project="p", limit=-1)
