"""The real service: ``autocoder serve`` in a subprocess on 127.0.0.1, spoken to over HTTP."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import httpx
import pandas as pd
import pytest

from autocoder.service.keys import KeyStore
from autocoder.workspace import Workspace
from tests.service.server import Server, cli, free_port, prepare_workspace

pytestmark = [pytest.mark.integration, pytest.mark.slow]

RECORDS = [
    {"id": "a", "title": "Staff Nurse"},
    {"id": "b", "title": "Senior Software Engineer", "description": "write code"},
    {"id": "c", "title": ""},
    {"id": "d", "title": "Pediatrician"},
    {"id": "e", "title": "data warehouse ETL developer"},
    {"id": "a", "title": "Chief Executive"},
    {"id": "", "title": "Nurse"},
    {"id": "f", "title": "sustainability officer", "description": "reports to the board"},
    {"id": "g", "title": "zzz qqq"},
]
COMPARED = ["id", "status", "confidence"] + [
    f"{p}_{i}" for p in ("code", "label", "score") for i in range(1, 6)
]


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory, fixtures_dir: Path) -> Path:
    home = tmp_path_factory.mktemp("home")
    prepare_workspace(home, fixtures_dir)
    return home


@pytest.fixture(scope="module")
def keys(home: Path) -> dict[str, str]:
    store = KeyStore.of(Workspace.resolve(home))
    return {name: store.add(name) for name in ("survey", "pipeline", "gone", "probe")}


@pytest.fixture(scope="module")
def server(home: Path, keys: dict[str, str]) -> Iterator[Server]:
    srv = Server(
        home, ["serve.max_records=20", "serve.max_body_bytes=20000", "serve.rate_per_second=0.2",
               "serve.burst=5", "serve.batch_window_ms=20"],
    ).start()  # fmt: skip
    yield srv
    srv.stop()


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def cli_rows(home: Path, records: list[dict[str, str]]) -> pd.DataFrame:
    src, out = home / "cli-in.jsonl", home / "cli-out.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in records))
    out.unlink(missing_ok=True)
    done = cli(home, ["code", str(src), "-o", str(out)])
    assert done.returncode == 0, done.stderr
    return pd.read_json(out, lines=True, dtype=False)


def test_code_matches_cli(server: Server, home: Path, keys: dict[str, str]) -> None:
    expected = cli_rows(home, RECORDS)
    answer = httpx.post(f"{server.url}/v1/code", json={"records": RECORDS},
                        headers=bearer(keys["survey"]), timeout=60)  # fmt: skip
    assert answer.status_code == 200, answer.text
    got = pd.DataFrame(answer.json()["results"])
    assert list(got.columns) == list(expected.columns)  # exactly the fields of `autocoder code`
    assert got["row"].tolist() == list(range(len(RECORDS)))
    pd.testing.assert_frame_equal(
        got[COMPARED].astype(object).where(got[COMPARED].notna(), None),
        expected[COMPARED].astype(object).where(expected[COMPARED].notna(), None),
    )
    assert set(got["status"]) >= {"coded", "error:empty_text", "error:duplicate_id",
                                  "error:missing_id"}  # fmt: skip
    assert got.loc[0, "code_1"] == "29-1141.00"
    # how the statuses were decided, as a batch job's summary says it
    assert answer.json()["calibration"] == {"calibrated": False, "threshold": 0.5}


def test_concurrent_requests_same_rows(server: Server, keys: dict[str, str]) -> None:
    """Requests sent together (one micro-batch) give each record the row it gets alone."""
    valid = list({r["id"]: r for r in RECORDS[::-1] if r["id"] and r["title"]}.values())[:5]

    async def send_all() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=server.url, headers=bearer(keys["pipeline"]),
                                     timeout=60) as client:  # fmt: skip
            return await asyncio.gather(
                *(client.post("/v1/code", json={"records": [r]}) for r in valid)
            )

    together = asyncio.run(send_all())
    assert [r.status_code for r in together] == [200] * len(valid)
    mixed = pd.DataFrame([r.json()["results"][0] for r in together])
    time.sleep(5)  # the pipeline key's bucket refills a token
    alone = httpx.post(f"{server.url}/v1/code", json={"records": valid},
                       headers=bearer(keys["pipeline"]), timeout=60).json()["results"]  # fmt: skip
    pd.testing.assert_frame_equal(mixed[COMPARED], pd.DataFrame(alone)[COMPARED])


def test_keys_limits_and_errors(server: Server, home: Path, keys: dict[str, str]) -> None:
    url, ok = f"{server.url}/v1/code", {"records": [{"id": "1", "title": "nurse"}]}
    assert httpx.post(url, json=ok).status_code == 401
    assert httpx.post(url, json=ok, headers=bearer("ac_wrong")).status_code == 401
    assert httpx.post(url, json=ok, headers={"Authorization": keys["gone"]}).status_code == 401
    assert httpx.post(url, json=ok, headers=bearer(keys["gone"]), timeout=60).status_code == 200
    KeyStore.of(Workspace.resolve(home)).revoke("gone")
    assert httpx.post(url, json=ok, headers=bearer(keys["gone"])).status_code == 401
    too_many = {"records": [{"id": str(i), "title": "nurse"} for i in range(21)]}
    assert httpx.post(url, json=too_many, headers=bearer(keys["survey"])).status_code == 413
    big = {"records": [{"id": "1", "title": "n" * 30000}]}
    assert httpx.post(url, json=big, headers=bearer(keys["survey"])).status_code == 413
    for bad in ({"rows": []}, {"records": "nurse"}, [1, 2]):
        answer = httpx.post(url, json=bad, headers=bearer(keys["survey"]))
        assert answer.status_code == 422, answer.text
    statuses = [httpx.post(url, json=ok, headers=bearer(keys["survey"]), timeout=60)
                for _ in range(8)]  # fmt: skip
    limited = [r for r in statuses if r.status_code == 429]
    assert limited and int(limited[0].headers["Retry-After"]) >= 1
    log = server.log.read_text()
    assert "POST /v1/code" in log and keys["survey"] not in log and "nurse" not in log


def test_codes_search_probes_metrics(server: Server, keys: dict[str, str]) -> None:
    headers = bearer(keys["probe"])
    code = httpx.get(f"{server.url}/v1/codes/29-1141.00", headers=headers).json()
    assert code["title"] == "Registered Nurses" and code["parent"] == "29-1141"
    assert httpx.get(f"{server.url}/v1/codes/99-9999.99", headers=headers).status_code == 404
    found = httpx.get(f"{server.url}/v1/search", params={"q": "registered nurse", "k": 2},
                      headers=headers, timeout=60).json()  # fmt: skip
    assert [r["code"] for r in found["results"]][0] == "29-1141.00"
    assert httpx.get(f"{server.url}/healthz").status_code == 200
    ready = httpx.get(f"{server.url}/readyz").json()
    assert ready["ready"] is True
    # what codes the records: retrieval alone, uncalibrated, at the bare threshold
    assert ready["coder"]["model"] == "retrieval" and ready["coder"]["taxonomy"] == "onet mini"
    assert ready["coder"]["calibration"] == {"calibrated": False, "threshold": 0.5}
    assert "coding onet mini with retrieval" in server.log.read_text()
    assert "target_precision 0.95 does not apply: retrieval alone" in server.log.read_text()
    assert "/v1/code" in httpx.get(f"{server.url}/openapi.json").json()["paths"]
    assert httpx.get(f"{server.url}/docs").status_code == 200
    metrics = httpx.get(f"{server.url}/metrics").text
    assert 'autocoder_records_total{status="coded"}' in metrics
    assert 'autocoder_requests_total{code="429",method="POST",route="/v1/code"}' in metrics
    assert "autocoder_batch_records_count" in metrics


def test_review_queues_when_label_studio_is_down(home: Path, fixtures_dir: Path) -> None:
    """/v1/review queues the records (pending) and answers 503 while Label Studio is down."""
    from autocoder.review import queue

    srv = Server(home, [f"review.url=\"http://127.0.0.1:{free_port()}\"",
                        "review.token=\"t\"", "review.show_skills=false"]).start()  # fmt: skip
    try:
        key = KeyStore.of(Workspace.resolve(home)).add("reviewer")
        body = {"project": "svc", "records": [{"id": "r1", "title": "nurse"},
                                              {"id": "r2", "title": "chief"}]}  # fmt: skip
        answer = httpx.post(f"{srv.url}/v1/review", json=body, headers=bearer(key), timeout=120)
        assert answer.status_code == 503, answer.text
        assert "pending" in answer.json()["detail"]
        pending = queue.pending_tasks(Workspace.resolve(home), "svc")
        assert sorted(t.record_id for t in pending) == ["r1", "r2"]
    finally:
        srv.stop()


def test_job_survives_sigkill(tmp_path: Path, fixtures_dir: Path) -> None:
    """A job killed mid-way (SIGKILL) finishes after a restart: one row per input row."""
    home = tmp_path / "home"
    sets = ["coder.batch_size=50", "serve.job_window_rows=50", "serve.job_poll_seconds=0.5",
            "embedder.cache=false"]  # fmt: skip
    prepare_workspace(home, fixtures_dir, sets)
    words = ["nurse", "engineer", "chief", "analyst", "doctor", "warehouse", "officer"]
    n = 1500
    table = pd.DataFrame({"id": [f"j{i}" for i in range(n)],
                          "title": [f"{words[i % 7]} {words[(i // 7) % 7]} {i}" for i in range(n)]})  # fmt: skip
    table.to_csv(tmp_path / "in.csv", index=False)
    srv = Server(home, sets).start()
    with (tmp_path / "in.csv").open("rb") as fh:
        job = httpx.post(f"{srv.url}/v1/jobs", files={"file": ("in.csv", fh)}, timeout=60).json()
    assert job["rows"] == n and job["status"] == "queued"
    deadline = time.monotonic() + 300
    while (status := httpx.get(f"{srv.url}/v1/jobs/{job['id']}").json())["rows_done"] == 0:
        assert time.monotonic() < deadline and status["status"] != "done"
        time.sleep(0.1)
    assert status["status"] == "running"
    srv.kill()
    srv = Server(home, sets).start()
    try:
        while (status := httpx.get(f"{srv.url}/v1/jobs/{job['id']}").json())["status"] != "done":
            assert time.monotonic() < deadline and status["status"] != "failed", status
            time.sleep(0.5)
        assert status["summary"]["resumed_batches"] >= 1  # checkpoints of the killed run kept
        result = httpx.get(f"{srv.url}/v1/jobs/{job['id']}/result", timeout=60)
        out = pd.read_csv(pd.io.common.BytesIO(result.content), dtype={"id": str})
        assert len(out) == n and out["row"].tolist() == list(range(n))
        assert out["id"].tolist() == table["id"].tolist()
        assert set(out["status"]) <= {"coded", "review"}
    finally:
        srv.stop()


def _chroma(tmp_path: Path, port: int) -> subprocess.Popen[bytes]:
    exe = Path(sys.executable).parent / "chroma"
    exe = exe if exe.exists() else Path(shutil.which("chroma") or "chroma")
    proc = subprocess.Popen(
        [str(exe), "run", "--host", "127.0.0.1", "--port", str(port), "--path", str(tmp_path)],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v2/heartbeat", timeout=2)
            return proc
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                raise RuntimeError("chroma server did not start") from None
            time.sleep(0.5)


def test_readyz_fails_while_chroma_server_is_down(tmp_path: Path, fixtures_dir: Path) -> None:
    port = free_port()
    chroma = _chroma(tmp_path / "chroma", port)
    sets = ['index.host="127.0.0.1"', f"index.port={port}", "index.connect_timeout=2"]
    srv: Server | None = None
    try:
        prepare_workspace(tmp_path / "home", fixtures_dir, sets)
        srv = Server(tmp_path / "home", sets).start()
        ready = httpx.get(f"{srv.url}/readyz", timeout=30)
        assert ready.status_code == 200, ready.text
        chroma.terminate()
        chroma.wait(timeout=30)
        down = httpx.get(f"{srv.url}/readyz", timeout=60)
        assert down.status_code == 503
        assert down.json()["checks"]["chroma_server"].startswith("Chroma server")
        assert down.json()["checks"]["index"] != "ok"
    finally:
        if srv is not None:
            srv.stop()
        if chroma.poll() is None:
            chroma.kill()
