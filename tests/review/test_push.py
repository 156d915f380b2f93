"""Push helpers that need no server: input checks, candidates, model version."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from autocoder.config import load_settings
from autocoder.io import InputError
from autocoder.review.labelstudio import ReviewUnavailable
from autocoder.review.push import (
    NO_SKILLS,
    TaskSkills,
    model_version_of,
    payloads,
    push,
    read_records,
    task_skills,
    top_candidates,
    without_skills_block,
)
from autocoder.review.queue import QueuedTask
from autocoder.workspace import Workspace
from tests.fakes import HashingEmbedder, tiny_taxonomy

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


TASKS = [
    QueuedTask("s1", "Software developer", "You write software and do computer programming."),
    QueuedTask("s2", "Stage manager", "Lead a team backstage; theatre techniques."),
    QueuedTask("s3", "", ""),
]


@pytest.fixture()
def esco_ws(tmp_path: Path, fixtures_dir: Path) -> Workspace:
    from autocoder.api import import_taxonomy

    ws = Workspace.resolve(tmp_path / "home")
    import_taxonomy("esco", fixtures_dir / "esco_mini", ws)
    return ws


def _extractor(ws: Workspace, embedder: object) -> object:
    from autocoder.skills.data import SkillCatalog
    from autocoder.skills.extract import SkillExtractor
    from autocoder.skills.service import esco_taxonomy

    return SkillExtractor(embedder, top_k=5).fit(SkillCatalog.from_taxonomy(esco_taxonomy(ws)))


def test_config_keeps_the_skills_block_only_for_projects_with_skills() -> None:
    from autocoder.review.labelstudio import labeling_config

    xml = labeling_config(tiny_taxonomy())
    shown = ET.fromstring(xml)
    assert shown.find(".//Text[@name='skills']").get("value") == "$skills"  # type: ignore[union-attr]
    hidden = ET.fromstring(without_skills_block(xml))
    assert hidden.find(".//Text[@name='skills']") is None
    assert hidden.find(".//View[@className='ac-skills']") is None  # its header went with it
    names = {e.get("name") for e in hidden.iter() if e.get("name")}
    assert names == {"title", "description", "suggested", "code", "flags", "note"}
    assert len(list(hidden.iter("Choice"))) == len(list(shown.iter("Choice")))
    # a skills tag sharing a View with other named tags: only the tag goes
    mixed = "<View><View><Text name='title' value='$title'/><Text name='s' value='$skills'/></View></View>"
    left = ET.fromstring(without_skills_block(mixed))
    assert [e.get("name") for e in left.iter("Text")] == ["title"]


def test_task_skills_needs_the_setting_and_an_imported_esco(
    tmp_path: Path, esco_ws: Workspace
) -> None:
    assert task_skills(load_settings(), Workspace.resolve(tmp_path / "empty")) is None
    assert isinstance(task_skills(load_settings(), esco_ws), TaskSkills)
    off = load_settings(overrides=["review.show_skills=false"])
    assert task_skills(off, esco_ws) is None


def test_payloads_carry_the_real_extractors_top_skills(esco_ws: Workspace) -> None:
    skills = TaskSkills(esco_ws, extractor=_extractor(esco_ws, HashingEmbedder()), top_k=3)
    by_id = {p["data"]["record_id"]: p["data"]["skills"] for p in payloads(TASKS, skills)}
    first = by_id["s1"].split(" · ")
    assert len(first) == 3 and set(first[:2]) == {"develop software", "computer programming"}
    assert by_id["s2"].split(" · ")[0] in {"lead a team", "theatre techniques"}
    assert by_id["s3"] == NO_SKILLS
    plain = payloads(TASKS[:1], None)[0]["data"]
    assert plain["skills"] == "" and plain["title"] == "Software developer"


def test_a_failing_extractor_names_the_setting_that_turns_skills_off(esco_ws: Workspace) -> None:
    class Broken:
        def rank(self, texts: list[str], top_k: int | None = None) -> list[list[object]]:
            raise RuntimeError("matcher weights missing")

    with pytest.raises(ValueError, match="(?s)weights missing.*review.show_skills = false"):
        TaskSkills(esco_ws, extractor=Broken()).lines(TASKS)


@pytest.mark.slow
def test_task_skills_with_plain_minilm_on_the_esco_fixture(esco_ws: Workspace) -> None:
    from autocoder.embed import Embedder

    skills = TaskSkills(
        esco_ws, extractor=_extractor(esco_ws, Embedder(cache_dir=esco_ws.embedding_cache))
    )
    lines = skills.lines(TASKS)
    top = lines[0].split(" · ")
    assert len(top) == 4  # top 5 of the fixture's 4 skills
    assert set(top[:2]) == {"develop software", "computer programming"}
    assert lines[1].split(" · ")[0] in {"lead a team", "theatre techniques"}
    assert lines[2] == NO_SKILLS


def test_choose_asks_the_strategy_and_the_coders_declared_capabilities() -> None:
    from autocoder.coding.loaded import LoadedCoder
    from autocoder.review.push import choose
    from tests.fakes import KeywordPredictor

    records = read_records(RECORDS, load_settings())
    coder = LoadedCoder.from_predictor(KeywordPredictor({"nurse": "29-1141.00", "cook": "c"}))
    tasks, _, settles = choose(coder, records, load_settings(), strategy="entropy", limit=3)
    assert len(tasks) == 3 and settles == 3  # needs no embeddings: none asked for
    with pytest.raises(ValueError, match="needs embeddings; the coder .* has none"):
        choose(coder, records, load_settings(), strategy="entropy+diversity", limit=3)


@pytest.mark.slow
def test_push_with_the_pretrained_model_and_diversity(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`review push --model pretrained --strategy diversity`: the packaged model mixed with
    retrieval over the offline O*NET starter (real MiniLM, real Chroma); embeddings from the
    model's embedder. No server is configured, so the tasks wait in the queue."""
    from autocoder.api import build_index, import_taxonomy
    from autocoder.review import queue
    from autocoder.taxonomy.starter import build_onet_starter

    monkeypatch.delenv("AUTOCODER_REVIEW_URL", raising=False)
    ws = Workspace.resolve(tmp_path)
    import_taxonomy("onet", build_onet_starter(ws.downloads / "onet-starter"), ws)
    settings = load_settings()
    build_index(settings, ws, "onet", show_progress=False)
    with pytest.raises(ReviewUnavailable):
        push(settings, ws, RECORDS, project="p", model_dir="pretrained", strategy="diversity",
             limit=4)  # fmt: skip
    tasks = queue.pending_tasks(ws, "p")
    assert len(tasks) == 4 and len({t.record_id for t in tasks}) == 4
    assert all(t.strategy == "diversity" for t in tasks)
    assert "+retrieval:" in tasks[0].model_version  # the packaged model mixed with retrieval
    scores = [t.strategy_score for t in tasks]
    assert all(s is not None and s > 0 for s in scores[1:])  # k-center distances
    assert len(tasks[0].candidates) == settings.review.top_k
