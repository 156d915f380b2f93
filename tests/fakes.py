"""Test doubles for unit tests only (each has a real counterpart tested elsewhere).

* ``FakeOpenAIServer`` runs ``http.server`` in a thread on 127.0.0.1 speaking OpenAI chat
  completions, so the real ``openai`` client (its retries and timeouts, our parsing) is exercised
  end to end without a model. A ``responder`` maps each request body to a ``FakeReply`` (content,
  HTTP status, delay, headers); every request is recorded with its headers and arrival time.
* ``HashingEmbedder``: a deterministic bag-of-words embedder with the ``Embedder`` interface.
* ``KeywordPredictor``: a predictor that codes by keyword.
* ``tiny_taxonomy`` (three occupations) and ``mini_taxonomy`` (eight, in three major groups).
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np

from autocoder.embed import Embedder
from autocoder.records import as_records
from autocoder.taxonomy.model import Code, Taxonomy


class KeywordPredictor:
    """Predicts code by keyword; confidence 0.9 for a hit, uniform otherwise."""

    def __init__(self, keywords: dict[str, str], fail_on: str | None = None) -> None:
        self.keywords = keywords
        self.fail_on = fail_on
        self.classes_ = np.asarray(sorted(set(keywords.values())))
        self.calls = 0

    def predict_proba(self, X: object) -> np.ndarray:
        self.calls += 1
        records = as_records(X)
        k = len(self.classes_)
        out = np.full((len(records), k), 1.0 / k)
        for i, r in enumerate(records):
            text = f"{r.title} {r.duties}".lower()
            if self.fail_on and self.fail_on in text:
                raise RuntimeError("model crashed")
            for word, code in self.keywords.items():
                if word in text:
                    out[i] = 0.1 / max(k - 1, 1)
                    out[i, list(self.classes_).index(code)] = 0.9
                    break
        return out

    def predict(self, X: object) -> np.ndarray:
        return self.classes_[self.predict_proba(X).argmax(axis=1)]


def tiny_taxonomy() -> Taxonomy:
    codes = [
        Code("29-0000", "Healthcare Practitioners", 1, "major"),
        Code("15-0000", "Computer and Mathematical", 1, "major"),
        Code(
            "29-1141.00",
            "Registered Nurses",
            2,
            "onet",
            "29-0000",
            description="Assess patient health problems and needs, provide nursing care.",
            alt_titles=["Staff Nurse", "RN"],
            tasks=["Administer medications to patients."],
        ),
        Code(
            "15-1252.00",
            "Software Developers",
            2,
            "onet",
            "15-0000",
            description="Design and develop computer software applications.",
            alt_titles=["Java Developer", "Programmer"],
            tasks=["Write and test program code."],
        ),
        Code(
            "53-3032.00",
            "Heavy and Tractor-Trailer Truck Drivers",
            2,
            "onet",
            None,
            description="Drive tractor-trailer trucks to transport goods.",
            alt_titles=["Truck Driver", "HGV Driver"],
            tasks=["Inspect the truck before trips."],
        ),
    ]
    return Taxonomy("onet", "test-1", ["major", "onet"], codes)


@dataclass
class FakeReply:
    content: str = "{}"
    status: int = 200
    delay: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)
    prompt_tokens: int = 11
    completion_tokens: int = 7


Responder = Callable[[dict[str, Any]], FakeReply]


@dataclass
class RecordedRequest:
    path: str
    body: dict[str, Any]
    headers: dict[str, str]
    received: float = field(default_factory=time.monotonic)


class FakeOpenAIServer:
    """``with FakeOpenAIServer(responder) as server: LLMModel("m", base_url=server.base_url)``."""

    def __init__(self, responder: Responder | None = None, *, model: str = "fake-model") -> None:
        self.responder = responder or (lambda body: FakeReply())
        self.model = model
        self.requests: list[RecordedRequest] = []
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("FakeOpenAIServer is not started")
        port = self._httpd.server_address[1]
        return f"http://127.0.0.1:{port}/v1"

    @property
    def chat_requests(self) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self.requests if r.path.endswith("/chat/completions")]

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - silence
                return

            def _send(self, status: int, payload: Any, headers: dict[str, str]) -> None:
                data = json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    for key, value in headers.items():
                        self.send_header(key, value)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # client gave up (timeout)
                    pass

            def do_GET(self) -> None:  # noqa: N802 - http.server API
                if self.path.rstrip("/").endswith("/models"):
                    self._send(
                        200,
                        {
                            "object": "list",
                            "data": [{"id": server.model, "object": "model", "owned_by": "fake"}],
                        },
                        {},
                    )
                else:
                    self._send(404, {"error": {"message": "not found"}}, {})

            def do_POST(self) -> None:  # noqa: N802 - http.server API
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                with server._lock:
                    server.requests.append(
                        RecordedRequest(
                            self.path, body, {k.lower(): v for k, v in self.headers.items()}
                        )
                    )
                if not self.path.rstrip("/").endswith("/chat/completions"):
                    self._send(404, {"error": {"message": "not found"}}, {})
                    return
                reply = server.responder(body)
                if reply.delay:
                    time.sleep(reply.delay)
                if reply.status != 200:
                    self._send(
                        reply.status,
                        {"error": {"message": reply.content, "type": "fake"}},
                        reply.headers,
                    )
                    return
                self._send(
                    200,
                    {
                        "id": "chatcmpl-fake",
                        "object": "chat.completion",
                        "created": 0,
                        "model": body.get("model", server.model),
                        "choices": [
                            {
                                "index": 0,
                                "finish_reason": "stop",
                                "message": {"role": "assistant", "content": reply.content},
                            }
                        ],
                        "usage": {
                            "prompt_tokens": reply.prompt_tokens,
                            "completion_tokens": reply.completion_tokens,
                            "total_tokens": reply.prompt_tokens + reply.completion_tokens,
                        },
                    },
                    reply.headers,
                )

        return Handler

    def start(self) -> FakeOpenAIServer:
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> FakeOpenAIServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def user_prompt(body: dict[str, Any]) -> str:
    """The last user message of a recorded chat request."""
    return next(m["content"] for m in reversed(body["messages"]) if m["role"] == "user")


class HashingEmbedder(Embedder):
    """Deterministic bag of words + character trigrams, hashed to ``dim`` dims, L2-normalised.

    An ``Embedder`` that needs no model: for fast retrieval tests.
    """

    def __init__(self, dim: int = 512) -> None:
        super().__init__(f"hashing-{dim}")
        self.dim = dim

    @property
    def model_id(self) -> str:
        return f"hashing-{self.dim}"

    @property
    def dimension(self) -> int:
        return self.dim

    def _features(self, text: str) -> list[str]:
        words = re.findall(r"[a-z0-9]+", text.lower())
        grams = [w[i : i + 3] for w in words for i in range(max(1, len(w) - 2))]
        return words + words + grams

    def encode(
        self, texts: Sequence[str], *, is_query: bool = False, show_progress: bool = False
    ) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            for feat in self._features(text):
                h = int.from_bytes(hashlib.md5(feat.encode()).digest()[:4], "little")
                out[i, h % self.dim] += 1.0
            norm = np.linalg.norm(out[i])
            if norm:
                out[i] /= norm
        return out


def mini_taxonomy() -> Taxonomy:
    """Eight O*NET-style occupations in three major groups, with titles, definitions, tasks."""
    groups = [
        Code("15-0000", "Computer and Mathematical Occupations", 1, "major"),
        Code("29-0000", "Healthcare Practitioners and Technical Occupations", 1, "major"),
        Code("41-0000", "Sales and Related Occupations", 1, "major"),
    ]
    leaves = [
        (
            "15-1252.00",
            "15-0000",
            "Software Developers",
            "Research, design, and develop computer and network software or specialized utility "
            "programs.",
            ["Application Developer", "Software Engineer"],
            ["Write, test and maintain program code for software applications."],
        ),
        (
            "15-1211.00",
            "15-0000",
            "Computer Systems Analysts",
            "Analyze science, engineering, business, and other data processing problems to develop "
            "and implement solutions to complex applications problems.",
            ["Systems Analyst"],
            ["Analyze information systems requirements and recommend improvements."],
        ),
        (
            "15-2041.00",
            "15-0000",
            "Statisticians",
            "Develop or apply mathematical or statistical theory and methods to collect, organize, "
            "interpret, and summarize numerical data.",
            ["Biostatistician"],
            ["Design surveys and analyze statistical data with regression models."],
        ),
        (
            "29-1141.00",
            "29-0000",
            "Registered Nurses",
            "Assess patient health problems and needs, develop and implement nursing care plans, "
            "and maintain medical records.",
            ["Staff Nurse", "RN"],
            ["Monitor patients, administer medications and record vital signs."],
        ),
        (
            "29-1292.00",
            "29-0000",
            "Dental Hygienists",
            "Administer oral hygiene care to patients.",
            ["Dental Hygienist"],
            ["Clean teeth, remove plaque and take dental x-rays."],
        ),
        (
            "29-2052.00",
            "29-0000",
            "Pharmacy Technicians",
            "Prepare medications under the direction of a pharmacist.",
            ["Pharmacy Tech"],
            ["Count tablets, label prescription bottles and manage pharmacy inventory."],
        ),
        (
            "41-2031.00",
            "41-0000",
            "Retail Salespersons",
            "Sell merchandise, such as furniture, motor vehicles, appliances, or apparel to "
            "consumers.",
            ["Sales Associate", "Shop Assistant"],
            ["Greet customers in the store, recommend products and process sales at the register."],
        ),
        (
            "41-3091.00",
            "41-0000",
            "Sales Representatives of Services",
            "Sell services to individuals or businesses.",
            ["Account Executive"],
            ["Contact business clients, present service offers and negotiate contracts."],
        ),
    ]
    codes = groups + [
        Code(
            code,
            title,
            2,
            "occupation",
            parent=parent,
            description=desc,
            alt_titles=alts,
            tasks=tasks,
        )
        for code, parent, title, desc, alts, tasks in leaves
    ]
    return Taxonomy("onet-mini", "test", ["major", "occupation"], codes, source="tests")
