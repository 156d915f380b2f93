"""One place that keeps secrets out of messages, logs and printed settings.

``redact`` removes what looks like a credential from a text: the ``user:password@`` part of
URLs, ``Authorization``-style values (``Bearer ...``, ``Token ...``), ``key=value`` /
``"key": "value"`` pairs whose key names a secret (token, api_key, password, secret...), and
API keys shaped like ``sk-...``; ``secrets`` (the configured token or key) are removed wherever
they appear. ``redact_url`` drops a URL's credentials, ``excerpt`` makes a server's response body
safe to quote in an error (redacted, one line, cut to a length).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

#: What a removed secret is shown as.
MASK = "***"

#: How much of a server's response body an error message quotes.
EXCERPT_CHARS = 200

_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)[^/\s@]+@")
_AUTH = re.compile(
    r"(?i)\b(?:(?P<kind>bearer|basic)(?P<sep>\s+)[A-Za-z0-9._~+/=-]{4,}"
    r"|(?P<tkind>token)(?P<tsep>\s+)(?=[A-Za-z0-9._~+/=-]*\d)[A-Za-z0-9._~+/=-]{8,})"
)
_PAIR = re.compile(
    r"(?i)(?P<key>[\"']?[\w-]*(?:api[_-]?key|token|password|passwd|secret|authorization|"
    r"apikey|auth)[\w-]*[\"']?)(?P<sep>\s*[:=]\s*)(?P<quote>[\"']?)(?P<value>[^\s\"',&}]+)"
)
_KEY_SHAPED = re.compile(r"\b(?:sk|pk|rk|ghp|gho|xox[abp])[-_][A-Za-z0-9_-]{8,}")


def redact(text: Any, secrets: Iterable[str | None] = ()) -> str:
    """``text`` with every credential replaced by ``MASK`` (see the module docstring)."""
    out = str(text)
    for secret in secrets:
        if secret and len(secret) >= 4:
            out = out.replace(secret, MASK)
    out = _USERINFO.sub(lambda m: f"{m.group('scheme')}{MASK}@", out)
    out = _AUTH.sub(
        lambda m: f"{m.group('kind') or m.group('tkind')}{m.group('sep') or m.group('tsep')}{MASK}",
        out,
    )
    out = _PAIR.sub(lambda m: f"{m.group('key')}{m.group('sep')}{m.group('quote')}{MASK}", out)
    return _KEY_SHAPED.sub(MASK, out)


def redact_url(url: str | None) -> str:
    """``url`` without its ``user:password@`` part (``***@`` shows that one was given)."""
    if not url:
        return ""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit((parts.scheme, f"{MASK}@{host}", parts.path, parts.query, parts.fragment))


def excerpt(body: Any, secrets: Iterable[str | None] = (), limit: int = EXCERPT_CHARS) -> str:
    """A response body fit for an error message: redacted, on one line, at most ``limit``
    characters (then ``…``)."""
    text = " ".join(redact(body if body is not None else "", secrets).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def redact_values(data: Any) -> Any:
    """``data`` (nested dicts and lists, e.g. dumped settings) with every string redacted."""
    if isinstance(data, dict):
        return {k: redact_values(v) for k, v in data.items()}
    if isinstance(data, list):
        return [redact_values(v) for v in data]
    return redact(data) if isinstance(data, str) else data
