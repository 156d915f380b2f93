"""Everything that talks to Label Studio (``label-studio-sdk``), and nothing else does.

- ``resolve_connection``: the server to use: ``review.url``/``review.token`` from config, else
  ``$AUTOCODER_REVIEW_URL``/``$AUTOCODER_REVIEW_TOKEN``, else the local server started by
  ``autocoder review server start`` (its URL and token live in the workspace).
- ``labeling_config``: the shipped template ``labeling/review.xml`` with the taxonomy's hierarchy
  put into its ``<Taxonomy>`` tag.
- ``task_payload`` / ``parse_annotation``: a queued record to a task with its prediction, and
  an annotation's result back to (code, emerging, cannot code, note).
- ``LabelStudioClient``: the few API calls used, with connection failures turned into
  ``ReviewUnavailable`` (a clear message, never the token).
"""

from __future__ import annotations

import html
import os
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from autocoder.config import Settings
from autocoder.extras import require
from autocoder.redact import excerpt, redact_url
from autocoder.resources import resource_dir
from autocoder.review.queue import QueuedTask
from autocoder.taxonomy.model import Taxonomy
from autocoder.workspace import Workspace

TEMPLATE_NAME = "review.xml"
FROM_TITLE = "title"
SUGGESTED = "suggested"
HIERARCHY = "code"
FLAGS = "flags"
NOTE = "note"
EMERGING = ("New / emerging occupation", "emerging")
CANNOT_CODE = ("Cannot code", "cannot_code")

T = TypeVar("T")


class ReviewUnavailable(RuntimeError):
    """Label Studio cannot be reached (not running, wrong URL, network down)."""


class ReviewError(RuntimeError):
    """Label Studio answered, but refused the request (bad token, missing project, bad data)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Connection:
    url: str = field(repr=False)
    token: str = field(repr=False)
    source: str = "config"  # config | env | local server

    @property
    def shown(self) -> str:
        """The URL as messages show it: without any ``user:password@``."""
        return redact_url(self.url)

    @property
    def secrets(self) -> tuple[str, ...]:
        """What must never appear in a message: the token and the URL's password."""
        return (self.token, urlsplit(self.url).password or "")


# --- connection ---------------------------------------------------------------------------------
def resolve_connection(settings: Settings, ws: Workspace) -> Connection:
    """The Label Studio to talk to; raises ``ReviewUnavailable`` when none is configured."""
    from autocoder.review import server

    cfg = settings.review
    url = cfg.url or os.environ.get("AUTOCODER_REVIEW_URL")
    token = cfg.token.get_secret_value() if cfg.token else os.environ.get("AUTOCODER_REVIEW_TOKEN")
    source = "config" if cfg.url else "env"
    if not url:
        local = server.local_connection(ws)
        if local is None:
            raise ReviewUnavailable(
                "no Label Studio configured: run `autocoder review server start`, or set "
                "review.url and review.token (or $AUTOCODER_REVIEW_URL / $AUTOCODER_REVIEW_TOKEN)"
            )
        url, local_token = local
        token = token or local_token
        source = "local server"
    if not token:
        raise ReviewUnavailable(
            f"no API token for Label Studio at {redact_url(url)}: set review.token or "
            "$AUTOCODER_REVIEW_TOKEN"
        )
    return Connection(url.rstrip("/"), token, source)


# --- labeling config ----------------------------------------------------------------------------
def _label(code: str, title: str) -> str:
    return f"{code} {title}".strip()


def labeling_config(taxonomy: Taxonomy, template: str | Path | None = None) -> str:
    """The labeling XML for a project coding into ``taxonomy`` (whole hierarchy, top down)."""
    path = Path(template) if template else resource_dir("labeling") / TEMPLATE_NAME
    try:
        root = ET.fromstring(path.read_text(encoding="utf-8"))
    except (OSError, ET.ParseError) as exc:
        raise ReviewError(f"labeling template {path} cannot be read: {exc}") from exc
    tax = next((e for e in root.iter("Taxonomy") if e.get("name") == HIERARCHY), None)
    if tax is None:
        raise ReviewError(f"labeling template {path} has no <Taxonomy name={HIERARCHY!r}> tag")
    for child in list(tax):
        tax.remove(child)
    by_parent: dict[str | None, list[Any]] = {}
    known = set(taxonomy.codes)
    for c in taxonomy:
        parent = c.parent if c.parent in known else None
        by_parent.setdefault(parent, []).append(c)

    def add(node: ET.Element, code: str | None, seen: frozenset[str]) -> None:
        for c in sorted(by_parent.get(code, []), key=lambda c: c.code):
            if c.code in seen:  # a cycle in a broken taxonomy: stop rather than recurse forever
                continue
            child = ET.SubElement(
                node, "Choice", {"value": _label(c.code, c.title), "alias": c.code}
            )
            add(child, c.code, seen | {c.code})

    add(tax, None, frozenset())
    return ET.tostring(root, encoding="unicode")


# --- tasks and answers --------------------------------------------------------------------------
def task_payload(task: QueuedTask) -> dict[str, Any]:
    """A Label Studio task (``data`` + one prediction pre-selecting the best candidate)."""
    candidates = [
        {
            "value": c["code"],
            "html": f"<b>{html.escape(c['code'])}</b> {html.escape(c.get('title', ''))}"
            f" <span style='color:#888'>· {float(c.get('score', 0.0)):.2f}</span>",
        }
        for c in task.candidates
    ]
    payload: dict[str, Any] = {
        "data": {
            "record_id": task.record_id,
            "title": task.title,
            "description": task.description,
            "model_version": task.model_version,
            "candidates": candidates,
        }
    }
    if task.candidates:
        best = task.candidates[0]
        score = float(best.get("score", 0.0))
        payload["predictions"] = [
            {
                "model_version": task.model_version or "autocoder",
                "score": score,
                "result": [
                    {
                        "from_name": SUGGESTED,
                        "to_name": FROM_TITLE,
                        "type": "choices",
                        "value": {"choices": [best["code"]]},
                        "score": score,
                    }
                ],
            }
        ]
    return payload


def _code_of(value: str, known: set[str] | None) -> str:
    """``CODE`` from an alias ``CODE`` or a label ``CODE title``."""
    value = value.strip()
    if known is None or value in known:
        return value.split(" ", 1)[0] if known is None and " " in value else value
    first = value.split(" ", 1)[0]
    return first if first in known else value


def answer_result(
    *,
    path: list[str] | None = None,
    suggestion: str | None = None,
    emerging: bool = False,
    cannot_code: bool = False,
    note: str = "",
) -> list[dict[str, Any]]:
    """The result a person's answer produces: a pick in the hierarchy (alias ``path`` top →
    code) or a click on a suggestion, flags and a note. What ``simulate`` sends."""
    result: list[dict[str, Any]] = []
    if path:
        result.append(
            {"from_name": HIERARCHY, "to_name": FROM_TITLE, "type": "taxonomy",
             "value": {"taxonomy": [list(path)]}}
        )  # fmt: skip
    elif suggestion:
        result.append(
            {"from_name": SUGGESTED, "to_name": FROM_TITLE, "type": "choices",
             "value": {"choices": [suggestion]}}
        )  # fmt: skip
    if note:
        result.append(
            {"from_name": NOTE, "to_name": FROM_TITLE, "type": "textarea",
             "value": {"text": [note]}}
        )  # fmt: skip
    flags = [EMERGING[1]] * emerging + [CANNOT_CODE[1]] * cannot_code  # aliases, as the UI
    if flags:
        result.append(
            {"from_name": FLAGS, "to_name": FROM_TITLE, "type": "choices",
             "value": {"choices": flags}}
        )  # fmt: skip
    return result


@dataclass(frozen=True)
class ParsedAnswer:
    code: str
    emerging: bool
    cannot_code: bool
    note: str


def parse_annotation(result: list[dict[str, Any]], known: set[str] | None = None) -> ParsedAnswer:
    """Read an annotation's ``result``: hierarchy pick > suggestion; flags; note."""
    picked = suggested = note = ""
    flags: set[str] = set()
    for item in result or []:
        name, value = item.get("from_name"), item.get("value") or {}
        if name == HIERARCHY and value.get("taxonomy"):
            path = value["taxonomy"][-1]
            if path:
                picked = _code_of(str(path[-1]), known)
        elif name == SUGGESTED and value.get("choices"):
            suggested = _code_of(str(value["choices"][0]), known)
        elif name == FLAGS:
            flags.update(str(v) for v in value.get("choices", []))
        elif name == NOTE:
            note = "\n".join(str(t) for t in value.get("text", []))
    return ParsedAnswer(
        code=picked or suggested,
        emerging=bool(flags & set(EMERGING)),
        cannot_code=bool(flags & set(CANNOT_CODE)),
        note=note,
    )


def hierarchy_path(taxonomy: Taxonomy, code: str) -> list[str]:
    """The alias path (top → code) a person's pick in the Taxonomy tag produces."""
    return [c.code for c in taxonomy.ancestors(code)]


# --- the client ---------------------------------------------------------------------------------
class LabelStudioClient:
    """The calls autocoder makes; every failure becomes ``ReviewUnavailable`` or ``ReviewError``."""

    def __init__(self, conn: Connection, *, timeout: float = 30.0) -> None:
        self.conn = conn
        self.timeout = timeout
        self._sdk: Any = None
        self._users: dict[int, str] | None = None

    @property
    def sdk(self) -> Any:
        if self._sdk is None:
            require("review", "label_studio_sdk")
            from label_studio_sdk import LabelStudio

            self._sdk = LabelStudio(
                base_url=self.conn.url, api_key=self.conn.token, timeout=self.timeout,
                max_retries=0,
            )  # fmt: skip
        return self._sdk

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        import httpx

        require("review", "label_studio_sdk")
        from label_studio_sdk.core.api_error import ApiError

        try:
            return fn()
        except (httpx.TransportError, OSError) as exc:
            raise ReviewUnavailable(
                f"Label Studio at {self.conn.shown} is not reachable ({type(exc).__name__}) while "
                f"trying to {what}; start it with `autocoder review server start` or check "
                "review.url. Nothing was lost: run the command again when it is up."
            ) from None
        except ApiError as exc:
            status = exc.status_code
            if status is not None and status >= 500:
                raise ReviewUnavailable(
                    f"Label Studio at {self.conn.shown} failed (HTTP {status}) while trying to "
                    f"{what}"
                ) from None
            hint = " (check review.token)" if status in (401, 403) else ""
            body = excerpt(exc.body, self.conn.secrets)
            raise ReviewError(
                f"Label Studio refused to {what}: HTTP {status}{hint}: {body}", status
            ) from None

    def check(self) -> dict[str, Any]:
        """Who we are on the server; fails fast when it is down or the token is wrong."""
        me = self._call("check the connection", lambda: self.sdk.users.whoami())
        return {"id": me.id, "email": getattr(me, "email", "") or getattr(me, "username", "")}

    def create_project(self, title: str, label_config: str, description: str = "") -> int:
        project = self._call(
            f"create project {title!r}",
            lambda: self.sdk.projects.create(
                title=title, label_config=label_config, description=description
            ),
        )
        return int(project.id)

    def project_exists(self, project_id: int) -> bool:
        try:
            self._call(f"find project {project_id}", lambda: self.sdk.projects.get(id=project_id))
        except ReviewError as exc:
            if exc.status == 404:
                return False
            raise
        return True

    def import_tasks(self, project_id: int, tasks: list[dict[str, Any]]) -> list[int]:
        resp = self._call(
            f"send {len(tasks)} tasks to project {project_id}",
            lambda: self.sdk.projects.import_tasks(
                id=project_id, request=tasks, return_task_ids=True, commit_to_project=True
            ),
        )
        ids = getattr(resp, "task_ids", None)
        if ids is None or len(ids) != len(tasks):
            raise ReviewError(f"Label Studio did not return the ids of the imported tasks: {resp}")
        return [int(i) for i in ids]

    def iter_tasks(self, project_id: int, *, with_annotations: bool) -> Iterator[dict[str, Any]]:
        """Every task of the project as a plain dict (with annotations when asked)."""
        fields = "all" if with_annotations else "task_only"

        def fetch() -> list[dict[str, Any]]:
            pager = self.sdk.tasks.list(project=project_id, fields=fields, page_size=500)
            return [t.model_dump(mode="json") for t in pager]

        yield from self._call(f"list the tasks of project {project_id}", fetch)

    def create_annotation(
        self, task_id: int, result: list[dict[str, Any]], *, completed_by: int | None = None
    ) -> int:
        kw: dict[str, Any] = {"result": result}
        if completed_by is not None:
            kw["completed_by"] = completed_by
        ann = self._call(
            f"annotate task {task_id}", lambda: self.sdk.annotations.create(id=task_id, **kw)
        )
        return int(ann.id)

    def user_names(self) -> dict[int, str]:
        """User id → email, for the annotator column (cached per client)."""
        if self._users is None:
            users = self._call("list users", lambda: list(self.sdk.users.list()))
            self._users = {int(u.id): (u.email or u.username or str(u.id)) for u in users}
        return self._users

    def ensure_user(self, email: str) -> int:
        """The id of the user ``email``, created (no password: API-only) when missing."""
        for uid, name in self.user_names().items():
            if name == email:
                return uid
        user = self._call(
            f"create the annotator {email!r}",
            lambda: self.sdk.users.create(email=email, username=email),
        )
        self._users = None
        return int(user.id)
