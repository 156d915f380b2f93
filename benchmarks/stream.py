"""The review loop on a stream where titles recur: what each round of ``per_answer`` answers buys.

Stream: ``--distinct`` real vacancy titles (JobBERT validation, mapped to O*NET-SOC through the
official ESCO-O*NET crosswalk: ``autocoder.evaluate.realdev.jobbert_onet``), drawn ``--records``
times with Zipf weights (rank ** -``--exponent``, ranks in a seeded random order), so a few
titles are frequent and most are rare; gold = each title's crosswalk codes, and the simulated
reviewer answers with the first of them.

Workspace: a scratch ``--home`` with the offline O*NET starter taxonomy
(``autocoder taxonomy starter onet``), an index of the occupation titles only
(``index.kinds=["title"]``, small and fast; the default index has every code text) and the
packaged model (``--model pretrained``) mixed with retrieval, default coder settings. A real
Label Studio is started in the workspace (``autocoder.review.server``, the Python of
``--labelstudio-python``).

Each round: ``autocoder code`` the stream; ``review push`` it with ``--strategy per_answer
--limit --batch`` (distinct uncertain titles, each once, the most records settled first);
``review simulate`` answers from gold through the Label Studio API; ``review pull`` brings the
answers back and adds them to the examples store (source ``review:stream``). The last coding
runs after the last pull. Per coding: share of records ``coded``, precision of ``coded`` (the
assigned code among the gold codes), share coded correctly, and for the answered titles'
recurrences (stream records with an answered title, other than the answered record itself):
how many, the share whose best code is the answer, the share ``coded`` with the answer.

Run from the repository root (2-4 minutes on 2 shared cores, half a minute of it the Label
Studio start; ``--home`` must be a fresh folder)::

    HF_HUB_OFFLINE=1 nice -n 5 .venv/bin/python benchmarks/stream.py \\
        --home $BENCH/stream-home --out $BENCH/stream --plot docs/stream_learning.png
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from autocoder.records import normalize_text

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("AUTOCODER_DATA") or REPO.parent / "shared" / "data")
PROJECT = "stream"


def text_key(title: str) -> str:
    """The normalised text ``per_answer`` and the examples store group records by."""
    return normalize_text(title, keep_punctuation=False)


def zipf_stream(
    titles: pd.DataFrame, *, distinct: int, records: int, exponent: float, seed: int
) -> pd.DataFrame:
    """``records`` rows (``id, title, codes``) drawn from ``distinct`` titles with Zipf weights."""
    rng = np.random.default_rng(seed)
    titles = titles.assign(key=titles["title"].map(text_key)).drop_duplicates("key")
    pick = titles.iloc[rng.permutation(len(titles))[:distinct]].reset_index(drop=True)
    weights = np.arange(1, len(pick) + 1, dtype=np.float64) ** -exponent
    draws = rng.choice(len(pick), size=records, p=weights / weights.sum())
    out = pick.iloc[draws][["title", "codes", "key"]].reset_index(drop=True)
    out.insert(0, "id", [f"s{i:05d}" for i in range(1, len(out) + 1)])
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def measure(coded: pd.DataFrame, stream: pd.DataFrame, answers: dict[str, str],
            answered_ids: set[str]) -> dict[str, Any]:  # fmt: skip
    """The figures of one coding of the stream (``answers``: text key -> answered code)."""
    df = stream.merge(coded[["id", "status", "code_1", "assigned_code"]], on="id", how="left")
    gold = df["codes"].str.split(";").map(set)
    is_coded = (df["status"] == "coded").to_numpy()
    right = np.asarray([a in g for a, g in zip(df["assigned_code"].fillna(""), gold, strict=True)])
    n = len(df)
    out: dict[str, Any] = {
        "records": n,
        "coded": float(is_coded.mean()),
        "partial": float((df["status"] == "partial").mean()),
        "review": float((df["status"] == "review").mean()),
        "precision_coded": float(right[is_coded].mean()) if is_coded.any() else None,
        "coded_correctly": float((right & is_coded).mean()),
        "top1": float(np.mean([c in g for c, g in zip(df["code_1"].fillna(""), gold, strict=True)])),
    }  # fmt: skip
    answer = df["key"].map(answers)
    recur = (answer.notna() & ~df["id"].isin(answered_ids)).to_numpy()
    as_answered = (df["code_1"] == answer).to_numpy()
    out["answered_titles"] = len(answers)
    out["recurrences"] = int(recur.sum())
    out["recurrences_share_of_stream"] = float(recur.mean())
    out["recurrences_as_answered"] = float(as_answered[recur].mean()) if recur.any() else None
    out["recurrences_coded"] = float(is_coded[recur].mean()) if recur.any() else None
    out["recurrences_coded_as_answered"] = (
        float((is_coded & as_answered)[recur].mean()) if recur.any() else None
    )
    missed = df[recur & ~as_answered].groupby("title").size().sort_values(ascending=False)
    out["answered_titles_not_as_answered"] = int(len(missed))
    out["not_as_answered_top"] = {str(t): int(n) for t, n in missed.head(5).items()}
    return out


def plot(rows: list[dict[str, Any]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = [r["answers"] for r in rows]

    def series(key: str) -> list[float]:
        return [100 * r[key] if r[key] is not None else np.nan for r in rows]

    fig, ax = plt.subplots(figsize=(8, 5))
    ax.plot(x, series("coded"), "-o", label="records coded")
    ax.plot(x, series("precision_coded"), "-s", label="precision of coded")
    ax.plot(x, series("coded_correctly"), "-^", label="records coded correctly")
    ax.plot(x, series("recurrences_as_answered"), "--d",
            label="answered titles' recurrences: best code = answer")  # fmt: skip
    ax.plot(x, series("recurrences_coded"), ":v",
            label="answered titles' recurrences: coded")  # fmt: skip
    ax.set_xlabel("answers so far (per_answer push, simulated reviewer, pulled)")
    ax.set_ylabel("% (of the stream; precision: of coded; recurrences: of them)")
    ax.set_ylim(0, 100)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def pct(v: float | None) -> str:
    return "–" if v is None else f"{v:.1%}"


def summary_markdown(result: dict[str, Any]) -> str:
    s = result["stream"]
    lines = [
        f"Stream: {s['records']:,} records, {s['distinct_in_stream']} distinct titles "
        f"(Zipf {s['exponent']} over {s['distinct']} JobBERT titles mapped to O*NET, seed "
        f"{s['seed']}; the most frequent title is {s['top_share']:.1%} of the records). "
        f"Coder: packaged model + retrieval on the offline O*NET starter, index of occupation "
        f"titles only, default settings ({result['decision']}). Review: `per_answer`, "
        f"{result['batch']} answers a round, real Label Studio, simulated from gold.",
        "",
        "| round | answers so far | records settled per answer (push) | coded | precision of "
        "coded | coded correctly | answered titles' recurrences | best code = answer | coded |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["rounds"]:
        settled = f"{r['settled_per_answer']:.1f}" if r.get("settled_per_answer") else "–"
        lines.append(
            f"| {r['round']} | {r['answers']} | {settled} | {pct(r['coded'])} | "
            f"{pct(r['precision_coded'])} | {pct(r['coded_correctly'])} | "
            f"{r['recurrences']:,} ({pct(r['recurrences_share_of_stream'])}) | "
            f"{pct(r['recurrences_as_answered'])} | {pct(r['recurrences_coded'])} |"
        )
    lines += [
        "",
        "Records settled per answer: the push's own figure for the answers of the round that "
        "follows (stream records sharing the pushed title's text).",
    ]
    last = result["rounds"][-1]
    if last.get("answered_titles_not_as_answered"):
        top = ", ".join(f"{t!r} ({n})" for t, n in last["not_as_answered_top"].items())
        lines += [
            "",
            f"After the last round {last['answered_titles_not_as_answered']} of "
            f"{last['answered_titles']} answered titles do not come back with the answer as "
            f"best code; the most frequent (recurrences): {top}.",
        ]
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from autocoder import api
    from autocoder.config import load_settings
    from autocoder.evaluate import realdev
    from autocoder.io import read_table
    from autocoder.review import queue, server
    from autocoder.review.pull import pull
    from autocoder.review.push import push
    from autocoder.review.simulate import simulate
    from autocoder.taxonomy.starter import build_onet_starter
    from autocoder.taxonomy.store import list_taxonomies
    from autocoder.workspace import Workspace

    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    home = Path(args.home)
    if home.exists() and any(home.iterdir()) and not args.reuse_home:
        raise SystemExit(f"{home} is not empty: give a fresh --home (or --reuse-home)")
    ws = Workspace.resolve(home)
    settings = load_settings(
        overrides=[
            f"workspace.home={str(ws.root)!r}",
            'index.kinds=["title"]',
            f"review.port={args.port or free_port()}",
            f"review.server_python={str(args.labelstudio_python)!r}",
            "review.start_timeout=600",
            "review.timeout=60",
            "review.show_skills=false",
        ]
    )
    timings: dict[str, float] = {}

    t0 = time.perf_counter()
    data = Path(args.data)
    titles = realdev.jobbert_onet(
        data / "jobbert_validation" / "titles.csv",
        data / "esco_onet_crosswalk" / "crosswalk_esco_onet.csv",
    )
    stream = zipf_stream(titles, distinct=args.distinct, records=args.records,
                         exponent=args.exponent, seed=args.seed)  # fmt: skip
    stream_csv, gold_csv = out / "stream.csv", out / "gold.csv"
    stream[["id", "title"]].to_csv(stream_csv, index=False)
    stream[["id", "codes"]].to_csv(gold_csv, index=False)
    counts = stream["key"].value_counts()
    timings["data"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    if "onet" not in list_taxonomies(ws):
        api.import_taxonomy("onet", build_onet_starter(ws.downloads / "onet-starter"), ws)
    settings.taxonomy.default = "onet"
    _, n_docs = api.build_index(settings, ws, "onet", show_progress=False)
    timings["setup"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    server.start_server(ws, settings.review)
    timings["labelstudio_start"] = time.perf_counter() - t0

    answers: dict[str, str] = {}  # text key -> answered code
    answered_ids: set[str] = set()
    rounds: list[dict[str, Any]] = []
    decision = ""
    try:
        for rnd in range(args.rounds + 1):
            t0 = time.perf_counter()
            coded_csv = out / f"coded-{rnd}.csv"
            summary = api.code(settings, ws, stream_csv, coded_csv, taxonomy_name="onet",
                               model_dir="pretrained", show_progress=False)  # fmt: skip
            how = api.outcome(summary)
            decision = (
                f"target precision {how['target_precision']}" if how["target_precision"]
                else f"threshold {how['threshold']}"
            )  # fmt: skip
            coded = read_table(coded_csv, string_columns=("id", "code_1", "assigned_code"))
            row = {"round": rnd, "answers": len(answered_ids),
                   **measure(coded, stream, answers, answered_ids)}  # fmt: skip
            row["code_seconds"] = round(time.perf_counter() - t0, 1)
            if rnd < args.rounds:
                t0 = time.perf_counter()
                pushed = push(settings, ws, stream_csv, project=PROJECT, model_dir="pretrained",
                              strategy="per_answer", limit=args.batch, seed=args.seed)  # fmt: skip
                sim = simulate(settings, ws, project=PROJECT, gold_path=gold_csv)
                pulled = pull(settings, ws, project=PROJECT)
                row.update(
                    pushed=pushed.queued, settles=pushed.settles,
                    settled_per_answer=pushed.settled_per_answer, simulated=sim.answered,
                    by_suggestion=sim.by_suggestion, by_hierarchy=sim.by_hierarchy,
                    unknown_code=sim.unknown_code, pulled_new=pulled.new,
                    examples=pulled.examples, review_seconds=round(time.perf_counter() - t0, 1),
                )  # fmt: skip
                feedback = queue.load_feedback(ws, PROJECT)
                by_id = stream.set_index("id")["key"]
                for rid, code in zip(feedback["id"], feedback["code"], strict=True):
                    if isinstance(code, str) and code:
                        answers[by_id[rid]] = code
                        answered_ids.add(str(rid))
            rounds.append(row)
            print(json.dumps(row), flush=True)
    finally:
        server.stop_server(ws)

    result: dict[str, Any] = {
        "stream": {
            "records": len(stream), "distinct": args.distinct,
            "distinct_in_stream": int(stream["key"].nunique()), "exponent": args.exponent,
            "seed": args.seed, "top_share": float(counts.iloc[0] / len(stream)),
            "singletons": int((counts == 1).sum()),
        },
        "index_documents": n_docs, "index_kinds": ["title"], "model": "pretrained",
        "strategy": "per_answer", "batch": args.batch, "decision": decision,
        "review": "real Label Studio (review push / simulate / pull)",
        "rounds": rounds,
        "timings": {k: round(v, 1) for k, v in timings.items()},
    }  # fmt: skip
    result["seconds"] = round(time.perf_counter() - started, 1)
    (out / "stream.json").write_text(json.dumps(result, indent=2))
    (out / "stream.md").write_text(summary_markdown(result))
    plot_path = Path(args.plot) if args.plot else out / "stream_learning.png"
    plot(rounds, plot_path, f"Review loop on a Zipf stream ({len(stream):,} records, "
         f"{result['stream']['distinct_in_stream']} distinct real titles; per_answer, "
         f"{args.batch} answers a round)")  # fmt: skip
    result["plot"] = str(plot_path)
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--home", default="/tmp/ac-stream-home", help="scratch workspace (fresh)")
    p.add_argument("--out", default="/tmp/ac-stream-report")
    p.add_argument("--data", default=str(DATA), help="the shared data folder")
    p.add_argument("--plot", default=None, help="PNG path (default: in --out)")
    p.add_argument("--distinct", type=int, default=600)
    p.add_argument("--records", type=int, default=5000)
    p.add_argument("--exponent", type=float, default=1.1)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--batch", type=int, default=50, help="answers per round")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--port", type=int, default=0, help="Label Studio port (0: a free one)")
    p.add_argument(
        "--labelstudio-python",
        default=os.environ.get("AUTOCODER_LABELSTUDIO_PYTHON")
        or str(REPO / ".venv-labelstudio" / "bin" / "python"),
    )
    p.add_argument("--reuse-home", action="store_true", help="allow a non-empty --home")
    result = run(p.parse_args())
    print(summary_markdown(result))
    print(f"total {result['seconds']} s; report in {p.parse_args().out}; plot {result['plot']}")


if __name__ == "__main__":
    main()
