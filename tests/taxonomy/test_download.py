from __future__ import annotations

import io
import threading
import zipfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from autocoder.taxonomy.download import DownloadError, download_release
from autocoder.taxonomy.onet import import_onet


@pytest.fixture()
def onet_zip_bytes(fixtures_dir: Path) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for file in (fixtures_dir / "onet_mini").iterdir():
            zf.write(file, f"db_29_2_text/{file.name}")
    return buffer.getvalue()


@pytest.fixture()
def server(onet_zip_bytes: bytes) -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            routes = {"/db_29_2_text.zip": onet_zip_bytes, "/page.zip": b"<html>login</html>"}
            body = routes.get(self.path)
            if body is None:
                self.send_error(404, "Not Found")
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_offline_error_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(DownloadError) as info:
        download_release("onet", tmp_path, url="http://127.0.0.1:9/db_29_2_text.zip", timeout=2)
    message = str(info.value)
    assert "autocoder taxonomy import onet PATH" in message
    assert "autocoder taxonomy starter onet" in message
    assert "http://127.0.0.1:9/db_29_2_text.zip" in message
    assert list(tmp_path.iterdir()) == []  # no partial file left behind


def test_download_saves_an_importable_zip(server: str, tmp_path: Path) -> None:
    saved = download_release("onet", tmp_path / "dl", url=f"{server}/db_29_2_text.zip")
    assert saved == tmp_path / "dl" / "db_29_2_text.zip"
    assert zipfile.is_zipfile(saved)
    tax = import_onet(saved)
    assert tax.version == "29.2"
    assert len(tax.leaves()) == 6


def test_http_error_and_non_zip_are_download_errors(server: str, tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match="HTTP 404"):
        download_release("onet", tmp_path, url=f"{server}/missing.zip")
    with pytest.raises(DownloadError, match="not send a zip"):
        download_release("onet", tmp_path, url=f"{server}/page.zip")
    assert list(tmp_path.iterdir()) == []


def test_esco_must_be_downloaded_by_hand(tmp_path: Path) -> None:
    with pytest.raises(DownloadError) as info:
        download_release("esco", tmp_path)
    assert "https://esco.ec.europa.eu/en/use-esco/download" in str(info.value)
    assert "autocoder taxonomy import esco PATH" in str(info.value)


def test_unknown_release(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown release 'isco'"):
        download_release("isco", tmp_path)
