"""The local review queue and feedback store: one SQLite file, ``<workspace>/review/queue.sqlite``.

Three tables: ``projects`` (a local project name and its Label Studio id), ``tasks`` (a record
chosen for review; ``ls_task_id`` is NULL while it waits to be sent) and ``annotations`` (every
answer pulled back, one row per Label Studio annotation). ``(project, record_id)`` and
``(project, annotation_id)`` are unique, so a record is never queued twice in a project and a
repeated pull stores nothing twice.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from autocoder.workspace import Workspace

FEEDBACK_COLUMNS = [
    "id",
    "title",
    "description",
    "code",
    "emerging",
    "cannot_code",
    "note",
    "annotator",
    "created_at",
    "model_version",
    "project",
]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS projects (
    name TEXT PRIMARY KEY,
    ls_project_id INTEGER,
    taxonomy TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS tasks (
    project TEXT NOT NULL,
    record_id TEXT NOT NULL,
    title TEXT NOT NULL DEFAULT '',
    description TEXT NOT NULL DEFAULT '',
    candidates TEXT NOT NULL DEFAULT '[]',
    model_version TEXT NOT NULL DEFAULT '',
    strategy TEXT NOT NULL DEFAULT '',
    strategy_score REAL,
    ls_task_id INTEGER,
    queued_at TEXT NOT NULL,
    pushed_at TEXT,
    PRIMARY KEY (project, record_id)
);
CREATE TABLE IF NOT EXISTS annotations (
    project TEXT NOT NULL,
    annotation_id INTEGER NOT NULL,
    ls_task_id INTEGER,
    record_id TEXT NOT NULL,
    code TEXT NOT NULL DEFAULT '',
    emerging INTEGER NOT NULL DEFAULT 0,
    cannot_code INTEGER NOT NULL DEFAULT 0,
    note TEXT NOT NULL DEFAULT '',
    annotator TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL DEFAULT '',
    updated_at TEXT NOT NULL DEFAULT '',
    model_version TEXT NOT NULL DEFAULT '',
    pulled_at TEXT NOT NULL,
    PRIMARY KEY (project, annotation_id)
);
"""


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def queue_path(ws: Workspace) -> Path:
    return ws.root / "review" / "queue.sqlite"


@dataclass(frozen=True)
class QueuedTask:
    """A record chosen for review, with the model's top candidates ``[{code, title, score}]``."""

    record_id: str
    title: str
    description: str = ""
    candidates: list[dict[str, Any]] = field(default_factory=list)
    model_version: str = ""
    strategy: str = ""
    strategy_score: float | None = None
    ls_task_id: int | None = None


@dataclass(frozen=True)
class Answer:
    """One annotation as stored in the feedback store."""

    annotation_id: int
    record_id: str
    code: str
    emerging: bool = False
    cannot_code: bool = False
    note: str = ""
    annotator: str = ""
    created_at: str = ""
    updated_at: str = ""
    model_version: str = ""
    ls_task_id: int | None = None


@contextmanager
def connect(ws: Workspace) -> Iterator[sqlite3.Connection]:
    """Open (and create) the queue; commit on success, roll back on error, always close."""
    path = queue_path(ws)
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, timeout=30)
    conn.row_factory = sqlite3.Row
    try:
        conn.executescript(_SCHEMA)
        yield conn
        conn.commit()
    except BaseException:
        conn.rollback()
        raise
    finally:
        conn.close()


# --- projects -----------------------------------------------------------------------------------
def ensure_project(ws: Workspace, name: str, taxonomy: str = "") -> None:
    with connect(ws) as conn:
        conn.execute(
            "INSERT OR IGNORE INTO projects(name, taxonomy, created_at) VALUES (?, ?, ?)",
            (name, taxonomy, now()),
        )


def project_info(ws: Workspace, name: str) -> dict[str, Any] | None:
    with connect(ws) as conn:
        row = conn.execute("SELECT * FROM projects WHERE name = ?", (name,)).fetchone()
    return dict(row) if row else None


def set_project_id(ws: Workspace, name: str, ls_project_id: int) -> None:
    with connect(ws) as conn:
        conn.execute("UPDATE projects SET ls_project_id = ? WHERE name = ?", (ls_project_id, name))


def list_projects(ws: Workspace) -> list[str]:
    if not queue_path(ws).exists():
        return []
    with connect(ws) as conn:
        return [r["name"] for r in conn.execute("SELECT name FROM projects ORDER BY name")]


# --- tasks --------------------------------------------------------------------------------------
def queued_ids(ws: Workspace, project: str) -> set[str]:
    """Record ids already in the project's queue (pending or sent)."""
    with connect(ws) as conn:
        rows = conn.execute("SELECT record_id FROM tasks WHERE project = ?", (project,))
        return {r["record_id"] for r in rows}


def enqueue(ws: Workspace, project: str, tasks: Sequence[QueuedTask]) -> int:
    """Add tasks as pending; records already queued in the project are ignored. Returns # added."""
    ensure_project(ws, project)
    added = 0
    with connect(ws) as conn:
        for t in tasks:
            cur = conn.execute(
                "INSERT OR IGNORE INTO tasks(project, record_id, title, description, candidates,"
                " model_version, strategy, strategy_score, queued_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    project,
                    t.record_id,
                    t.title,
                    t.description,
                    json.dumps(t.candidates),
                    t.model_version,
                    t.strategy,
                    t.strategy_score,
                    now(),
                ),
            )
            added += cur.rowcount
    return added


def _task(row: sqlite3.Row) -> QueuedTask:
    return QueuedTask(
        record_id=row["record_id"],
        title=row["title"],
        description=row["description"],
        candidates=json.loads(row["candidates"]),
        model_version=row["model_version"],
        strategy=row["strategy"],
        strategy_score=row["strategy_score"],
        ls_task_id=row["ls_task_id"],
    )


def pending_tasks(ws: Workspace, project: str) -> list[QueuedTask]:
    """Tasks queued but not yet sent to Label Studio, in queue order."""
    with connect(ws) as conn:
        rows = conn.execute(
            "SELECT * FROM tasks WHERE project = ? AND ls_task_id IS NULL ORDER BY rowid",
            (project,),
        ).fetchall()
    return [_task(r) for r in rows]


def sent_tasks(ws: Workspace, project: str) -> dict[int, QueuedTask]:
    """Tasks already in Label Studio, by Label Studio task id."""
    with connect(ws) as conn:
        rows = conn.execute(
            "SELECT * FROM tasks WHERE project = ? AND ls_task_id IS NOT NULL", (project,)
        ).fetchall()
    return {r["ls_task_id"]: _task(r) for r in rows}


def mark_sent(ws: Workspace, project: str, task_ids: dict[str, int]) -> None:
    """Record the Label Studio task id of each sent record (``{record_id: task_id}``)."""
    with connect(ws) as conn:
        conn.executemany(
            "UPDATE tasks SET ls_task_id = ?, pushed_at = ? WHERE project = ? AND record_id = ?",
            [(tid, now(), project, rid) for rid, tid in task_ids.items()],
        )


# --- annotations --------------------------------------------------------------------------------
def store_answers(ws: Workspace, project: str, answers: Sequence[Answer]) -> tuple[int, int]:
    """Insert new annotations, update edited ones. Returns (# new, # updated)."""
    new = updated = 0
    with connect(ws) as conn:
        for a in answers:
            row = conn.execute(
                "SELECT updated_at FROM annotations WHERE project = ? AND annotation_id = ?",
                (project, a.annotation_id),
            ).fetchone()
            values = (
                a.ls_task_id, a.record_id, a.code, int(a.emerging), int(a.cannot_code), a.note,
                a.annotator, a.created_at, a.updated_at, a.model_version, now(),
            )  # fmt: skip
            if row is None:
                conn.execute(
                    "INSERT INTO annotations(ls_task_id, record_id, code, emerging, cannot_code,"
                    " note, annotator, created_at, updated_at, model_version, pulled_at,"
                    " project, annotation_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (*values, project, a.annotation_id),
                )
                new += 1
            elif row["updated_at"] != a.updated_at:
                conn.execute(
                    "UPDATE annotations SET ls_task_id = ?, record_id = ?, code = ?, emerging = ?,"
                    " cannot_code = ?, note = ?, annotator = ?, created_at = ?, updated_at = ?,"
                    " model_version = ?, pulled_at = ? WHERE project = ? AND annotation_id = ?",
                    (*values, project, a.annotation_id),
                )
                updated += 1
    return new, updated


def load_feedback(ws: Workspace, project: str | None = None) -> pd.DataFrame:
    """Every pulled answer (all annotators kept), joined with the record's text.

    Columns: id, title, description, code, emerging, cannot_code, note, annotator, created_at,
    model_version, project. ``code`` is "" when the reviewer chose "cannot code" or only flagged
    the record as emerging. Empty frame (same columns) when nothing was pulled.
    """
    if not queue_path(ws).exists():
        return pd.DataFrame({c: pd.Series(dtype=object) for c in FEEDBACK_COLUMNS})
    sql = (
        "SELECT a.record_id AS id, t.title, t.description, a.code, a.emerging, a.cannot_code,"
        " a.note, a.annotator, a.created_at, a.model_version, a.project"
        " FROM annotations a LEFT JOIN tasks t"
        " ON t.project = a.project AND t.record_id = a.record_id"
    )
    params: tuple[Any, ...] = ()
    if project is not None:
        sql += " WHERE a.project = ?"
        params = (project,)
    sql += " ORDER BY a.project, a.created_at, a.annotation_id"
    with connect(ws) as conn:
        df = pd.read_sql_query(sql, conn, params=params)
    for col in ("emerging", "cannot_code"):
        df[col] = df[col].astype(bool)
    for col in ("title", "description"):
        df[col] = df[col].fillna("")
    return df[FEEDBACK_COLUMNS]


# --- counts and agreement -----------------------------------------------------------------------
def counts(ws: Workspace, project: str) -> dict[str, int]:
    """Local counts: queued, pushed (sent), pending (not sent), annotated (records with a pulled
    answer), pulled (answers stored; several per record when several people answered)."""
    with connect(ws) as conn:
        one = conn.execute(
            "SELECT COUNT(*) AS queued, COUNT(ls_task_id) AS pushed FROM tasks WHERE project = ?",
            (project,),
        ).fetchone()
        ann = conn.execute(
            "SELECT COUNT(*) AS pulled, COUNT(DISTINCT record_id) AS annotated"
            " FROM annotations WHERE project = ?",
            (project,),
        ).fetchone()
    return {
        "queued": one["queued"],
        "pushed": one["pushed"],
        "pending": one["queued"] - one["pushed"],
        "annotated": ann["annotated"],
        "pulled": ann["pulled"],
    }


def _category(row: Any) -> str:
    if row.code:
        return str(row.code)
    return "<cannot code>" if row.cannot_code else "<emerging>" if row.emerging else "<none>"


def agreement(feedback: pd.DataFrame) -> dict[str, Any]:
    """Inter-annotator agreement over records answered by two or more annotations.

    ``identical``: share of those records whose answers all name the same code;
    ``fleiss_kappa``: Fleiss' kappa generalised to a varying number of raters per record
    (None when fewer than two such records or when chance agreement is 1).
    """
    if feedback.empty:
        return {"multi_annotated": 0, "identical": None, "fleiss_kappa": None}
    cats = feedback.assign(category=[_category(r) for r in feedback.itertuples(index=False)])
    groups = [g["category"].tolist() for _, g in cats.groupby(["project", "id"]) if len(g) >= 2]
    if not groups:
        return {"multi_annotated": 0, "identical": None, "fleiss_kappa": None}
    identical = sum(len(set(g)) == 1 for g in groups) / len(groups)
    labels = sorted({c for g in groups for c in g})
    pos = {c: j for j, c in enumerate(labels)}
    table = np.zeros((len(groups), len(labels)))
    for i, g in enumerate(groups):
        for c in g:
            table[i, pos[c]] += 1
    n_i = table.sum(axis=1)
    p_i = ((table**2).sum(axis=1) - n_i) / (n_i * (n_i - 1))
    p_j = table.sum(axis=0) / n_i.sum()
    p_e = float((p_j**2).sum())
    kappa = None if len(groups) < 2 or p_e >= 1 else (float(p_i.mean()) - p_e) / (1 - p_e)
    return {"multi_annotated": len(groups), "identical": identical, "fleiss_kappa": kappa}
