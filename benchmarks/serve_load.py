"""Load benchmark of ``autocoder serve`` (issue 20), loopback only, bounded in clients and time.

    .venv/bin/python benchmarks/serve_load.py --clients 16 --duration 60 [--workers 1]

One run: a fresh workspace with the O*NET 29.2 release in ../shared/data (index of the official
occupation titles, ``index.kinds=["title"]``, retrieval coder, embedding cache off everywhere),
the server started on 127.0.0.1 and a free port (rate limit lifted: every client shares the open
key), then ``--clients`` concurrent httpx clients, each sending requests of 1-20 real vacancy
titles (JobBERT validation + TGRE posting titles, distinct, taken in turn; the pool is reused
only if the run outlasts it) for ``--duration`` seconds. Printed: requests/s, records/s,
p50/p95/p99 latency, answers by status, the server's CPU seconds; then the same distinct records
through ``autocoder code`` (its start-up, measured on a one-record file, subtracted), with its
CPU seconds; and the ratio of the two rates (wall clock and per CPU second).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
SETS = ['index.kinds=["title"]', "embedder.cache=false", "serve.rate_per_second=1000000",
        "serve.burst=1000000"]  # fmt: skip
MAX_CLIENTS, MAX_DURATION = 64, 600


def cli(home: Path, args: list[str]) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "autocoder.cli"] + [a for s in SETS for a in ("--set", s)]
    env = dict(os.environ, AUTOCODER_HOME=str(home), HF_HUB_OFFLINE="1")
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    done = subprocess.run(cmd + args, env=env, capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        raise SystemExit(f"autocoder {' '.join(args)} failed:\n{done.stderr[-2000:]}")
    return done


def titles() -> list[str]:
    a = pd.read_csv(DATA / "jobbert_validation" / "titles.csv")["vacancyTitle"]
    b = pd.read_csv(DATA / "tgre_posting_titles" / "job_titles_unlabeled.csv").iloc[:, -1]
    pool = [str(t).strip() for t in pd.concat([a, b]).dropna()]
    return list(dict.fromkeys(t for t in pool if t))


def cpu_seconds(pid: int) -> float:
    """CPU seconds of the server process and its workers (user + system)."""
    import psutil

    procs = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    return float(sum(t.user + t.system for t in (p.cpu_times() for p in procs)))


def start_server(home: Path, port: int, workers: int) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "autocoder.cli"] + [a for s in SETS for a in ("--set", s)]
    cmd += ["serve", "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)]
    env = dict(os.environ, AUTOCODER_HOME=str(home), HF_HUB_OFFLINE="1")
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    log = (home / "server.log").open("wb")
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(1)
    proc.kill()
    raise SystemExit(f"server did not become ready:\n{(home / 'server.log').read_text()[-2000:]}")


class Load:
    """The shared record cursor and what the clients saw."""

    def __init__(self, pool: list[str], seed: int) -> None:
        self.pool = pool
        self.cursor = 0
        self.rng = random.Random(seed)
        self.latencies: list[float] = []
        self.codes: Counter[str] = Counter()
        self.records = 0

    def take(self) -> list[dict[str, str]]:
        n = self.rng.randint(1, 20)
        out = []
        for _ in range(n):
            i = self.cursor
            self.cursor += 1
            out.append({"id": f"r{i}", "title": self.pool[i % len(self.pool)]})
        return out


async def client(base: str, load: Load, until: float) -> None:
    async with httpx.AsyncClient(base_url=base, timeout=120) as http:
        while time.monotonic() < until:
            records = load.take()
            start = time.perf_counter()
            try:
                answer = await http.post("/v1/code", json={"records": records})
                status = str(answer.status_code)
            except httpx.HTTPError as exc:
                status = type(exc).__name__
            load.latencies.append(time.perf_counter() - start)
            load.codes[status] += 1
            if status == "200":
                load.records += len(records)


async def run_load(base: str, load: Load, clients: int, duration: float) -> float:
    start = time.monotonic()
    await asyncio.gather(*(client(base, load, start + duration) for _ in range(clients)))
    return time.monotonic() - start


def code_cli(home: Path, records: list[dict[str, str]]) -> dict[str, float]:
    """``autocoder code`` on ``records``, start-up (a one-record run) subtracted."""

    def timed(rows: list[dict[str, str]], name: str) -> tuple[float, float]:
        path = home / f"{name}.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        wall = time.perf_counter()
        cli(home, ["code", str(path), "-o", str(home / f"{name}-out.jsonl")])
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        return time.perf_counter() - wall, cpu

    w1, c1 = timed(records[:1], "startup")
    wn, cn = timed(records, "all")
    return {"records": len(records), "wall_s": wn - w1, "cpu_s": cn - c1,
            "wall_s_with_startup": wn}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--duration", type=float, default=60.0)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if not 1 <= args.clients <= MAX_CLIENTS or not 0 < args.duration <= MAX_DURATION:
        raise SystemExit(f"--clients 1-{MAX_CLIENTS}, --duration up to {MAX_DURATION} s")
    with tempfile.TemporaryDirectory(prefix="serve-load-") as tmp:
        home = Path(tmp)
        cli(home, ["taxonomy", "import", "onet", str(DATA / "onet_29.2")])
        cli(home, ["index", "build"])
        pool = titles()
        port = 20000 + os.getpid() % 20000
        proc = start_server(home, port, args.workers)
        try:
            cpu0 = cpu_seconds(proc.pid)
            load = Load(pool, args.seed)
            wall = asyncio.run(
                run_load(f"http://127.0.0.1:{port}", load, args.clients, args.duration)
            )
            server_cpu = cpu_seconds(proc.pid) - cpu0
        finally:
            proc.terminate()
            proc.wait(timeout=60)
        sent = [
            {"id": f"r{i}", "title": t} for i, t in enumerate(pool[: min(load.cursor, len(pool))])
        ]
        base = code_cli(home, sent)
    lat = np.array(load.latencies) * 1000
    served = {
        "clients": args.clients, "workers": args.workers, "duration_s": round(wall, 1),
        "requests": int(sum(load.codes.values())), "requests_per_s": round(sum(load.codes.values()) / wall, 1),
        "records": load.records, "records_per_s": round(load.records / wall, 1),
        "distinct_records_sent": len(sent), "pool_reused": load.cursor > len(pool),
        "latency_ms": {p: round(float(np.percentile(lat, q)), 1) for p, q in (("p50", 50), ("p95", 95), ("p99", 99))},
        "answers_by_status": dict(load.codes), "server_cpu_s": round(server_cpu, 1),
        "records_per_cpu_s": round(load.records / server_cpu, 1) if server_cpu else None,
    }  # fmt: skip
    cli_rate = base["records"] / base["wall_s"]
    cli_cpu_rate = base["records"] / base["cpu_s"] if base["cpu_s"] > 0 else float("nan")
    report: dict[str, Any] = {
        "serve": served,
        "autocoder_code": {**{k: round(v, 1) for k, v in base.items()},
                           "records_per_s": round(cli_rate, 1), "records_per_cpu_s": round(cli_cpu_rate, 1)},
        "ratio_records_per_s": round(served["records_per_s"] / cli_rate, 2),
        "ratio_records_per_cpu_s": round((served["records_per_cpu_s"] or 0) / cli_cpu_rate, 2),
        "server_5xx": sum(c for s, c in load.codes.items() if s.startswith("5")),
    }  # fmt: skip
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
