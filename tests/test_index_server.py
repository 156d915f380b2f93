"""The same index against a real Chroma server (``chroma run``) through HttpClient."""

import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from autocoder.index import ChromaIndex
from tests.fakes import HashingEmbedder, tiny_taxonomy

pytestmark = pytest.mark.integration


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture()
def chroma_server(tmp_path: Path) -> Iterator[int]:
    exe = Path(sys.executable).parent / "chroma"
    if not exe.exists():
        found = shutil.which("chroma")
        assert found, "the `chroma` CLI (from chromadb) is not installed in this environment"
        exe = Path(found)
    port = _free_port()
    proc = subprocess.Popen(
        [
            str(exe),
            "run",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--path",
            str(tmp_path / "srv"),
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.time() + 60
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v2/heartbeat", timeout=2)
                break
            except OSError:
                if time.time() > deadline or proc.poll() is not None:
                    raise RuntimeError("chroma server did not start") from None
                time.sleep(0.5)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_index_on_chroma_server(chroma_server: int) -> None:
    tax, emb = tiny_taxonomy(), HashingEmbedder()
    index = ChromaIndex(
        taxonomy_name="onet",
        taxonomy_version="t",
        model_id="hashing",
        host="127.0.0.1",
        port=chroma_server,
    )
    n = index.build(tax, emb, show_progress=False)  # type: ignore[arg-type]
    assert index.count() == n
    assert index.search(emb.encode(["registered staff nurse"]), k=1).codes == [["29-1141.00"]]
