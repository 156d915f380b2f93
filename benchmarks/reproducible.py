"""Same input + same settings = same bytes (issue 23, item 4).

    nice -n 5 .venv/bin/python benchmarks/reproducible.py --runs 10 --records 2000
        [--model pretrained] [--home DIR] [--set index.kinds='["title"]']

Sets up a fresh workspace (the offline O*NET 29.2 starter taxonomy, ``autocoder taxonomy
starter onet`` + ``autocoder index build``), takes the first ``--records`` real job titles of
``../shared/data/tgre_posting_titles`` and runs ``autocoder code`` on them ``--runs`` times, each
in a new process (as a user reruns a job), every run to its own output. Prints each run's
SHA-256 and time and whether all outputs are byte-identical (exit 1 when they are not).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parent.parent
TITLES = REPO.parent / "shared" / "data" / "tgre_posting_titles" / "job_titles_unlabeled.csv"


def _cli(home: Path, overrides: list[str], *args: str, timeout: float = 3600) -> None:
    sets = [x for o in overrides for x in ("--set", o)]
    env = {**os.environ, "AUTOCODER_HOME": str(home), "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "autocoder.cli", *sets, *args]
    subprocess.run(cmd, check=True, env=env, timeout=timeout, stdout=subprocess.DEVNULL)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--records", type=int, default=2000)
    parser.add_argument("--model", default="pretrained")
    parser.add_argument("--home", type=Path, default=None, help="Workspace (default: a new one).")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="autocoder-repro-") as tmp:
        work = Path(tmp)
        home = args.home or work / "home"
        if not (home / "index").is_dir():
            _cli(home, args.overrides, "taxonomy", "starter", "onet")
            _cli(home, args.overrides, "index", "build")
        titles = pd.read_csv(TITLES)["sentence"].astype(str).head(args.records)
        src = work / "records.csv"
        ids = [f"r{i:05d}" for i in range(len(titles))]
        pd.DataFrame({"id": ids, "title": titles}).to_csv(src, index=False)
        digests = []
        for run in range(1, args.runs + 1):
            out = work / f"out{run}.csv"
            start = time.perf_counter()
            _cli(home, args.overrides, "code", str(src), "-o", str(out), "--model", args.model)
            digest = hashlib.sha256(out.read_bytes()).hexdigest()
            digests.append(digest)
            print(f"run {run:2d}  sha256 {digest[:16]}  {time.perf_counter() - start:6.1f} s")
        same = len(set(digests)) == 1
        print(
            f"{args.runs} runs of {len(titles)} records, model {args.model}: "
            f"{'identical bytes' if same else f'{len(set(digests))} different outputs'}"
        )
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
