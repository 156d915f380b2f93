"""``autocoder review pull`` and ``review status``: bring answers back, count what is where.

Pull reads every task of the project with its annotations and stores each completed (not
skipped) annotation in the feedback store, keyed by its Label Studio id: pulling twice stores
nothing twice, an answer edited in Label Studio is updated, and every annotator's answer is kept.
Every usable answer (a code, not "cannot code" or only "emerging") then becomes a coded example
of source ``review:<project>`` (``autocoder.examples``; each annotator's vote kept), so the next
``autocoder code`` codes an answered title as answered.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from autocoder.config import Settings
from autocoder.review import queue
from autocoder.review.labelstudio import (
    LabelStudioClient,
    ReviewUnavailable,
    parse_annotation,
    resolve_connection,
)
from autocoder.taxonomy.store import load_taxonomy
from autocoder.workspace import Workspace


@dataclass
class PullResult:
    project: str
    ls_project_id: int
    tasks: int = 0  # tasks of the project on the server
    annotated_tasks: int = 0  # tasks with at least one completed annotation
    new: int = 0  # annotations stored for the first time
    updated: int = 0  # annotations edited since the last pull
    unchanged: int = 0
    skipped: int = 0  # cancelled ("skip") annotations, not answers
    foreign: int = 0  # tasks without a record_id from this queue (imported by hand)
    examples: int = 0  # usable answers now in the examples store (source review:<project>)
    examples_rejected: list[dict[str, Any]] = field(default_factory=list)  # row, title, reason
    conflicting_titles: int = 0  # answered titles whose answers disagree


def answers_to_examples(ws: Workspace, project: str, result: PullResult) -> None:
    """Make the project's usable answers the examples of source ``review:<project>``."""
    from autocoder.examples.ops import frame_rows, replace_source
    from autocoder.examples.store import AddSpec, ExampleStore, review_source

    info = queue.project_info(ws, project) or {}
    if not info.get("taxonomy"):
        return
    taxonomy = load_taxonomy(ws, info["taxonomy"])
    feedback = queue.load_feedback(ws, project)
    usable = feedback[(feedback["code"].fillna("") != "") & ~feedback["cannot_code"]]
    source = review_source(project)
    rows = frame_rows(usable.reset_index(drop=True), AddSpec(code_column="code"),
                      source=source, file="")  # fmt: skip
    store = ExampleStore.of(ws, taxonomy.name)
    if not len(rows):
        store.remove_source(source)
        return
    report = replace_source(store, taxonomy, rows)
    result.examples = report.added
    result.examples_rejected = report.rejected
    result.conflicting_titles = len(report.conflicts)


def project_id(ws: Workspace, project: str) -> int:
    info = queue.project_info(ws, project)
    if info is None or info.get("ls_project_id") is None:
        raise ValueError(
            f"review project {project!r} has nothing in Label Studio yet: run "
            f"`autocoder review push INPUT --project {project}` first"
        )
    return int(info["ls_project_id"])


def _known_codes(ws: Workspace, project: str) -> set[str] | None:
    info = queue.project_info(ws, project) or {}
    if not info.get("taxonomy"):
        return None
    try:
        return set(load_taxonomy(ws, info["taxonomy"]).codes)
    except FileNotFoundError:
        return None


def _answer(ann: dict[str, Any], task: dict[str, Any], known: set[str] | None,
            users: dict[int, str], version: str) -> queue.Answer:  # fmt: skip
    parsed = parse_annotation(ann.get("result") or [], known)
    uid = ann.get("completed_by")
    annotator = users.get(int(uid)) if uid is not None else None
    return queue.Answer(
        annotation_id=int(ann["id"]),
        record_id=str(task["data"]["record_id"]),
        code=parsed.code,
        emerging=parsed.emerging,
        cannot_code=parsed.cannot_code,
        note=parsed.note,
        annotator=annotator or str(ann.get("created_username") or uid or ""),
        created_at=str(ann.get("created_at") or ""),
        updated_at=str(ann.get("updated_at") or ""),
        model_version=version,
        ls_task_id=int(task["id"]),
    )


def pull(settings: Settings, ws: Workspace, *, project: str) -> PullResult:
    """Store the project's completed annotations; raises ``ReviewUnavailable`` when down."""
    pid = project_id(ws, project)
    client = LabelStudioClient(resolve_connection(settings, ws), timeout=settings.review.timeout)
    known = _known_codes(ws, project)
    sent = {t.record_id: t for t in queue.sent_tasks(ws, project).values()}
    pending = {t.record_id for t in queue.pending_tasks(ws, project)}
    result = PullResult(project=project, ls_project_id=pid)
    answers: list[queue.Answer] = []
    late: dict[str, int] = {}
    tasks = list(client.iter_tasks(pid, with_annotations=True))
    users = client.user_names()
    for task in tasks:
        result.tasks += 1
        rid = (task.get("data") or {}).get("record_id")
        if rid is None or (str(rid) not in sent and str(rid) not in pending):
            result.foreign += 1
            continue
        rid = str(rid)
        if rid in pending:  # sent by a push that stopped before it could note the task id
            late[rid] = int(task["id"])
        done = [a for a in task.get("annotations") or [] if not a.get("was_cancelled")]
        result.skipped += len(task.get("annotations") or []) - len(done)
        result.annotated_tasks += bool(done)
        version = (
            sent[rid].model_version if rid in sent else str(task["data"].get("model_version", ""))
        )
        answers.extend(_answer(a, task, known, users, version) for a in done)
    if late:
        queue.mark_sent(ws, project, late)
    result.new, result.updated = queue.store_answers(ws, project, answers)
    result.unchanged = len(answers) - result.new - result.updated
    answers_to_examples(ws, project, result)
    return result


def review_status(
    settings: Settings, ws: Workspace, project: str | None = None, *, live: bool = True
) -> dict[str, Any]:
    """Counts per project (pushed, annotated, pulled, pending) and agreement.

    With ``live`` the server is asked how many tasks are annotated there (``annotated_on_server``,
    which may be ahead of ``annotated``, the records with a pulled answer); when it cannot be
    reached ``server`` says so and the local counts stand alone.
    """
    names = [project] if project else queue.list_projects(ws)
    if project and project not in queue.list_projects(ws):
        raise ValueError(f"no review project {project!r} in {queue.queue_path(ws)}")
    client = None
    server = "not asked"
    if live and names:
        try:
            client = LabelStudioClient(resolve_connection(settings, ws), timeout=min(
                settings.review.timeout, 10.0))  # fmt: skip
            client.check()
            server = client.conn.shown
        except ReviewUnavailable as exc:
            server, client = f"unreachable: {exc}", None
    out: dict[str, Any] = {"server": server, "projects": {}}
    for name in names:
        info = queue.project_info(ws, name) or {}
        entry: dict[str, Any] = {
            **queue.counts(ws, name),
            "ls_project_id": info.get("ls_project_id"),
            "taxonomy": info.get("taxonomy"),
            "agreement": queue.agreement(queue.load_feedback(ws, name)),
        }
        if client is not None and info.get("ls_project_id") is not None:
            tasks = client.iter_tasks(int(info["ls_project_id"]), with_annotations=True)
            entry["annotated_on_server"] = sum(
                any(not a.get("was_cancelled") for a in t.get("annotations") or []) for t in tasks
            )
        out["projects"][name] = entry
    return out
