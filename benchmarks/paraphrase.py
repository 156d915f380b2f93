"""Gemma paraphraser benchmark: label preservation, novelty, diversity, and what paraphrases of
rare codes do to the classifier's top-1 on the real-world O*NET dev titles.

    AUTOCODER_HOME=WS autocoder taxonomy import onet ../shared/data/onet_29.2
    AUTOCODER_HOME=WS autocoder paraphraser train --output WS/models/paraphraser
    .venv/bin/python benchmarks/paraphrase.py --home WS --paraphraser WS/models/paraphraser \\
        --major 29 31 --min-per-code 15 --per-record 3 --output /tmp/para-bench

1. The workspace's O*NET taxonomy is cut to the chosen SOC major groups (to keep the CPU run
   short) and saved as ``onet-bench``; the classifier recipe removes the dev titles from it.
2. Rare codes: fewer than ``--min-per-code`` titles left after the dev holdout.
3. Baseline classifier: ``training/classifier.toml`` without embedder fine-tuning.
4. Up to ``--max-titles-per-code`` titles and the first task of each rare code are
   paraphrased K times (raw).
   Label preservation = share of raw paraphrases the baseline codes to the gold code, next to
   the same share for the originals; novel = not a copy of the input or of a taxonomy text;
   distinct-2 = distinct word bigrams / all bigrams of the raw paraphrases.
5. The filtered paraphrases (copies dropped, the baseline still codes them to the gold code)
   top up the rare codes (``data.paraphrases``, ``data.paraphrase_min_per_code``) and the
   classifier is retrained; ``--synthetic FILE`` (``autocoder synth`` output) adds the same
   comparison for the LLM generator. Top-1 on dev titles: overall and on rare codes.

``--temperature``/``--top-p`` override the paraphraser recipe's sampling; ``--baseline`` and
``--raw`` reuse an earlier run's baseline classifier and raw paraphrases.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

from autocoder.augment.paraphrase import Paraphraser, _Item, filter_candidates, paraphrase_table
from autocoder.augment.synth import existing_data, taxonomy_titles
from autocoder.classify.model import load_model
from autocoder.classify.recipe import train_from_recipe
from autocoder.devsplit import apply_holdout, holdout_titles, make_dev_split
from autocoder.records import JobRecord, normalize_text
from autocoder.taxonomy.model import Taxonomy
from autocoder.taxonomy.onet import read_alternate_titles
from autocoder.taxonomy.store import load_taxonomy, save_taxonomy
from autocoder.workspace import Workspace

BENCH_TAXONOMY = "onet-bench"


def subset_taxonomy(tax: Taxonomy, majors: list[str]) -> Taxonomy:
    leaves = [c for c in tax.leaves() if not majors or c.code[:2] in majors]
    keep = {a.code: a for leaf in leaves for a in tax.ancestors(leaf.code)}
    return Taxonomy(
        BENCH_TAXONOMY,
        tax.version,
        tax.levels,
        list(keep.values()),
        source=tax.source,
        leaf_level=tax.leaf_level,
        holdout=tax.holdout,
    )


def dev_rows(tax: Taxonomy) -> pd.DataFrame:
    """The classifier recipe's default dev split, restricted to the subset's codes."""
    dev = make_dev_split(read_alternate_titles(tax.source), fraction=0.2, seed=13)
    codes = set(tax.leaf_codes())
    dev["codes"] = dev["codes"].map(lambda c: ";".join(x for x in c.split(";") if x in codes))
    return dev[dev["codes"] != ""].reset_index(drop=True)


def top1(model_dir: Path, dev: pd.DataFrame, rare: set[str]) -> dict[str, float]:
    pred = load_model(model_dir).predict([JobRecord(t) for t in dev["title"]])
    gold = [c.split(";") for c in dev["codes"]]
    hit = np.array([p in g for p, g in zip(pred, gold, strict=True)])
    is_rare = np.array([bool(rare & set(g)) for g in gold])
    return {
        "top1": round(float(hit.mean()), 4),
        "top1_rare": round(float(hit[is_rare].mean()), 4),
        "dev_titles": int(len(dev)),
        "dev_titles_rare": int(is_rare.sum()),
    }


def train(ws: Workspace, out: Path, **overrides: object) -> Path:
    base = {"data.taxonomy": BENCH_TAXONOMY, "finetune.enabled": False}
    return train_from_recipe(None, out, workspace=ws, overrides=base | overrides)


def rare_records(
    held: Taxonomy, min_per_code: int, max_titles: int
) -> tuple[pd.DataFrame, set[str]]:
    rare = {
        c.code
        for c in held.leaves()
        if len({normalize_text(t, keep_punctuation=False) for t in taxonomy_titles(held, c.code)})
        < min_per_code
    }
    rows = []
    for code in sorted(rare):
        node = held.get(code)
        titles = list(dict.fromkeys(taxonomy_titles(held, code)))[:max_titles]
        for i, title in enumerate(titles):
            rows.append({"id": f"{code}#t{i}", "title": title, "duties": "", "code": code})
        if node.tasks:
            rows.append({"id": f"{code}#d0", "title": "", "duties": node.tasks[0], "code": code})
    return pd.DataFrame(rows), rare


def distinct_2(texts: list[str]) -> float:
    grams = [
        tuple(w[i : i + 2]) for t in texts for w in [t.lower().split()] for i in range(len(w) - 1)
    ]
    return len(set(grams)) / max(len(grams), 1)


def quality(raw: pd.DataFrame, records: pd.DataFrame, held: Taxonomy, base: Path) -> dict:
    """Label preservation (raw vs originals), share novel and distinct-2 of raw paraphrases."""
    model = load_model(base)

    def as_record(kind: str, text: str) -> JobRecord:
        return JobRecord(text) if kind == "title" else JobRecord("", text)

    pred = model.predict(
        [as_record(k, t) for k, t in zip(raw["kind"], raw["paraphrase"], strict=True)]
    )
    orig = model.predict(
        [JobRecord(t, d) for t, d in zip(records["title"], records["duties"], strict=True)]
    )
    known = existing_data(held, None)
    novel = [
        normalize_text(p, keep_punctuation=False) != normalize_text(s, keep_punctuation=False)
        and normalize_text(p, keep_punctuation=False)
        not in (known.titles if k == "title" else known.duties)
        for p, s, k in zip(raw["paraphrase"], raw["source_text"], raw["kind"], strict=True)
    ]
    return {
        "raw_paraphrases": int(len(raw)),
        "label_preserved_raw": round(float(np.mean(pred == raw["code"].to_numpy())), 4),
        "label_preserved_originals": round(float(np.mean(orig == records["code"].to_numpy())), 4),
        "share_novel": round(float(np.mean(novel)), 4),
        "distinct_2": round(distinct_2(list(raw["paraphrase"])), 4),
    }


def filtered(raw: pd.DataFrame, held: Taxonomy, base: Path) -> pd.DataFrame:
    items = [(_Item(r.id, r.code, r.kind, r.source_text), r.paraphrase) for r in raw.itertuples()]
    kept, _ = filter_candidates(items, existing_data(held, None), load_model(base))
    keys = {(it.id, it.kind, text) for it, text in kept}
    mask = [(r.id, r.kind, r.paraphrase) in keys for r in raw.itertuples()]
    return raw[mask].drop_duplicates(["code", "kind", "paraphrase"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--home", required=True, help="Workspace with onet imported from a release.")
    ap.add_argument("--paraphraser", required=True, help="`autocoder paraphraser train` output.")
    ap.add_argument(
        "--major", nargs="*", default=["29", "31"], help="SOC major groups; none = all."
    )
    ap.add_argument("--min-per-code", type=int, default=15, help="Rare: fewer titles than this.")
    ap.add_argument("--max-titles-per-code", type=int, default=6, help="Titles paraphrased.")
    ap.add_argument(
        "--top-up",
        type=int,
        default=0,
        help="data.paraphrase_min_per_code (rows incl. tasks); 0 = add all.",
    )
    ap.add_argument("--per-record", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument(
        "--temperature",
        type=float,
        default=None,
        help="Sampling temperature (default: the paraphraser recipe's).",
    )
    ap.add_argument("--top-p", type=float, default=None, help="Nucleus (default: the recipe's).")
    ap.add_argument("--synthetic", default=None, help="`autocoder synth` output to compare.")
    ap.add_argument(
        "--baseline",
        default=None,
        help="An already trained baseline (this script's clf-none) to reuse.",
    )
    ap.add_argument(
        "--raw",
        default=None,
        help="paraphrases-raw.csv of an earlier run (same records): no generation.",
    )
    ap.add_argument("--output", required=True)
    args = ap.parse_args()
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    ws = Workspace.resolve(args.home)
    sub = subset_taxonomy(load_taxonomy(ws, "onet"), args.major)
    save_taxonomy(ws, sub)
    dev = dev_rows(sub)
    held = load_taxonomy(ws, BENCH_TAXONOMY)
    apply_holdout(held, holdout_titles(make_dev_split(read_alternate_titles(sub.source))))
    records, rare = rare_records(held, args.min_per_code, args.max_titles_per_code)
    t0 = time.monotonic()
    base = Path(args.baseline) if args.baseline else train(ws, out / "clf-none")
    para = Paraphraser.load(args.paraphraser, ws.models, threads=args.threads)
    sampling = {
        k: v for k, v in (("temperature", args.temperature), ("top_p", args.top_p)) if v is not None
    }
    para.generation = para.generation.model_copy(update=sampling)
    t1 = time.monotonic()
    if args.raw:
        raw = pd.read_csv(args.raw, dtype=str, keep_default_na=False)
    else:
        raw, _ = paraphrase_table(records, para, per_record=args.per_record, filter_outputs=False)
    gen_s = time.monotonic() - t1
    raw.to_csv(out / "paraphrases-raw.csv", index=False)
    keep = filtered(raw, held, base)
    keep.to_csv(out / "paraphrases.csv", index=False)
    aug = {
        "data.paraphrases": [str(out / "paraphrases.csv")],
        "data.paraphrase_min_per_code": args.top_up,
    }
    result = {
        "codes": len(sub.leaf_codes()),
        "rare_codes": len(rare),
        "records": len(records),
        "paraphraser": para.meta.get("name"),
        "heldout_loss": para.meta.get("heldout_loss"),
        "temperature": para.generation.temperature,
        "top_p": para.generation.top_p,
        "per_record": args.per_record,
        "raw_from": args.raw,
        "generation_seconds": round(gen_s, 1),
        **quality(raw, records, held, base),
        "filtered_paraphrases": int(len(keep)),
        "none": top1(base, dev, rare),
        "paraphrases": top1(train(ws, out / "clf-para", **aug), dev, rare),
    }
    if args.synthetic:
        result["synthetic"] = top1(
            train(ws, out / "clf-synth", **{"data.synthetic": [args.synthetic]}), dev, rare
        )
    result["seconds"] = round(time.monotonic() - t0, 1)
    (out / "results.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
