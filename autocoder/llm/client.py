"""``LLMModel``: a swappable callable around the ``openai`` client for any compatible endpoint.

``model(messages, schema=None) -> dict`` sends one chat completion and returns the answer parsed
as a JSON object. The output is constrained by the server where it can be (``json_mode``):

* ``json_object`` — ``response_format={"type": "json_object", "schema": ...}`` (llama.cpp, whose
  server turns the schema into its own grammar);
* ``json_schema`` — ``response_format={"type": "json_schema", ...}`` (OpenAI, vLLM, Ollama);
* ``none`` — no constraint; the JSON object is taken from the text.

Transport retries are the ``openai`` client's own (``max_retries``: timeouts, connection errors,
HTTP 408/409/429/5xx with exponential backoff, honouring ``Retry-After``) and so is the
per-request ``timeout``. An answer that is not a JSON object is asked again (up to
``max_retries`` times) only when sampling (``temperature > 0``): a deterministic answer would not
change. A concurrency limit is a constructor argument. Every call is logged (model, latency ms,
prompt/completion tokens, attempts) through ``logging`` and, optionally, appended to a JSONL call
log. The API key is never logged nor shown in ``repr``.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from autocoder.redact import excerpt

log = logging.getLogger("autocoder.llm")

JSON_MODES = ("json_object", "json_schema", "none")
NO_KEY = "no-key"  # local servers (llama.cpp, vLLM, Ollama) accept any key
RETRY_COUNT_HEADER = "x-stainless-retry-count"  # set by the openai client on every attempt
_clock = time.perf_counter  # the _Call field "time" hides the module inside that class


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


def _attempts(request: Any) -> int:
    """Attempts the openai client made, read off the last request it sent (1 when unknown)."""
    try:
        return int(request.headers.get(RETRY_COUNT_HEADER) or 0) + 1
    except (AttributeError, RuntimeError, TypeError, ValueError):
        return 1


@dataclass
class _Call:
    """One call as logged: outcome, attempts, latency, tokens (never the request's secrets)."""

    model: str
    endpoint: str
    time: float = field(default_factory=time.time)
    status: str = "ok"
    attempts: int = 0
    latency_ms: float = 0.0
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    _started: float = field(default_factory=_clock, repr=False)

    def add_usage(self, usage: Any) -> None:
        for key in ("prompt_tokens", "completion_tokens"):
            n = getattr(usage, key, None)
            if n is not None:
                setattr(self, key, (getattr(self, key) or 0) + n)

    def finish(self) -> dict[str, Any]:
        self.latency_ms = round((_clock() - self._started) * 1000, 1)
        return {k: v for k, v in asdict(self).items() if not k.startswith("_")}


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
        """The ``openai`` client; its own retries and timeout apply to every request."""
        with self._client_lock:
            if self._client is None:
                import openai

                self._client = openai.OpenAI(
                    base_url=self.base_url,
                    api_key=self._api_key or NO_KEY,
                    timeout=self.timeout,
                    max_retries=self.max_retries,
                )
            return self._client

    def request_options(self, schema: dict[str, Any] | None = None) -> dict[str, Any]:
        """Everything sent besides the messages; also part of the cache key."""
        options: dict[str, Any] = {"temperature": self.temperature, "max_tokens": self.max_tokens}
        if self.json_mode == "json_schema" and schema is not None:
            options["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "answer", "schema": schema},
            }
        elif self.json_mode == "json_object":
            fmt: dict[str, Any] = {"type": "json_object"}
            if schema is not None:
                fmt["schema"] = schema
            options["response_format"] = fmt
        elif self.json_mode == "json_schema":
            options["response_format"] = {"type": "json_object"}
        return options

    def __call__(
        self, messages: Sequence[dict[str, str]], schema: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """One chat completion, parsed as a JSON object; raises ``LLMError``."""
        call = _Call(self.model, _public_url(self.base_url))
        options = self.request_options(schema)
        with self._slots:
            try:
                return self._ask(list(messages), options, call)
            except LLMError:
                call.status = "error"
                raise
            finally:
                self._record(call.finish())

    def _ask(
        self, messages: list[dict[str, str]], options: dict[str, Any], call: _Call
    ) -> dict[str, Any]:
        """Ask until the answer is a JSON object; again only when sampling (temperature > 0)."""
        tries = self.max_retries + 1 if self.temperature > 0 else 1
        for i in range(tries):
            response = self._complete(messages, options, call)
            choice = response.choices[0] if response.choices else None
            content = (choice.message.content if choice is not None else None) or ""
            try:
                return parse_json_object(content)
            except LLMResponseError as exc:
                finish = getattr(choice, "finish_reason", None)
                error = LLMResponseError(
                    f"model {self.model!r}: {exc} (finish_reason={finish})", content
                )
                if i + 1 < tries:
                    log.warning("llm call model=%s: %s; asking again", self.model, error)
        raise error

    def _complete(
        self, messages: list[dict[str, str]], options: dict[str, Any], call: _Call
    ) -> Any:
        """One completion through the openai client (its retries included)."""
        import openai

        endpoint = _public_url(self.base_url)
        try:
            raw = self.client.chat.completions.with_raw_response.create(
                model=self.model, messages=messages, **options
            )
        except openai.APIConnectionError as exc:  # includes timeouts
            call.attempts += _attempts(exc.request)
            kind = "timeout" if isinstance(exc, openai.APITimeoutError) else "connection"
            detail = excerpt(exc, self._secrets())
            raise LLMError(f"LLM endpoint {endpoint} {kind} error: {detail}") from exc
        except openai.APIStatusError as exc:
            call.attempts += _attempts(exc.response.request)
            raise self._status_error(exc) from exc
        call.attempts += raw.retries_taken + 1
        response = raw.parse()
        call.add_usage(getattr(response, "usage", None))
        return response

    def _status_error(self, exc: Any) -> LLMError:
        status = exc.status_code
        hint = ""
        if status in (401, 403):
            hint = " (check llm.api_key / OPENAI_API_KEY)"
        elif status in (400, 422) and self.json_mode != "none":
            hint = (
                f" (if the server does not support json_mode={self.json_mode!r}, set llm.json_mode)"
            )
        return LLMError(
            f"LLM endpoint {_public_url(self.base_url)} answered HTTP {status} for model "
            f"{self.model!r}: {excerpt(exc.message, self._secrets())!r}{hint}"
        )

    def _secrets(self) -> tuple[str, ...]:
        """What a message must never show: the API key and the endpoint URL's password."""
        password = urlsplit(self.base_url).password if self.base_url else None
        return (self._api_key or os.environ.get("OPENAI_API_KEY") or "", password or "")

    def _record(self, entry: dict[str, Any]) -> None:
        with self._stats_lock:
            self.stats.calls += 1
            self.stats.failures += entry["status"] != "ok"
            self.stats.retries += max(entry["attempts"] - 1, 0)
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
