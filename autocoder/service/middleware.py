"""The ASGI layer in front of every route: body limit (413), request timeout (504), metrics
and an access log line that holds no key, query string or record text."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from autocoder.config import ServeConfig
from autocoder.service.metrics import Metrics

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

access_log = logging.getLogger("autocoder.service.access")

#: Routes whose bodies or answers may be large and slow: the upload limit, no timeout.
STREAMING = ("/v1/jobs",)


class BodyTooLarge(Exception):
    """The request body is over its limit (answered 413)."""


async def _answer(
    send: Send, status: int, detail: str, headers: dict[str, str] | None = None
) -> None:
    body = json.dumps({"detail": detail}).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


def _streaming(scope: Scope) -> bool:
    return str(scope.get("path", "")).startswith(STREAMING)


async def _buffer(receive: Receive, limit: int) -> list[Message] | None:
    """The whole request body, or None when it is over ``limit`` bytes."""
    messages, size = [], 0
    while True:
        message = await receive()
        messages.append(message)
        size += len(message.get("body", b""))
        if size > limit:
            return None
        if message["type"] != "http.request" or not message.get("more_body"):
            return messages


def _counting(receive: Receive, limit: int) -> Receive:
    seen = 0

    async def wrapped() -> Message:
        nonlocal seen
        message = await receive()
        seen += len(message.get("body", b""))
        if seen > limit:
            raise BodyTooLarge(f"the upload is over serve.max_upload_bytes ({limit} bytes)")
        return message

    return wrapped


class ServiceMiddleware:
    def __init__(self, app: ASGIApp, cfg: ServeConfig, metrics: Metrics) -> None:
        self.app = app
        self.cfg = cfg
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start, status = time.perf_counter(), [0]  # 0: nothing sent yet

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = int(message["status"])
            await send(message)

        try:
            await self._limited(scope, receive, sending, status)
        finally:
            self._record(scope, status[0] or 500, time.perf_counter() - start)

    async def _limited(self, scope: Scope, receive: Receive, send: Send, status: list[int]) -> None:
        streaming = _streaming(scope)
        limit = self.cfg.max_upload_bytes if streaming else self.cfg.max_body_bytes
        length = dict(scope.get("headers") or []).get(b"content-length", b"")
        if length.isdigit() and int(length) > limit:
            await _answer(send, 413, f"request body over its limit ({limit} bytes)")
            return
        if streaming:
            await self.app(scope, _counting(receive, limit), send)
            return
        messages = await _buffer(receive, limit)
        if messages is None:
            await _answer(send, 413, f"request body over its limit ({limit} bytes)")
            return
        replay = iter(messages)

        async def replaying() -> Message:
            return next(replay, None) or await receive()

        try:
            await asyncio.wait_for(self.app(scope, replaying, send), self.cfg.request_timeout)
        except TimeoutError:
            if not status[0]:
                await _answer(send, 504, f"no answer within {self.cfg.request_timeout} s")

    def _record(self, scope: Scope, code: int, seconds: float) -> None:
        route = getattr(scope.get("route"), "path", None) or "other"
        self.metrics.observe_request(route, scope.get("method", ""), code, seconds)
        if self.cfg.access_log:
            client = (scope.get("client") or ("-", 0))[0]
            key = (scope.get("state") or {}).get("key_name", "-")
            access_log.info(
                '%s "%s %s" %d %.1fms key=%s',
                client, scope.get("method"), scope.get("path"), code, seconds * 1000, key,
            )  # fmt: skip
