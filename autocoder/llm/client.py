"""``LLMModel``: a swappable callable around the ``openai`` client for any compatible endpoint.

``model(messages, schema=None, grammar=None) -> dict`` sends one chat completion and returns the
answer parsed as a JSON object. The output is constrained by the server where it can be
(``json_mode``):

* ``json_schema`` — ``response_format={"type": "json_schema", ...}`` (OpenAI, vLLM, Ollama);
* ``json_object`` — ``response_format={"type": "json_object", "schema": ...}`` (llama.cpp);
* ``grammar`` — ``extra_body={"grammar": GBNF}`` (llama.cpp; built from the schema if needed);
* ``none`` — no constraint; the JSON object is taken from the text.

Retries with exponential backoff (timeouts, connection errors, HTTP 408/409/429/5xx, honouring
``Retry-After``), a per-request timeout and a concurrency limit are constructor arguments. Every
call is logged (model, latency ms, prompt/completion tokens, attempts) through ``logging`` and,
optionally, appended to a JSONL call log. The API key is never logged nor shown in ``repr``.
"""

from __future__ import annotations

import json
import logging
import os
import random
import re
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from autocoder.llm.grammar import schema_to_gbnf

log = logging.getLogger("autocoder.llm")

JSON_MODES = ("json_schema", "json_object", "grammar", "none")
RETRY_STATUS = frozenset({408, 409, 429})
NO_KEY = "no-key"  # local servers (llama.cpp, vLLM, Ollama) accept any key


class LLMError(RuntimeError):
    """The endpoint could not be reached or refused the request (after retries)."""


class LLMResponseError(LLMError):
    """The endpoint answered, but not with a JSON object."""

    def __init__(self, message: str, content: str = "") -> None:
        super().__init__(message)
        self.content = content


@dataclass
class LLMStats:
    calls: int = 0
    failures: int = 0
    retries: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_ms: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def parse_json_object(content: str) -> dict[str, Any]:
    """The JSON object in ``content``; tolerates code fences and text around the object."""
    text = content.strip()
    fenced = re.match(r"^```(?:json)?\s*(.*?)\s*```$", text, flags=re.S)
    if fenced:
        text = fenced.group(1)
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        start, end = text.find("{"), text.rfind("}")
        if start < 0 or end <= start:
            raise LLMResponseError(f"answer is not JSON: {_preview(content)}", content) from None
        try:
            value = json.loads(text[start : end + 1])
        except json.JSONDecodeError as exc:
            raise LLMResponseError(
                f"answer is not valid JSON ({exc.msg}): {_preview(content)}", content
            ) from None
    if not isinstance(value, dict):
        raise LLMResponseError(
            f"answer is JSON {type(value).__name__}, not an object: {_preview(content)}", content
        )
    return value


def _preview(text: str, n: int = 200) -> str:
    text = " ".join(str(text).split())
    return repr(text if len(text) <= n else text[:n] + "...")


def _public_url(url: str | None) -> str:
    """The endpoint without any user:password part (safe to log and to use in cache keys)."""
    if not url:
        return "default"
    parts = urlsplit(url)
    netloc = parts.hostname or ""
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))


class LLMModel:
    """Callable chat model on an OpenAI-compatible endpoint; see the module docstring."""

    def __init__(
        self,
        model: str,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout: float = 60.0,
        max_retries: int = 3,
        backoff: float = 1.0,
        max_backoff: float = 30.0,
        concurrency: int = 4,
        temperature: float = 0.0,
        max_tokens: int = 512,
        json_mode: str = "json_object",
        call_log: str | Path | None = None,
    ) -> None:
        if json_mode not in JSON_MODES:
            raise ValueError(f"json_mode must be one of {JSON_MODES}, not {json_mode!r}")
        if not model:
            raise ValueError("LLMModel needs a model name (llm.model or $OPENAI_MODEL)")
        self.model = model
        self.base_url = base_url
        self._api_key = api_key
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.concurrency = concurrency
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.json_mode = json_mode
        self.call_log = call_log
        self.stats = LLMStats()
        self._client: Any = None
        self._client_lock = threading.Lock()
        self._stats_lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(concurrency)

    def __repr__(self) -> str:
        return (
            f"LLMModel(model={self.model!r}, base_url={_public_url(self.base_url)!r}, "
            f"json_mode={self.json_mode!r})"
        )

    @classmethod
    def from_settings(cls, cfg: Any, *, call_log: str | Path | None = None) -> LLMModel:
        """Build from the ``[llm]`` config section; unset values come from ``OPENAI_*`` env vars."""
        base_url = cfg.base_url or os.environ.get("OPENAI_BASE_URL") or None
        model = cfg.model or os.environ.get("OPENAI_MODEL") or ""
        if not model:
            raise ValueError(
                "no LLM model configured: set llm.model in the config (--set llm.model=NAME) "
                "or the OPENAI_MODEL environment variable"
            )
        return cls(
            model,
            base_url=base_url,
            api_key=cfg.api_key or os.environ.get("OPENAI_API_KEY") or None,
            timeout=cfg.timeout,
            max_retries=cfg.max_retries,
            concurrency=cfg.concurrency,
            temperature=cfg.temperature,
            max_tokens=cfg.max_tokens,
            json_mode=cfg.json_mode,
            call_log=call_log,
        )

    @property
    def model_id(self) -> str:
        """Endpoint + model name: identifies answers in caches and provenance (no secrets)."""
        return f"{_public_url(self.base_url)}|{self.model}"

    @property
    def client(self) -> Any:
        with self._client_lock:
            if self._client is None:
                import openai

                self._client = openai.OpenAI(
                    base_url=self.base_url,
                    api_key=self._api_key or NO_KEY,
                    timeout=self.timeout,
                    max_retries=0,  # retries are ours: logged, with backoff, also on bad JSON
                )
            return self._client

    def request_options(
        self, schema: dict[str, Any] | None = None, grammar: str | None = None
    ) -> dict[str, Any]:
        """Everything sent besides the messages; also part of the cache key."""
        options: dict[str, Any] = {"temperature": self.temperature, "max_tokens": self.max_tokens}
        mode = self.json_mode
        if mode == "grammar" and grammar is None and schema is not None:
            grammar = schema_to_gbnf(schema)
        if mode == "grammar" and grammar is not None:
            options["extra_body"] = {"grammar": grammar}
        elif mode == "json_schema" and schema is not None:
            options["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "answer", "schema": schema},
            }
        elif mode != "none":
            fmt: dict[str, Any] = {"type": "json_object"}
            if mode == "json_object" and schema is not None:
                fmt["schema"] = schema
            options["response_format"] = fmt
        return options

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(self.max_backoff, max(0.0, retry_after))
        base = min(self.max_backoff, self.backoff * (2**attempt))
        return base * (0.5 + random.random() / 2)

    def _record(self, entry: dict[str, Any]) -> None:
        with self._stats_lock:
            self.stats.calls += 1
            self.stats.failures += entry["status"] != "ok"
            self.stats.retries += entry["attempts"] - 1
            self.stats.prompt_tokens += entry["prompt_tokens"] or 0
            self.stats.completion_tokens += entry["completion_tokens"] or 0
            self.stats.latency_ms += entry["latency_ms"]
            if self.call_log is not None:
                path = Path(self.call_log)
                path.parent.mkdir(parents=True, exist_ok=True)
                with path.open("a", encoding="utf-8") as fh:
                    fh.write(json.dumps(entry) + "\n")
        log.info(
            "llm call model=%s status=%s latency_ms=%.0f prompt_tokens=%s completion_tokens=%s "
            "attempts=%d cache_hit=False",
            entry["model"],
            entry["status"],
            entry["latency_ms"],
            entry["prompt_tokens"],
            entry["completion_tokens"],
            entry["attempts"],
        )

    def __call__(
        self,
        messages: Sequence[dict[str, str]],
        schema: dict[str, Any] | None = None,
        grammar: str | None = None,
    ) -> dict[str, Any]:
        """One chat completion, parsed as a JSON object (after retries); raises ``LLMError``."""
        import openai

        options = self.request_options(schema, grammar)
        started = time.perf_counter()
        entry: dict[str, Any] = {
            "time": time.time(),
            "model": self.model,
            "endpoint": _public_url(self.base_url),
            "status": "ok",
            "attempts": 0,
            "latency_ms": 0.0,
            "prompt_tokens": None,
            "completion_tokens": None,
        }
        error: LLMError | None = None
        with self._slots:
            for attempt in range(self.max_retries + 1):
                entry["attempts"] = attempt + 1
                retry_after: float | None = None
                try:
                    response = self.client.chat.completions.create(
                        model=self.model, messages=list(messages), **options
                    )
                except openai.APIConnectionError as exc:  # includes timeouts
                    kind = "timeout" if isinstance(exc, openai.APITimeoutError) else "connection"
                    error = LLMError(
                        f"LLM endpoint {_public_url(self.base_url)} {kind} error: {exc}"
                    )
                except openai.APIStatusError as exc:
                    status = exc.status_code
                    error = LLMError(
                        f"LLM endpoint {_public_url(self.base_url)} answered HTTP {status} for "
                        f"model {self.model!r}: {_preview(exc.message)}"
                        + (" (check llm.api_key / OPENAI_API_KEY)" if status in (401, 403) else "")
                        + (
                            f" (if the server does not support json_mode={self.json_mode!r}, "
                            "set llm.json_mode)"
                            if status in (400, 422) and self.json_mode != "none"
                            else ""
                        )
                    )
                    if status not in RETRY_STATUS and status < 500:
                        break
                    header = (
                        exc.response.headers.get("retry-after")
                        if exc.response is not None
                        else None
                    )
                    try:
                        retry_after = float(header) if header else None
                    except ValueError:
                        retry_after = None
                else:
                    usage = getattr(response, "usage", None)
                    entry["prompt_tokens"] = getattr(usage, "prompt_tokens", None)
                    entry["completion_tokens"] = getattr(usage, "completion_tokens", None)
                    choice = response.choices[0] if response.choices else None
                    content = (choice.message.content if choice is not None else None) or ""
                    try:
                        answer = parse_json_object(content)
                    except LLMResponseError as exc:
                        finish = getattr(choice, "finish_reason", None)
                        error = LLMResponseError(
                            f"model {self.model!r}: {exc} (finish_reason={finish})", content
                        )
                        if self.temperature <= 0:  # a deterministic answer would not change
                            break
                    else:
                        entry["latency_ms"] = round((time.perf_counter() - started) * 1000, 1)
                        self._record(entry)
                        return answer
                if attempt < self.max_retries:
                    delay = self._delay(attempt, retry_after)
                    log.warning(
                        "llm call model=%s attempt %d failed (%s); retrying in %.2fs",
                        self.model,
                        attempt + 1,
                        error,
                        delay,
                    )
                    time.sleep(delay)
        entry["status"] = "error"
        entry["latency_ms"] = round((time.perf_counter() - started) * 1000, 1)
        self._record(entry)
        assert error is not None
        raise error
