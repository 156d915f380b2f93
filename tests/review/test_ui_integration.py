"""The labeling interface in a real headless Chromium: the task page renders the record, the
model's suggestions and the whole hierarchy, and the hierarchy is searchable (also at ESCO size).
A screenshot of each page is written to the test's tmp dir (and $AUTOCODER_TEST_ARTIFACTS)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from autocoder.review import queue
from autocoder.review.push import push
from autocoder.workspace import Workspace

from .browser import Browser, chromium, login_cookie
from .conftest import RECORDS, LiveServer, review_settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def session(live_server: LiveServer) -> str:
    if not chromium():
        pytest.fail("chromium is not installed: `apt-get install -y chromium` (scripts/test.sh)")
    password = (live_server.ws.root / "review" / "server" / "password").read_text().strip()
    return login_cookie(live_server.url, "admin@example.com", password)


def _keep(shot: Path) -> None:
    out = os.environ.get("AUTOCODER_TEST_ARTIFACTS")
    if out:
        Path(out).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(out) / shot.name)


def _task_page(ws: Workspace, project: str, record_id: str) -> str:
    pid = queue.project_info(ws, project)["ls_project_id"]  # type: ignore[index]
    tid = next(t for t, q in queue.sent_tasks(ws, project).items() if q.record_id == record_id)
    return f"/projects/{pid}/data?task={tid}"


def test_task_page_renders_record_suggestions_and_search(
    live_server: LiveServer, session: str, mini_model: Path, review_ws: Workspace, tmp_path: Path
) -> None:
    s = review_settings(review_ws.root, live_server.url, live_server.token)
    push(s, review_ws, RECORDS, project="ui", model_dir=mini_model, strategy="random", limit=12)
    best = queue.pending_tasks(review_ws, "ui") or list(queue.sent_tasks(review_ws, "ui").values())
    nurse = next(t for t in best if t.record_id == "r05")
    top = nurse.candidates[0]
    with Browser(live_server.url, session) as b:
        expect = ["Staff Nurse", "Provides nursing care", f"{top['code']} {top['title']}",
                  "Model suggestions", "New / emerging occupation", "Cannot code"]  # fmt: skip
        text = b.open(_task_page(review_ws, "ui", "r05"), expect)
        missing = [e for e in expect if e not in text]
        nodes = b.search_taxonomy("nurse")
        # groups carry their SOC titles, so the search stops at the first group that matches
        # ("29-1141 Registered Nurses", the 6-digit SOC); opening it shows the O*NET codes
        assert "29-1141 Registered Nurses" in nodes, nodes
        nodes = b.expand_taxonomy_node("29-1141 Registered Nurses")
        shot = b.screenshot(tmp_path / "review-task.png")
        _keep(shot)
        assert not missing, f"not on the page: {missing}; screenshot {shot}"
        assert "29-1141.00 Registered Nurses" in nodes, f"{nodes}; screenshot {shot}"


@pytest.mark.shared_data
def test_esco_hierarchy_stays_searchable(
    live_server: LiveServer, session: str, shared_data_dir: Path, tmp_path: Path
) -> None:
    """3,000+ ESCO occupations under 600+ ISCO groups in one Taxonomy tag."""
    from autocoder.api import import_taxonomy

    ws = Workspace.resolve(tmp_path / "home")
    res = import_taxonomy("esco", shared_data_dir / "esco_v1.1.1", ws)
    assert res.n_leaves > 3000
    s = review_settings(
        ws.root, live_server.url, live_server.token, "taxonomy.default='esco'",
        "review.show_skills=false",  # skills: test_task_page_shows_the_records_skills
    )  # fmt: skip
    queue.ensure_project(ws, "esco-ui", "esco")
    queue.enqueue(ws, "esco-ui", [queue.QueuedTask(
        "v1", "Ward nurse", "Cares for patients on a hospital ward",
        [{"code": "2221.2", "title": "nurse responsible for general care", "score": 0.61}], "manual",
    )])  # fmt: skip
    assert push(s, ws, None, project="esco-ui").sent == 1
    with Browser(live_server.url, session) as b:
        text = b.open(_task_page(ws, "esco-ui", "v1"), ["Ward nurse", "2221.2 nurse responsible"])
        assert "Ward nurse" in text and "Another code" in text
        nodes = b.search_taxonomy("midwife")
        shot = b.screenshot(tmp_path / "review-esco-search.png")
        _keep(shot)
        assert any(n.startswith("2222") and "midwi" in n.lower() for n in nodes), nodes


def test_task_page_shows_the_records_skills(
    live_server: LiveServer, session: str, review_ws: Workspace, fixtures_dir: Path, tmp_path: Path
) -> None:
    """The skills block renders the record's top ESCO skills (real extractor, plain MiniLM over
    the ESCO fixture)."""
    from autocoder.api import import_taxonomy
    from autocoder.review.push import TaskSkills
    from autocoder.skills.service import make_extractor

    import_taxonomy("esco", fixtures_dir / "esco_mini", review_ws)
    extractor, _ = make_extractor(review_ws, plain=True, top_k=5, show_progress=False)
    s = review_settings(review_ws.root, live_server.url, live_server.token)
    queue.ensure_project(review_ws, "ui-skills", "onet")
    queue.enqueue(review_ws, "ui-skills", [queue.QueuedTask(
        "k1", "Backend developer", "You write software in Python.",
        [{"code": "15-1252.00", "title": "Software Developers", "score": 0.7}], "manual",
    )])  # fmt: skip
    skills = TaskSkills(review_ws, extractor=extractor)
    assert push(s, review_ws, None, project="ui-skills", skills=skills).sent == 1
    with Browser(live_server.url, session) as b:
        expect = ["Backend developer", "Skills in the text", "develop software", "Software Dev"]
        text = b.open(_task_page(review_ws, "ui-skills", "k1"), expect)
        shot = b.screenshot(tmp_path / "review-task-skills.png")
        _keep(shot)
        missing = [e for e in expect if e not in text]
        assert not missing, f"not on the page: {missing}; screenshot {shot}"
