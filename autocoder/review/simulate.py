"""``autocoder review simulate``: answer open tasks from already-coded records, like a person.

For each task of the project whose record id is in the gold file and that this annotator has not
answered yet, the first gold code (``;``-separated column, default ``codes``) is sent through the
Label Studio API (``annotations.create``) in the form the labeling interface produces: a click on
the model's suggestion when the gold code is among them, else a pick in the code hierarchy.
Used by the tests and the learning-curve benchmark; also replays a coded sample.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autocoder.config import Settings
from autocoder.io import InputError, read_table
from autocoder.records import clean_text
from autocoder.review import queue
from autocoder.review.labelstudio import (
    LabelStudioClient,
    answer_result,
    hierarchy_path,
    resolve_connection,
)
from autocoder.review.pull import project_id
from autocoder.taxonomy.model import Taxonomy
from autocoder.taxonomy.store import load_taxonomy
from autocoder.workspace import Workspace


@dataclass
class SimulateResult:
    project: str
    annotator: str
    answered: int = 0
    by_suggestion: int = 0  # the gold code was among the model's candidates
    by_hierarchy: int = 0  # picked in the whole code hierarchy
    already_answered: int = 0
    not_in_gold: int = 0
    unknown_code: int = 0  # gold code not in the project's taxonomy: not answered


def read_gold(path: str | Path, settings: Settings, column: str) -> dict[str, str]:
    """Record id → first gold code."""
    id_col = settings.coder.id_column
    df = read_table(path, string_columns=(id_col, column))
    for col in (id_col, column):
        if col not in df.columns:
            raise InputError(f"{path}: no {col!r} column")
    gold: dict[str, str] = {}
    for rid, raw in zip(df[id_col], df[column], strict=True):
        first = next((c.strip() for c in str(raw).split(";") if c.strip()), "")
        if first:
            gold[clean_text(rid)] = first
    return gold


def _user_id(client: LabelStudioClient, annotator: str | None) -> tuple[int, str]:
    me = client.check()
    if not annotator or annotator == me["email"]:
        return int(me["id"]), str(me["email"])
    return client.ensure_user(annotator), annotator


def _result(task: dict[str, Any], code: str, taxonomy: Taxonomy) -> tuple[list[dict], bool]:
    offered = [c.get("value") for c in task["data"].get("candidates") or []]
    if code in offered:
        return answer_result(suggestion=code), True
    return answer_result(path=hierarchy_path(taxonomy, code)), False


def simulate(
    settings: Settings,
    ws: Workspace,
    *,
    project: str,
    gold_path: str | Path,
    gold_column: str = "codes",
    annotator: str | None = None,
    limit: int | None = None,
) -> SimulateResult:
    """Answer the project's open tasks whose records are in ``gold_path``."""
    gold = read_gold(gold_path, settings, gold_column)
    pid = project_id(ws, project)
    info = queue.project_info(ws, project) or {}
    taxonomy = load_taxonomy(ws, info.get("taxonomy") or settings.taxonomy.default)
    client = LabelStudioClient(resolve_connection(settings, ws), timeout=settings.review.timeout)
    uid, name = _user_id(client, annotator)
    result = SimulateResult(project=project, annotator=name)
    for task in client.iter_tasks(pid, with_annotations=True):
        if limit is not None and result.answered >= limit:
            break
        rid = str((task.get("data") or {}).get("record_id", ""))
        if rid not in gold:
            result.not_in_gold += 1
            continue
        if any(a.get("completed_by") == uid for a in task.get("annotations") or []):
            result.already_answered += 1
            continue
        code = gold[rid]
        if code not in taxonomy:
            result.unknown_code += 1
            continue
        answer, suggested = _result(task, code, taxonomy)
        client.create_annotation(int(task["id"]), answer, completed_by=uid)
        result.answered += 1
        result.by_suggestion += suggested
        result.by_hierarchy += not suggested
    return result
