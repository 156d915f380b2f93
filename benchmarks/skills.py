"""Skills benchmark: RP@5/@10 on the TECH and HOUSE validation sets (plain MiniLM vs the trained
matcher, with ablations), the link-prediction F1 table and an example career path.

    AUTOCODER_HOME=/tmp/skills_ws .venv/bin/autocoder taxonomy import esco ../shared/data/esco_v1.1.1
    AUTOCODER_HOME=/tmp/skills_ws nice -n 5 .venv/bin/python benchmarks/skills.py \
        --data ../shared/data --out bench-skills.json

The matcher is trained on first use (``training/skill_matcher.toml``), the validation sentences
are excluded from its training pairs. Everything runs offline on CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

VARIANTS = {
    "sentence only": {"use_spans": False, "use_jaccard": False},
    "sentence + spans": {"use_jaccard": False},
    "sentence + spans + Jaccard (default)": {},
}


def extraction(ws: Any, data: Path, *, ablations: bool) -> dict[str, Any]:
    from autocoder.skills.data import SkillCatalog, read_annotations
    from autocoder.skills.extract import SkillExtractor, evaluate_extractor
    from autocoder.skills.service import esco_taxonomy, matcher_embedder

    folder = data / "skill_extraction"
    sets = {
        name: read_annotations(folder / f"{name}_validation_annotations.csv")
        for name in ("tech", "house")
    }
    catalog = SkillCatalog.from_taxonomy(esco_taxonomy(ws))
    out: dict[str, Any] = {}
    for model_name, plain in (("plain MiniLM", True), ("trained matcher", False)):
        embedder, ident = matcher_embedder(ws, catalog, plain=plain, data_dir=data)
        variants = VARIANTS if ablations else {k: v for k, v in VARIANTS.items() if not v}
        for variant, kwargs in variants.items():
            started = time.perf_counter()
            extractor = SkillExtractor(embedder, **kwargs).fit(catalog)
            scores = {name: evaluate_extractor(extractor, gold) for name, gold in sets.items()}
            key = f"{model_name} | {variant}"
            out[key] = {"model": ident, **scores, "seconds": round(time.perf_counter() - started)}
            print(
                f"{key:60s} "
                + "  ".join(
                    f"{n.upper()} RP@5 {s['rp@5']:.3f} RP@10 {s['rp@10']:.3f}"
                    for n, s in scores.items()
                ),
                flush=True,
            )
    return out


def graph_part(ws: Any, path_from: str, path_to: str) -> dict[str, Any]:
    from autocoder.skills.graph import build_graph, career_path, link_prediction
    from autocoder.skills.service import esco_taxonomy

    tax = esco_taxonomy(ws)
    started = time.perf_counter()
    f1 = link_prediction(build_graph(tax))
    print("\nlink prediction F1 (test edges, 55/15/30 split) by negative:positive ratio")
    print(f"{'method':26s}" + "".join(f"{r:>7s}" for r in f1["node2vec"]))
    for method, row in f1.items():
        print(f"{method:26s}" + "".join(f"{v:7.3f}" for v in row.values()))
    steps = career_path(tax, path_from, path_to)
    print(f"\ncareer path {path_from} -> {path_to}")
    for i, step in enumerate(steps):
        gain = "; ".join(step.gain[:6]) + (" …" if len(step.gain) > 6 else "")
        print(
            f"  {i}. {step.code} {step.title} (distance {step.distance:.3f})"
            + (f" gain: {gain}" if gain else "")
        )
    return {
        "linkpred_f1": f1,
        "career_path": [step.__dict__ for step in steps],
        "seconds": round(time.perf_counter() - started),
    }


def main() -> None:
    from autocoder.workspace import Workspace

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data"
    )
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--no-ablations", action="store_true")
    parser.add_argument("--skip-graph", action="store_true")
    parser.add_argument("--path-from", default="kitchen porter")
    parser.add_argument("--path-to", default="cook")
    args = parser.parse_args()
    for key in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
        os.environ.setdefault(key, "1")
    ws = Workspace.resolve()
    result = {"extraction": extraction(ws, args.data, ablations=not args.no_ablations)}
    if not args.skip_graph:
        result["graph"] = graph_part(ws, args.path_from, args.path_to)
    if args.out:
        args.out.write_text(json.dumps(result, indent=2, default=str))


if __name__ == "__main__":
    main()
