"""Label Studio down: push and pull fail clearly (exit 1), a later run catches up, no loss or
duplicate. "Down" is a closed port and a silent socket (accepts, never answers)."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from autocoder.cli import app
from autocoder.review import queue
from autocoder.review.labelstudio import LabelStudioClient, resolve_connection, task_payload
from autocoder.review.push import push
from autocoder.workspace import Workspace

from .conftest import RECORDS, LiveServer, free_port, review_settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture()
def silent_url() -> Iterator[str]:
    """A socket on 127.0.0.1 that accepts connections (kernel backlog) and never answers."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(64)
        yield f"http://127.0.0.1:{s.getsockname()[1]}"


def _cli(ws: Workspace, url: str, token: str, *args: str) -> tuple[int, str]:
    sets = [f"workspace.home={str(ws.root)!r}", f"review.url={url!r}",
            f"review.token={token!r}", "review.timeout=3"]  # fmt: skip
    argv = [x for s in sets for x in ("--set", s)] + ["review", *args]
    r = CliRunner().invoke(app, argv)
    return r.exit_code, r.output


def _server_ids(live: LiveServer, project_id: int) -> list[str]:
    s = review_settings(Path("/nonexistent"), live.url, live.token)
    client = LabelStudioClient(resolve_connection(s, Workspace(Path("/nonexistent"))))
    return [t["data"]["record_id"] for t in client.iter_tasks(project_id, with_annotations=False)]


@pytest.mark.parametrize("down", ["closed_port", "silent_socket"])
def test_push_and_pull_survive_a_down_server(
    down: str, silent_url: str, live_server: LiveServer, mini_model: Path, review_ws: Workspace
) -> None:
    bad = silent_url if down == "silent_socket" else f"http://127.0.0.1:{free_port()}"
    tok, model = live_server.token, str(mini_model)
    code, out = _cli(review_ws, bad, tok, "push", str(RECORDS), "--model", model,
                     "--limit", "6", "--project", "p")  # fmt: skip
    assert code == 1, out
    assert "not reachable" in out and "6 task(s)" in out and "pending" in out
    assert tok not in out
    assert queue.counts(review_ws, "p") == {
        "queued": 6,
        "pushed": 0,
        "pending": 6,
        "annotated": 0,
        "pulled": 0,
    }
    # still down, more input: queued too, nothing chosen twice
    code, out = _cli(review_ws, bad, tok, "push", str(RECORDS), "--model", model,
                     "--limit", "3", "--project", "p")  # fmt: skip
    assert code == 1 and "9 task(s)" in out
    # the server is back: a push without input sends everything pending, once
    code, out = _cli(review_ws, live_server.url, tok, "push", "--project", "p")
    assert code == 0, out
    sent = json.loads(out)
    assert (sent["sent"], sent["pending"]) == (9, 0)
    ids = _server_ids(live_server, sent["ls_project_id"])
    assert len(ids) == len(set(ids)) == 9
    code, out = _cli(review_ws, live_server.url, tok, "simulate", "--project", "p",
                     "--gold", str(RECORDS))  # fmt: skip
    assert code == 0, out
    answered = json.loads(out)["answered"]
    # pull while down: clear failure, nothing stored; later pull fetches every answer once
    code, out = _cli(review_ws, bad, tok, "pull", "--project", "p")
    assert code == 1 and "not reachable" in out
    assert queue.counts(review_ws, "p")["pulled"] == 0
    code, out = _cli(review_ws, live_server.url, tok, "pull", "--project", "p")
    assert code == 0 and json.loads(out)["new"] == answered
    code, out = _cli(review_ws, live_server.url, tok, "pull", "--project", "p")
    assert code == 0 and json.loads(out)["new"] == 0
    fb = queue.load_feedback(review_ws, "p")
    assert len(fb) == answered and fb["id"].is_unique
    code, out = _cli(review_ws, bad, tok, "status", "--project", "p")
    assert code == 0 and "unreachable" in out and "pushed 9" in out


def test_half_done_push_is_not_sent_twice(
    live_server: LiveServer, mini_model: Path, review_ws: Workspace
) -> None:
    """Tasks that reached the server before the queue could note it are recognised by id."""
    s = review_settings(review_ws.root, live_server.url, live_server.token)
    push(s, review_ws, RECORDS, project="half", model_dir=mini_model, limit=4)
    extra = push(s, review_ws, None, project="half")  # nothing pending: nothing sent
    assert extra.sent == 0
    # queue three more, and send two of them behind the queue's back (as a crash would leave)
    bad = review_settings(review_ws.root, f"http://127.0.0.1:{free_port()}", live_server.token)
    with pytest.raises(Exception, match="not reachable"):
        push(bad, review_ws, RECORDS, project="half", model_dir=mini_model, limit=3)
    pending = queue.pending_tasks(review_ws, "half")
    pid = int(queue.project_info(review_ws, "half")["ls_project_id"])  # type: ignore[index]
    client = LabelStudioClient(resolve_connection(s, review_ws))
    client.import_tasks(pid, [task_payload(t) for t in pending[:2]])
    res = push(s, review_ws, None, project="half")
    assert (res.already_on_server, res.sent, res.pending) == (2, 1, 0)
    ids = _server_ids(live_server, pid)
    assert len(ids) == len(set(ids)) == 7
