"""Skill-extraction speed: sentences/s (and CPU-seconds per sentence) of the default fast path
next to the raw encoder's texts/s on the same distinct texts (sentences + candidate spans).

    AUTOCODER_HOME=/tmp/skills_ws .venv/bin/autocoder taxonomy import esco ../shared/data/esco_v1.1.1
    AUTOCODER_HOME=/tmp/skills_ws .venv/bin/python benchmarks/skills_speed.py \
        --data ../shared/data --sentences 400 --threads 1

Sentences: SkillSpan dev posting sentences (real postings), the first ``--sentences``. Label
vectors come from the workspace cache (computed on the first run, not timed). CPU-seconds
(``time.process_time``) do not depend on what else runs on the machine; wall figures do.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any


def posting_sentences(data: Path, n: int) -> list[str]:
    path = data / "skillspan" / "json" / "dev.json"
    out: list[str] = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            sentence = " ".join(json.loads(line)["tokens"]).strip()
            if sentence:
                out.append(sentence)
            if len(out) >= n:
                break
    return out


def timed(fn: Any) -> tuple[Any, float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data"
    )
    parser.add_argument("--sentences", type=int, default=400)
    parser.add_argument("--batch", type=int, default=256, help="Sentences per rank call.")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (0 = default).")
    parser.add_argument("--label-keys", choices=["preferred", "all"], default="preferred")
    parser.add_argument("--max-ngram", type=int, default=None, help="Longest span (tokens).")
    parser.add_argument("--matcher", action="store_true", help="The trained matcher, not plain.")
    parser.add_argument("--check", type=int, default=50, help="Sentences also run exhaustively.")
    args = parser.parse_args()
    for key in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        os.environ.setdefault(key, "1")
    import torch

    from autocoder.embed import Embedder
    from autocoder.skills.data import SkillCatalog
    from autocoder.skills.extract import SkillExtractor
    from autocoder.skills.service import MATCHER_SETTINGS, esco_taxonomy, matcher_embedder
    from autocoder.skills.text import candidate_spans
    from autocoder.workspace import Workspace

    if args.threads:
        torch.set_num_threads(args.threads)
    ws = Workspace.resolve()
    catalog = SkillCatalog.from_taxonomy(esco_taxonomy(ws))
    embedder, ident = matcher_embedder(ws, catalog, plain=not args.matcher)
    options = {"label_keys": args.label_keys, "cache_dir": ws.embedding_cache}
    if args.matcher:  # the settings `skills extract` uses with the matcher
        options |= MATCHER_SETTINGS
    if args.max_ngram:
        options["max_ngram"] = args.max_ngram
    extractor = SkillExtractor(embedder, **options).fit(catalog, show_progress=True)
    sentences = posting_sentences(args.data, args.sentences)
    spans = (sp for s in sentences for sp in candidate_spans(s, max_n=extractor.max_ngram))
    texts = list(dict.fromkeys([*sentences, *spans]))
    extractor.rank_sentences(sentences[:8])  # loads the model (not timed)
    raw = Embedder()
    raw.encode(texts[:8])
    _, raw_wall, raw_cpu = timed(lambda: raw.encode(texts))

    def extract() -> list[Any]:
        out: list[Any] = []
        for start in range(0, len(sentences), args.batch):
            out += extractor.rank_sentences(sentences[start : start + args.batch])
        return out

    fast, wall, cpu = timed(extract)
    n = len(sentences)
    report = {
        "extractor": ident,
        "label_keys": args.label_keys,
        "max_ngram": extractor.max_ngram,
        "span_weight": extractor.span_weight,
        "use_jaccard": extractor.use_jaccard,
        "label_vectors": int(extractor.label_vectors_.shape[0]),
        "threads": torch.get_num_threads(),
        "sentences": n,
        "distinct_texts": len(texts),
        "encoder_texts_per_s": round(len(texts) / raw_wall, 1),
        "encoder_cpu_ms_per_text": round(1000 * raw_cpu / len(texts), 3),
        "encoder_only_sentences_per_s": round(n / raw_wall, 1),
        "extraction_sentences_per_s": round(n / wall, 1),
        "extraction_cpu_ms_per_sentence": round(1000 * cpu / n, 2),
        "extraction_sentences_per_cpu_s": round(n / cpu, 1),
    }
    if args.check:
        check = sentences[: args.check]
        slow = SkillExtractor(embedder, exhaustive=True, **options).fit(catalog)
        (exact, slow_wall, slow_cpu) = timed(lambda: slow.rank_sentences(check))
        same = [[h.uri for h in r] for r in exact] == [
            [h.uri for h in r] for r in fast[: len(check)]
        ]
        report["exhaustive_sentences_per_s"] = round(len(check) / slow_wall, 1)
        report["exhaustive_cpu_ms_per_sentence"] = round(1000 * slow_cpu / len(check), 2)
        report["fast_equals_exhaustive"] = same
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
