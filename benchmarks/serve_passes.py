"""Why small micro-batches cost more per record: the same real titles coded in one pass, in
passes of 16 requests (what 16 closed-loop clients give) and in one pass of 48 requests.

    .venv/bin/python benchmarks/serve_passes.py [--requests 48] [--rounds 2]

In-process, on a temporary workspace over the O*NET test fixture (the encoder's cost does not
depend on the taxonomy), embedding cache off, after one untimed pass (every shape warm);
the cases alternate their order by round. Prints records, wall and CPU seconds per case.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path

import pandas as pd

from autocoder import api
from autocoder.config import load_settings
from autocoder.service.engine import code_pass, load_service_coder
from autocoder.workspace import Workspace

ROOT = Path(__file__).resolve().parents[1]
TITLES = ROOT.parent / "shared" / "data" / "jobbert_validation" / "titles.csv"


def requests(titles: list[str], start: int, n: int, rng: random.Random) -> list[pd.DataFrame]:
    out, i = [], start
    for _ in range(n):
        k = rng.randint(1, 20)
        out.append(
            pd.DataFrame({"id": [f"r{j}" for j in range(i, i + k)], "title": titles[i : i + k]})
        )
        i += k
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=48)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    settings = load_settings(overrides=["embedder.cache=false"])
    titles = pd.read_csv(TITLES)["vacancyTitle"].dropna().unique().tolist()
    rng = random.Random(0)
    with tempfile.TemporaryDirectory() as tmp:
        ws = Workspace.resolve(tmp)
        api.import_taxonomy("onet", ROOT / "tests" / "fixtures" / "onet_mini", ws, version="mini")
        api.build_index(settings, ws, show_progress=False)
        coder = load_service_coder(settings, ws)
        start = 0
        warm = requests(titles, start, args.requests, rng)  # every encoder shape run once first
        start += sum(len(f) for f in warm)
        code_pass(coder, warm, settings.coder)
        cases = (("one table, one pass", 0), ("passes of 16 requests", 16),
                 (f"{args.requests} requests, one pass", args.requests))  # fmt: skip
        for round_ in range(args.rounds):
            for name, size in cases if round_ % 2 == 0 else cases[::-1]:
                start = run_case(
                    coder, settings.coder, titles, start, args.requests, size, rng, name
                )


def run_case(coder, options, titles, start, n_requests, size, rng, name):  # type: ignore[no-untyped-def]
    """Code ``n_requests`` fresh requests in passes of ``size`` (0: all as one table)."""
    frames = requests(titles, start, n_requests, rng)
    start += sum(len(f) for f in frames)
    if size == 0:
        frames = [pd.concat(frames, ignore_index=True)]
        frames[0]["id"] = frames[0].index.astype(str)
        size = 1
    wall, cpu = time.perf_counter(), time.process_time()
    for k in range(0, len(frames), size):
        code_pass(coder, frames[k : k + size], options)
    n = sum(len(f) for f in frames)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    print(f"{name:28s} {n:5d} records  wall {wall:6.1f} s  cpu {cpu:6.1f} s  "
          f"{n / cpu:6.1f} records/cpu-s", flush=True)  # fmt: skip
    return start


if __name__ == "__main__":
    main()
