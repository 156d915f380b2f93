"""Push → simulate → pull against a real Label Studio, with a real (small) model."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from autocoder.cli import app
from autocoder.review import queue
from autocoder.review.pull import pull, review_status
from autocoder.review.push import push
from autocoder.review.simulate import simulate
from autocoder.workspace import Workspace

from .conftest import RECORDS, LiveServer, review_settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _gold() -> dict[str, str]:
    df = pd.read_csv(RECORDS, dtype=str, keep_default_na=False)
    return {r.id: r.codes.split(";")[0] for r in df.itertuples() if r.codes}


def test_push_simulate_pull_roundtrip(
    live_server: LiveServer, mini_model: Path, review_ws: Workspace
) -> None:
    s = review_settings(review_ws.root, live_server.url, live_server.token)
    first = push(s, review_ws, RECORDS, project="loop", model_dir=mini_model,
                 strategy="least_confidence", limit=8)  # fmt: skip
    assert (first.queued, first.sent, first.pending) == (8, 8, 0)
    assert first.model_version.startswith("model:")
    again = push(s, review_ws, RECORDS, project="loop", model_dir=mini_model, limit=8)
    assert again.considered == 4 and again.queued == 4 and again.sent == 4  # never twice
    tasks = queue.sent_tasks(review_ws, "loop")
    assert len(tasks) == 12 and len({t.record_id for t in tasks.values()}) == 12
    assert all(len(t.candidates) == 5 and t.candidates[0]["score"] > 0 for t in tasks.values())

    sim = simulate(s, review_ws, project="loop", gold_path=RECORDS)
    gold = _gold()
    assert sim.answered == len(gold) == 11  # r12 has no gold code: left open
    assert sim.by_suggestion + sim.by_hierarchy == 11
    assert simulate(s, review_ws, project="loop", gold_path=RECORDS).answered == 0

    res = pull(s, review_ws, project="loop")
    assert (res.tasks, res.annotated_tasks, res.new) == (12, 11, 11)
    fb = queue.load_feedback(review_ws, "loop")
    assert list(fb.columns) == queue.FEEDBACK_COLUMNS
    assert dict(zip(fb["id"], fb["code"], strict=True)) == gold
    assert set(fb["annotator"]) == {"admin@example.com"}
    assert fb["model_version"].str.startswith("model:").all()
    assert fb.loc[fb["id"] == "r05", "title"].item() == "Staff Nurse"
    assert pull(s, review_ws, project="loop").new == 0  # idempotent
    assert len(queue.load_feedback(review_ws)) == 11

    # a second annotator on the same tasks: both answers kept, agreement reported
    sim2 = simulate(s, review_ws, project="loop", gold_path=RECORDS, annotator="second@example.com")
    assert sim2.answered == 11
    assert pull(s, review_ws, project="loop").new == 11
    fb = queue.load_feedback(review_ws, "loop")
    assert len(fb) == 22 and set(fb["annotator"]) == {"admin@example.com", "second@example.com"}
    st = review_status(s, review_ws, "loop")["projects"]["loop"]
    assert (st["pushed"], st["pending"], st["annotated"], st["pulled"]) == (12, 0, 11, 22)
    assert st["annotated_on_server"] == 11
    assert st["agreement"]["multi_annotated"] == 11 and st["agreement"]["identical"] == 1.0


def test_cli_push_status_pull(
    live_server: LiveServer, mini_model: Path, review_ws: Workspace
) -> None:
    runner = CliRunner()
    base = ["--set", f"workspace.home={str(review_ws.root)!r}",
            "--set", f"review.url={live_server.url!r}", "--set", f"review.token={live_server.token!r}"]  # fmt: skip
    r = runner.invoke(app, [*base, "review", "push", str(RECORDS), "--model", str(mini_model),
                            "--strategy", "margin+diversity", "--limit", "5", "--project", "cli"])  # fmt: skip
    assert r.exit_code == 0, r.output
    assert live_server.token not in r.output
    r = runner.invoke(
        app, [*base, "review", "simulate", "--project", "cli", "--gold", str(RECORDS)]
    )
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, [*base, "review", "pull", "--project", "cli"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, [*base, "review", "status", "--json"])
    assert r.exit_code == 0, r.output
    import json

    counts = json.loads(r.output)["projects"]["cli"]
    assert counts["pushed"] == 5 and counts["pending"] == 0 and counts["pulled"] >= 4
    r = runner.invoke(app, [*base, "review", "status"])
    assert "cli: pushed 5" in r.output


def test_push_with_skills_puts_them_in_tasks_and_config(
    live_server: LiveServer, mini_model: Path, review_ws: Workspace, fixtures_dir: Path
) -> None:
    """Skills (real extractor: plain MiniLM over the ESCO fixture) reach the server's tasks and
    the project's config; a project pushed with review.show_skills = false has no skills block."""
    from autocoder.api import import_taxonomy
    from autocoder.embed import Embedder
    from autocoder.review.labelstudio import LabelStudioClient, resolve_connection
    from autocoder.review.push import NO_SKILLS, TaskSkills
    from autocoder.skills.service import make_extractor

    import_taxonomy("esco", fixtures_dir / "esco_mini", review_ws)
    extractor, _ = make_extractor(review_ws, plain=True, top_k=5, show_progress=False)
    assert isinstance(extractor.embedder, Embedder)
    s = review_settings(review_ws.root, live_server.url, live_server.token)
    res = push(s, review_ws, RECORDS, project="skills", model_dir=mini_model, limit=3,
               skills=TaskSkills(review_ws, extractor=extractor))  # fmt: skip
    assert res.sent == 3 and res.ls_project_id is not None
    client = LabelStudioClient(resolve_connection(s, review_ws))
    data = [t["data"] for t in client.iter_tasks(res.ls_project_id, with_annotations=False)]
    labels = {"develop software", "computer programming", "theatre techniques", "lead a team"}
    for d in data:
        assert d["skills"] != NO_SKILLS and set(d["skills"].split(" · ")) == labels
    assert "$skills" in client.sdk.projects.get(id=res.ls_project_id).label_config
    off = review_settings(
        review_ws.root, live_server.url, live_server.token, "review.show_skills=false"
    )
    res = push(off, review_ws, RECORDS, project="no-skills", model_dir=mini_model, limit=2)
    assert res.sent == 2 and res.ls_project_id is not None
    assert "$skills" not in client.sdk.projects.get(id=res.ls_project_id).label_config
    data = [t["data"] for t in client.iter_tasks(res.ls_project_id, with_annotations=False)]
    assert [d["skills"] for d in data] == ["", ""]
