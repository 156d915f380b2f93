"""Labeling config, task payloads, answer parsing, connection settings: no server needed."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from autocoder.config import load_settings
from autocoder.review import labelstudio as L
from autocoder.review.queue import QueuedTask
from autocoder.workspace import Workspace
from tests.fakes import tiny_taxonomy

from .conftest import free_port


def test_labeling_config_holds_the_whole_hierarchy() -> None:
    tax = tiny_taxonomy()
    root = ET.fromstring(L.labeling_config(tax))
    (taxo,) = [e for e in root.iter("Taxonomy") if e.get("name") == "code"]
    tops = {c.get("alias"): c for c in taxo}
    assert set(tops) == {c.code for c in tax if c.parent is None}
    nurses = tops["29-0000"].find("Choice[@alias='29-1141.00']")
    assert nurses is not None and nurses.get("value") == "29-1141.00 Registered Nurses"
    aliases = [c.get("alias") for c in taxo.iter("Choice")]
    assert sorted(aliases) == sorted(tax.codes)  # every code exactly once
    names = {e.get("name") for e in root.iter() if e.get("name")}
    assert {"title", "description", "suggested", "code", "flags", "note"} <= names
    assert root.find(".//Choices[@name='suggested']").get("value") == "$candidates"  # type: ignore[union-attr]


def test_labeling_config_escapes_and_rejects_bad_templates(tmp_path: Path) -> None:
    tax = tiny_taxonomy()
    tax.get("15-1252.00").title = 'Developers <"&> of software'
    xml = L.labeling_config(tax)
    assert (
        ET.fromstring(xml)
        .find(".//Choice[@alias='15-1252.00']")
        .get("value")
        .endswith(  # type: ignore[union-attr]
            '<"&> of software'
        )
    )
    bad = tmp_path / "bad.xml"
    bad.write_text("<View><Text name='title' value='$title'/></View>")
    with pytest.raises(L.ReviewError, match="no <Taxonomy"):
        L.labeling_config(tax, bad)
    bad.write_text("<View>")
    with pytest.raises(L.ReviewError, match="cannot be read"):
        L.labeling_config(tax, bad)


def test_task_payload_carries_prediction_with_model_version_and_score() -> None:
    task = QueuedTask("r1", "Nurse", "ward care",
                      [{"code": "29-1141.00", "title": "Registered <Nurses>", "score": 0.42},
                       {"code": "15-1252.00", "title": "Software Developers", "score": 0.3}],
                      "model:x", "entropy", 1.2)  # fmt: skip
    p = L.task_payload(task)
    assert p["data"]["record_id"] == "r1" and p["data"]["title"] == "Nurse"
    assert [c["value"] for c in p["data"]["candidates"]] == ["29-1141.00", "15-1252.00"]
    assert "&lt;Nurses&gt;" in p["data"]["candidates"][0]["html"]
    (pred,) = p["predictions"]
    assert pred["model_version"] == "model:x" and pred["score"] == pytest.approx(0.42)
    assert pred["result"][0]["value"] == {"choices": ["29-1141.00"]}
    assert "predictions" not in L.task_payload(QueuedTask("r2", "x"))


def test_parse_annotation_reads_what_the_interface_stores() -> None:
    known = set(tiny_taxonomy().codes)
    # a pick in the hierarchy (alias path) overrides the pre-selected suggestion
    res = L.answer_result(path=["29-0000", "29-1141.00"], note="night shift", emerging=True)
    res.append({"from_name": "suggested", "type": "choices", "value": {"choices": ["15-1252.00"]}})
    a = L.parse_annotation(res, known)
    assert (a.code, a.emerging, a.cannot_code, a.note) == ("29-1141.00", True, False, "night shift")
    # the label path ("CODE title") when the browser stores values rather than aliases
    lab = [
        {
            "from_name": "code",
            "value": {"taxonomy": [["29-0000 Healthcare", "29-1141.00 Registered Nurses"]]},
        }
    ]
    assert L.parse_annotation(lab, known).code == "29-1141.00"
    assert L.parse_annotation(L.answer_result(suggestion="15-1252.00"), known).code == "15-1252.00"
    flags = [{"from_name": "flags", "value": {"choices": ["cannot_code"]}}]
    b = L.parse_annotation(flags, known)
    assert (b.code, b.cannot_code, b.emerging) == ("", True, False)
    assert L.parse_annotation([], known) == L.ParsedAnswer("", False, False, "")


def test_connection_precedence_and_token_never_shown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = Workspace.resolve(tmp_path)
    monkeypatch.delenv("AUTOCODER_REVIEW_URL", raising=False)
    monkeypatch.delenv("AUTOCODER_REVIEW_TOKEN", raising=False)
    with pytest.raises(L.ReviewUnavailable, match="review server start"):
        L.resolve_connection(load_settings(), ws)
    monkeypatch.setenv("AUTOCODER_REVIEW_URL", "http://env:1/")
    with pytest.raises(L.ReviewUnavailable, match="no API token"):
        L.resolve_connection(load_settings(), ws)
    monkeypatch.setenv("AUTOCODER_REVIEW_TOKEN", "envsecret")
    conn = L.resolve_connection(load_settings(), ws)
    assert (conn.url, conn.token, conn.source) == ("http://env:1", "envsecret", "env")
    s = load_settings(overrides=["review.url='http://cfg:2'", "review.token='cfgsecret'"])
    conn = L.resolve_connection(s, ws)
    assert (conn.url, conn.token) == ("http://cfg:2", "cfgsecret")
    assert "cfgsecret" not in repr(conn) and "cfgsecret" not in repr(s)
    assert "cfgsecret" not in s.model_dump_json()


def test_closed_port_is_reported_as_unavailable() -> None:
    conn = L.Connection(f"http://127.0.0.1:{free_port()}", "secret-token")
    with pytest.raises(L.ReviewUnavailable, match="not reachable") as err:
        L.LabelStudioClient(conn, timeout=2).check()
    assert "secret-token" not in str(err.value)


def test_an_echoing_server_never_gets_a_secret_into_the_message() -> None:
    """A proxy that answers 401 with the request's headers and URL in its body."""
    import base64
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Echo(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            return

        def do_GET(self) -> None:  # noqa: N802 - http.server API
            auth = self.headers.get("Authorization")
            body = json.dumps({"detail": f"denied: {auth}", "headers": dict(self.headers)})
            data = (body + " " + "z" * 3000).encode()
            self.send_response(401)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        port = httpd.server_address[1]
        conn = L.Connection(f"http://admin:PASS5678@127.0.0.1:{port}", "tok-0123456789abcdef")
        with pytest.raises(L.ReviewError) as err:
            L.LabelStudioClient(conn, timeout=5).check()
    finally:
        httpd.shutdown()
        httpd.server_close()
    message = str(err.value)
    basic = base64.b64encode(b"admin:PASS5678").decode()
    assert "PASS5678" not in message and "0123456789abcdef" not in message
    assert basic not in message and "HTTP 401" in message and len(message) < 600


def test_unreachable_url_with_a_password_is_shown_without_it() -> None:
    conn = L.Connection(f"http://admin:PASS5678@127.0.0.1:{free_port()}", "secret-token")
    with pytest.raises(L.ReviewUnavailable) as err:
        L.LabelStudioClient(conn, timeout=2).check()
    assert "PASS5678" not in str(err.value) and "127.0.0.1" in str(err.value)
