"""Issue 23 item 7: secrets never reach a message (autocoder.redact)."""

from __future__ import annotations

import pytest

from autocoder.redact import MASK, excerpt, redact, redact_url, redact_values


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("GET http://admin:PASS1234@127.0.0.1:8080/api failed", "PASS1234"),
        ("Authorization: Bearer abcdef123456", "abcdef123456"),
        ("Authorization: Token 0123456789abcdef", "0123456789abcdef"),
        ('{"detail": "bad", "token": "tok-9999"}', "tok-9999"),
        ("api_key=sk-live-verysecretkey&x=1", "verysecretkey"),
        ("password: hunter2!", "hunter2!"),
        ("key sk-proj-ABCDEFGH12345678 was refused", "ABCDEFGH12345678"),
    ],
)
def test_redact_removes_credentials(text: str, secret: str) -> None:
    out = redact(text)
    assert secret not in out and MASK in out


def test_known_secrets_are_removed_wherever_they_are() -> None:
    assert redact("echo: my-own-value here", secrets=["my-own-value"]) == "echo: *** here"
    assert redact("short", secrets=["", None, "ab"]) == "short"  # nothing too short to match


def test_plain_text_is_left_alone() -> None:
    text = "Label Studio refused to create a project: HTTP 400: title is too long"
    assert redact(text) == text
    assert redact_url("http://127.0.0.1:8080/x?y=1") == "http://127.0.0.1:8080/x?y=1"


def test_redact_url() -> None:
    assert redact_url("http://admin:PASS@127.0.0.1:9/api") == "http://***@127.0.0.1:9/api"
    assert redact_url("https://user@host/") == "https://***@host/"
    assert redact_url(None) == ""


def test_excerpt_is_one_redacted_bounded_line() -> None:
    body = "line one\nBearer abcdefghijkl\n" + "x" * 1000
    out = excerpt(body, limit=50)
    assert "\n" not in out and "abcdefghijkl" not in out and len(out) == 50
    assert out.endswith("…")


def test_redact_values_walks_settings() -> None:
    data = {"review": {"url": "http://a:SECRETPW@h:1"}, "kinds": ["x", "token=abcd1234"], "n": 3}
    out = redact_values(data)
    assert "SECRETPW" not in str(out) and "abcd1234" not in str(out) and out["n"] == 3


def test_prose_about_tokens_is_not_garbled() -> None:
    text = "no API token must be shown; set review.token or $AUTOCODER_REVIEW_TOKEN"
    assert redact(text) == text
