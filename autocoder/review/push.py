"""``autocoder review push``: code records, choose the ones worth a review, send them.

1. Records already queued in the project are left out (a record is never pushed twice).
2. The model codes the rest (``predict_proba`` in batches); the query strategy chooses ``limit``.
3. The chosen records are written to the local queue as *pending*, with their top-k codes.
4. Everything pending in the project is sent to Label Studio (tasks + predictions). Tasks the
   server already has (a send that failed half-way) are recognised by ``record_id`` and not sent
   again. If the server is down the tasks stay pending and ``ReviewUnavailable`` is raised; a
   later push (with or without new input) sends them.
5. With ``review.show_skills`` and an ESCO taxonomy with skills in the workspace, each task
   carries the record's top 5 ESCO skills (``data.skills``, the ``skills extract`` extractor on
   title + description), shown in the labeling config's skills block; a project created
   without skills has that block removed from its config. ``data.skills`` is always present
   (``""`` when skills are off), so a task fits a project created either way.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from autocoder.coding.loaded import LoadedCoder, load_coder
from autocoder.config import Settings
from autocoder.io import InputError, read_table
from autocoder.records import JobRecord, clean_text
from autocoder.review import queue
from autocoder.review.labelstudio import (
    LabelStudioClient,
    ReviewError,
    ReviewUnavailable,
    hierarchy_path,
    labeling_config,
    resolve_connection,
    task_payload,
)
from autocoder.taxonomy.model import Taxonomy
from autocoder.taxonomy.store import load_taxonomy
from autocoder.workspace import Workspace

SEND_CHUNK = 200
MODEL_VERSION_MAX = 250
SKILLS_SHOWN = 5
SKILLS_FIELD = "skills"  # task data key; the template shows it with <Text value="$skills">
SKILLS_SEPARATOR = " · "
NO_SKILLS = "(no ESCO skill found in the text)"


@dataclass
class PushResult:
    project: str
    considered: int = 0  # input records not yet queued in the project
    queued: int = 0  # newly chosen and queued
    sent: int = 0  # sent to Label Studio by this run
    already_on_server: int = 0  # pending tasks found on the server (earlier half-done send)
    pending: int = 0  # still waiting (server down)
    ls_project_id: int | None = None
    model_version: str = ""
    strategy: str = ""
    settles: int = 0  # input records the queued tasks stand for (same text: one answer each)
    errors: list[str] = field(default_factory=list)

    @property
    def settled_per_answer(self) -> float:
        """Records one answer settles, on average over the tasks queued now."""
        return self.settles / self.queued if self.queued else 0.0


def read_records(path: str | Path, settings: Settings) -> pd.DataFrame:
    """The input table with ``id``, ``title``, ``description`` columns; clear errors per record."""
    cfg = settings.coder
    df = read_table(path, string_columns=(cfg.id_column,))
    if cfg.id_column not in df.columns:
        raise InputError(f"{path}: no {cfg.id_column!r} column (record ids are needed to review)")
    if cfg.title_column not in df.columns and cfg.description_column not in df.columns:
        raise InputError(
            f"{path}: needs a {cfg.title_column!r} or {cfg.description_column!r} column"
        )
    out = pd.DataFrame(
        {
            "id": df[cfg.id_column].map(clean_text),
            "title": df[cfg.title_column].map(clean_text) if cfg.title_column in df else "",
            "description": df[cfg.description_column].map(clean_text)
            if cfg.description_column in df
            else "",
        }
    )
    for i, row in enumerate(out.itertuples(index=False)):
        if not row.id:
            raise InputError(f"{path}: record {i + 1} has an empty id")
        if not row.title and not row.description:
            raise InputError(f"{path}: record {row.id!r} has neither a title nor a description")
    dup = out["id"][out["id"].duplicated()]
    if len(dup):
        raise InputError(f"{path}: record id {dup.iloc[0]!r} appears more than once")
    return out


def model_version_of(predictor_id: str) -> str:
    if len(predictor_id) <= MODEL_VERSION_MAX:
        return predictor_id
    import hashlib

    digest = hashlib.sha1(predictor_id.encode()).hexdigest()[:12]
    return f"{predictor_id[: MODEL_VERSION_MAX - 13]}#{digest}"


def predict_in_batches(predictor: Any, records: list[JobRecord], batch: int) -> np.ndarray:
    parts = [
        np.asarray(predictor.predict_proba(records[i : i + batch]), dtype=np.float32)
        for i in range(0, len(records), batch)
    ]
    return np.concatenate(parts) if parts else np.zeros((0, len(predictor.classes_)), np.float32)


def top_candidates(
    proba_row: np.ndarray, classes: np.ndarray, titles: dict[str, str], k: int
) -> list[dict[str, Any]]:
    order = np.argsort(-proba_row, kind="stable")[:k]
    return [
        {
            "code": str(classes[j]),
            "title": titles.get(str(classes[j]), ""),
            "score": float(proba_row[j]),
        }
        for j in order
    ]


def partial_candidate(
    taxonomy: Taxonomy, code: str, level: str, confidence: float
) -> dict[str, Any]:
    """The candidate entry of a partial code (pre-selected as a tree node in the task)."""
    return {
        "code": code,
        "title": taxonomy.get(code).title if code in taxonomy else "",
        "score": float(confidence),
        "level": level,
        "partial": True,
        "path": hierarchy_path(taxonomy, code) if code in taxonomy else [],
    }


def partial_codes(
    coder: LoadedCoder, settings: Settings, records: list[JobRecord]
) -> list[dict[str, Any] | None]:
    """Per record its partial-code candidate at the target precision (None when the record is
    not ``partial`` or the coder's model has no calibration)."""
    from autocoder.coding.trust import coder_assigner

    assigner = coder_assigner(coder, settings.coder)
    if assigner.trust is None or assigner.target is None or not records or not coder.taxonomy:
        return [None] * len(records)
    _, cells = assigner.predict(coder.predictor, records)
    return [
        partial_candidate(coder.taxonomy, code, level, conf) if status == "partial" else None
        for status, code, level, conf in zip(
            cells["status"],
            cells["assigned_code"],
            cells["assigned_level"],
            cells["assigned_confidence"],
            strict=True,
        )
    ]


def choose(
    coder: LoadedCoder,
    records: pd.DataFrame,
    settings: Settings,
    *,
    strategy: str,
    limit: int,
    seed: int = 0,
) -> tuple[list[queue.QueuedTask], str, int]:
    """Code ``records`` with ``coder`` and pick ``limit`` with ``strategy``: (tasks best first,
    model version, the input records they stand for). A strategy that declares
    ``needs_embeddings`` gets the records' embeddings from the coder's embedder (a coder that
    declares no embeddings fails clearly); one that declares ``needs_texts``, their texts."""
    from autocoder.review.strategies import make_strategy

    predictor = coder.predictor
    version = model_version_of(coder.predictor_id)
    chooser = make_strategy(strategy, threshold=settings.review.threshold, model=predictor)
    if chooser.needs_embeddings and not coder.capabilities.embeddings:
        raise ValueError(
            f"strategy {strategy!r} needs embeddings; the coder {coder.predictor_id} has none"
        )
    recs = [JobRecord(t, d) for t, d in zip(records["title"], records["description"], strict=True)]
    proba = predict_in_batches(predictor, recs, settings.coder.batch_size)
    emb = coder.embed(recs) if chooser.needs_embeddings else None
    texts = [r.query() for r in recs] if chooser.needs_texts else None
    idx = chooser.query(proba, emb, min(limit, len(recs)), rng=np.random.default_rng(seed),
                        texts=texts)  # fmt: skip
    settled = getattr(chooser, "last_settled", None)
    scores = chooser.last_scores
    classes = coder.classes
    titles = dict(coder.labels)
    picked = [int(j) for j in idx]
    found = partial_codes(coder, settings, [recs[i] for i in picked])
    partial = {i: [p] for i, p in zip(picked, found, strict=True) if p is not None}
    tasks = [
        queue.QueuedTask(
            record_id=records["id"].iloc[i],
            title=records["title"].iloc[i],
            description=records["description"].iloc[i],
            candidates=top_candidates(proba[i], classes, titles, settings.review.top_k)
            + partial.get(i, []),
            model_version=version,
            strategy=strategy,
            strategy_score=float(scores[i]) if scores is not None else None,
        )
        for i in picked
    ]
    return tasks, version, int(settled.sum()) if settled is not None else len(tasks)


class TaskSkills:
    """The top ESCO skills of queued records (title + description), one line per record.

    ``extractor`` is a fitted :class:`autocoder.skills.extract.SkillExtractor` (anything with
    ``rank(texts, top_k)``); None = built on first use from the workspace's ESCO skills with the
    same matcher as ``autocoder skills extract`` (trained on first use, then cached).
    """

    def __init__(
        self, ws: Workspace, *, extractor: Any = None, top_k: int = SKILLS_SHOWN,
        show_progress: bool = True, data_dir: str | None = None,
    ) -> None:  # fmt: skip
        self.ws = ws
        self.extractor = extractor
        self.top_k = top_k
        self.show_progress = show_progress
        self.data_dir = data_dir

    def _extractor(self) -> Any:
        if self.extractor is None:
            from autocoder.skills.service import make_extractor

            self.extractor, _ = make_extractor(
                self.ws, top_k=self.top_k, show_progress=self.show_progress,
                data_dir=self.data_dir,
            )  # fmt: skip
        return self.extractor

    def lines(self, tasks: Sequence[queue.QueuedTask]) -> list[str]:
        """Per task: its skills' preferred labels, best first (``NO_SKILLS`` when none)."""
        texts = ["\n".join(p for p in (t.title, t.description) if p) for t in tasks]
        try:
            found = self._extractor().rank(texts, top_k=self.top_k)
        except (OSError, ValueError, RuntimeError, ImportError) as exc:
            raise ValueError(
                f"the skills of the review tasks could not be extracted: {exc}\n"
                "set review.show_skills = false to push without skills"
            ) from exc
        return [SKILLS_SEPARATOR.join(h.label for h in hits) or NO_SKILLS for hits in found]


def task_skills(settings: Settings, ws: Workspace) -> TaskSkills | None:
    """Skills for the tasks, or None: ``review.show_skills`` is off or no ESCO is imported."""
    from autocoder.skills.service import SKILLS_TAXONOMY
    from autocoder.taxonomy.store import list_taxonomies

    if not settings.review.show_skills or SKILLS_TAXONOMY not in list_taxonomies(ws):
        return None
    return TaskSkills(ws, data_dir=settings.skills.data_dir)


def without_skills_block(xml: str) -> str:
    """``xml`` without the tag showing ``$skills`` (and the View holding it, when nothing
    named is left in that View): the config of a project whose tasks show no skills."""
    root = ET.fromstring(xml)
    parents = {child: parent for parent in root.iter() for child in parent}
    for tag in [e for e in root.iter() if e.get("value") == f"${SKILLS_FIELD}" and e in parents]:
        parent = parents[tag]
        parent.remove(tag)
        named = any(e.get("name") for e in parent.iter())
        if parent in parents and parent.tag == "View" and not named:
            parents[parent].remove(parent)
    return ET.tostring(root, encoding="unicode")


def ensure_ls_project(
    client: LabelStudioClient, ws: Workspace, project: str, taxonomy: Taxonomy,
    template: str | None = None, *, with_skills: bool = False,
) -> int:  # fmt: skip
    """The Label Studio project behind ``project``, created (with the taxonomy) on first use;
    its config keeps the template's skills block only ``with_skills``."""
    info = queue.project_info(ws, project) or {}
    pid = info.get("ls_project_id")
    if pid is not None:
        if not client.project_exists(int(pid)):
            raise ReviewError(
                f"Label Studio project {pid} (review project {project!r}) no longer exists on "
                f"{client.conn.shown}; use a new --project name"
            )
        return int(pid)
    xml = labeling_config(taxonomy, template)
    if not with_skills:
        xml = without_skills_block(xml)
    desc = f"autocoder review queue {project!r}: {taxonomy.name} {taxonomy.version}"
    pid = client.create_project(f"autocoder {project}"[:50], xml, description=desc)
    queue.set_project_id(ws, project, pid)
    return pid


def payloads(tasks: Sequence[queue.QueuedTask], skills: TaskSkills | None) -> list[dict[str, Any]]:
    """The tasks as Label Studio tasks, each with ``data.skills`` (``""`` without skills)."""
    lines = skills.lines(tasks) if skills is not None else [""] * len(tasks)
    out = []
    for task, line in zip(tasks, lines, strict=True):
        payload = task_payload(task)
        payload["data"][SKILLS_FIELD] = line
        out.append(payload)
    return out


def send_pending(
    client: LabelStudioClient, ws: Workspace, project: str, taxonomy: Taxonomy,
    result: PushResult, template: str | None = None, skills: TaskSkills | None = None,
) -> None:  # fmt: skip
    """Send every pending task of ``project`` (with ``skills`` when given); counts go into
    ``result``."""
    pending = queue.pending_tasks(ws, project)
    if not pending:
        return
    pid = ensure_ls_project(client, ws, project, taxonomy, template, with_skills=skills is not None)
    result.ls_project_id = pid
    on_server = {
        str(t["data"].get("record_id")): int(t["id"])
        for t in client.iter_tasks(pid, with_annotations=False)
        if t.get("data", {}).get("record_id") is not None
    }
    known = {t.record_id: on_server[t.record_id] for t in pending if t.record_id in on_server}
    if known:
        queue.mark_sent(ws, project, known)
        result.already_on_server += len(known)
    todo = [t for t in pending if t.record_id not in known]
    for i in range(0, len(todo), SEND_CHUNK):
        chunk = todo[i : i + SEND_CHUNK]
        ids = client.import_tasks(pid, payloads(chunk, skills))
        queue.mark_sent(ws, project, {t.record_id: tid for t, tid in zip(chunk, ids, strict=True)})
        result.sent += len(chunk)


def push(
    settings: Settings,
    ws: Workspace,
    input_path: str | Path | None,
    *,
    project: str,
    model_dir: str | Path | None = None,
    strategy: str = "least_confidence",
    limit: int = 100,
    taxonomy_name: str | None = None,
    seed: int = 0,
    skills: TaskSkills | None = None,
) -> PushResult:
    """Queue ``limit`` records of ``input_path`` chosen by ``strategy`` and send all pending.

    ``skills`` (default: :func:`task_skills` of the settings) adds each record's top ESCO skills.
    Raises ``ReviewUnavailable`` (after queueing) when Label Studio cannot be reached.
    """
    if limit < 0:
        raise ValueError(f"--limit must be >= 0, got {limit}")
    info = queue.project_info(ws, project) or {}
    if taxonomy_name and info.get("taxonomy") and taxonomy_name != info["taxonomy"]:
        raise ValueError(
            f"review project {project!r} codes into {info['taxonomy']!r}, not {taxonomy_name!r}"
        )
    tax_name = taxonomy_name or info.get("taxonomy") or settings.taxonomy.default
    taxonomy = load_taxonomy(ws, tax_name)
    queue.ensure_project(ws, project, taxonomy.name)
    result = PushResult(project=project, strategy=strategy)
    if input_path is not None:
        records = read_records(input_path, settings)
        seen = queue.queued_ids(ws, project)
        fresh = records[~records["id"].isin(seen)].reset_index(drop=True)
        result.considered = len(fresh)
        if len(fresh) and limit:
            coder = load_coder(settings, ws, model=model_dir, taxonomy_name=taxonomy.name)
            tasks, result.model_version, result.settles = choose(
                coder, fresh, settings, strategy=strategy, limit=limit, seed=seed
            )
            result.queued = queue.enqueue(ws, project, tasks)
    try:
        client = LabelStudioClient(
            resolve_connection(settings, ws), timeout=settings.review.timeout
        )
        send_pending(
            client, ws, project, taxonomy, result, settings.review.labeling_config,
            skills if skills is not None else task_skills(settings, ws),
        )  # fmt: skip
    except ReviewUnavailable as exc:
        pending = len(queue.pending_tasks(ws, project))
        raise ReviewUnavailable(
            f"{exc}\n{pending} task(s) of review project {project!r} wait locally as pending "
            f"({result.queued} queued now, {result.sent} sent); `autocoder review push "
            f"--project {project}` sends them."
        ) from None
    result.pending = len(queue.pending_tasks(ws, project))
    return result
