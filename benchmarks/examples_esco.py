"""ESCO with coded history (issue 18 item 5): the JobBERT validation titles as coded examples.

A seeded 25 % of the JobBERT validation rows is the dev split; the other 75 % are an office's
coded history, added to the ESCO examples store with `examples add` (the plain function).
The vote settings (neighbours k, vote temperature, exact-title weight, mixture weight, exact
trust) and the blend temperature are chosen as a user's `autocoder examples fit --model
retrieval` chooses them: on examples held out of the store (2,000 of the history, scored against
the other history titles), never on dev. Dev is then coded by retrieval over the ESCO
code texts (Chroma) blended with the examples' votes (their own Chroma collection) and scored:
top-1 / top-5 / ECE, overall and on the dev titles whose normalised title is not in the history.
The O*NET side maps gold and predicted ESCO codes to O*NET-SOC through the official crosswalk.

    HF_HUB_OFFLINE=1 PYTHONPATH=. .venv/bin/python benchmarks/examples_esco.py --home /tmp/ac-ex-esco
    # a seeded sample of the rows (less history: a lower bound on the full figure)
    ... benchmarks/examples_esco.py --home /tmp/ac-ex-esco --sample 6000
    # + the coded history as training: the recipe training/esco-history.toml (embedder
    # fine-tuned on the history, classifier on labels + history, mixed with retrieval), then the
    # index, the examples' votes and the model all on that embedder; each coder gets its own
    # `examples fit` (or --vote '{"neighbours": 40, ...}' to vote with given settings)
    ... benchmarks/examples_esco.py --home /tmp/ac-ex-esco --train
    # the same with the embedder fine-tuned as a classifier (training/esco-history-codes.toml)
    ... benchmarks/examples_esco.py --home /tmp/ac-ex-esco --train --recipe esco-history-codes
    # coding with the fine-tuned classifier's own head (training/esco-history-head.toml)
    ... benchmarks/examples_esco.py --home /tmp/ac-ex-esco --train --recipe esco-history-head
    # retrieval with soft voting over the code texts
    ... benchmarks/examples_esco.py --set 'index.aggregation="softmax_sum"' --set index.temperature=0.08
    # a learning curve in the size of the coded history: a seeded half of it, dev unchanged
    ... benchmarks/examples_esco.py --home /tmp/ac-ex-esco-half --train --recipe esco-history-head \
        --history-share 0.5
    # + retrieval calibrated on half of dev (`calibrate --model retrieval`), the other half coded
    # with the examples voting at --target-precision 0.95 and 0.9
    ... benchmarks/examples_esco.py --home /tmp/ac-ex-esco --calibrate
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from autocoder import api
from autocoder.classify.recipe import train_from_recipe
from autocoder.coding.examples import WithExamples
from autocoder.coding.loaded import load_coder
from autocoder.config import load_settings
from autocoder.examples.ops import add_file
from autocoder.examples.store import AddSpec, ExampleStore, example_key
from autocoder.metrics import expected_calibration_error
from autocoder.records import as_records
from autocoder.taxonomy.store import load_taxonomy
from autocoder.workspace import Workspace

REPO = Path(__file__).resolve().parent.parent
DATA = REPO.parent / "shared" / "data"


def split(
    titles_csv: Path, tax: Any, seed: int, dev_share: float, sample: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(dev, history): a seeded shuffle of the rows (of ``sample`` of them when > 0)."""
    raw = pd.read_csv(titles_csv, dtype=str, keep_default_na=False)
    raw = raw[raw["conceptUri"].map(tax.has_uri)].reset_index(drop=True)
    if sample:
        raw = raw.sample(n=min(sample, len(raw)), random_state=seed).reset_index(drop=True)
    df = pd.DataFrame(
        {"title": raw["vacancyTitle"], "code": [tax.by_uri(u).code for u in raw["conceptUri"]]}
    )
    order = np.random.default_rng(seed).permutation(len(df))
    n_dev = int(round(dev_share * len(df)))
    dev, history = df.iloc[order[:n_dev]], df.iloc[order[n_dev:]]
    return dev.reset_index(drop=True), history.reset_index(drop=True)


def scores(p: np.ndarray, classes: np.ndarray, gold: list[str]) -> dict[str, float]:
    pos = {c: i for i, c in enumerate(classes)}
    g = np.asarray([pos[c] for c in gold])
    top = np.argpartition(-p, 4, axis=1)[:, :5]  # the five best, in any order
    top = np.take_along_axis(top, np.argsort(-np.take_along_axis(p, top, 1), axis=1), 1)
    hit1 = top[:, 0] == g
    return {
        "top1": round(float(hit1.mean()), 4),
        "top5": round(float((top == g[:, None]).any(axis=1).mean()), 4),
        "ece": round(expected_calibration_error(p.max(axis=1), hit1), 4),
        "n": len(g),
    }


def onet_side(p: np.ndarray, classes: np.ndarray, gold: list[str], tax: Any) -> dict[str, Any]:
    """Top-1 on O*NET-SOC: right when the predicted ESCO code's crosswalked O*NET codes meet
    the gold code's (titles whose gold code has no crosswalk row are left out)."""
    cw = pd.read_csv(DATA / "esco_onet_crosswalk" / "crosswalk_esco_onet.csv", skiprows=16,
                     dtype=str, keep_default_na=False)  # fmt: skip
    onet_of: dict[str, set[str]] = {}
    for uri, soc in zip(cw["ESCO or ISCO URI"], cw["O*NET Id"], strict=True):
        if tax.has_uri(uri):
            onet_of.setdefault(tax.by_uri(uri).code, set()).add(soc)
    top1 = classes[p.argmax(axis=1)]
    kept = [i for i, g in enumerate(gold) if g in onet_of]
    hits = [bool(onet_of.get(top1[i], set()) & onet_of[gold[i]]) for i in kept]
    return {"onet_top1": round(float(np.mean(hits)), 4), "onet_n": len(kept)}


def dev_row(
    p: np.ndarray, classes: np.ndarray, gold: list[str], unseen: np.ndarray, tax: Any,
    seconds: float,
) -> dict[str, Any]:  # fmt: skip
    """One predictor's dev figures: overall, on titles not in the history, on the O*NET side."""
    return {
        **scores(p, classes, gold),
        "unseen_titles": scores(
            p[unseen], classes, [g for g, u in zip(gold, unseen, strict=True) if u]
        ),
        **onet_side(p, classes, gold, tax),
        "seconds": round(seconds, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--home", default="/tmp/ac-ex-esco")
    ap.add_argument("--seed", type=int, default=18)
    ap.add_argument("--dev-share", type=float, default=0.25)
    ap.add_argument("--sample", type=int, default=0, help="Use N JobBERT rows (0 = all).")
    ap.add_argument(
        "--history-share",
        type=float,
        default=1.0,
        help="Keep a seeded share of the history (dev unchanged): a learning curve in history size.",
    )
    ap.add_argument("--kinds", default='["title","alt_title"]', help="ESCO texts indexed.")
    ap.add_argument(
        "--set",
        action="append",
        default=[],
        dest="overrides",
        help="A config override for every coder (e.g. index.aggregation=...).",
    )
    ap.add_argument("--vote", default="", help="Vote settings as JSON (skips the tuning).")
    ap.add_argument("--train", action="store_true", help="Also train esco-history and code dev.")
    ap.add_argument(
        "--recipe", default="esco-history", help="With --train: the recipe (esco-history-codes)."
    )
    ap.add_argument(
        "--calibrate",
        action="store_true",
        help="Also calibrate retrieval on half of dev and code the other half at "
        "target precision 0.95 and 0.9.",
    )
    ap.add_argument(
        "--reuse-model",
        action="store_true",
        help="With --train: keep models/esco-history when it was trained on this store.",
    )
    args = ap.parse_args()
    ws = Workspace.resolve(args.home)
    base_overrides = ['taxonomy.default="esco"', f"index.kinds={args.kinds}", *args.overrides]
    settings = load_settings(overrides=base_overrides)
    api.import_taxonomy("esco", DATA / "esco_v1.1.1", ws)
    tax = load_taxonomy(ws, "esco")
    t0 = time.perf_counter()
    api.build_index(settings, ws, "esco")
    print(f"ESCO code-text index built in {time.perf_counter() - t0:.0f} s")
    dev, history = split(DATA / "jobbert_validation" / "titles.csv", tax, args.seed,
                         args.dev_share, args.sample)  # fmt: skip
    if args.history_share < 1.0:
        keep = np.random.default_rng(args.seed + 1).permutation(len(history))
        history = history.iloc[np.sort(keep[: int(round(args.history_share * len(history)))])]
        history = history.reset_index(drop=True)
    print(f"{len(dev)} dev rows, {len(history)} history rows")
    out = Path(args.home) / "bench"
    out.mkdir(parents=True, exist_ok=True)
    history.to_csv(out / "history.csv", index=False)
    retrieval = api.retrieval_coder(settings, ws, tax)
    classes = retrieval.classes_

    store = ExampleStore.of(ws, "esco")
    store.remove_source("jobbert-history")
    report = add_file(store, tax, out / "history.csv",
                      AddSpec(code_column="code", source="jobbert-history"))  # fmt: skip
    print(f"examples add: {report.added} stored, {len(report.rejected)} rejected, "
          f"{len(report.conflicts)} conflicting titles")  # fmt: skip
    if args.vote:
        vote = [f"examples.{k}={v}" for k, v in json.loads(args.vote).items()]
        settings = load_settings(overrides=[*base_overrides, *vote, "examples.use_fit=false"])
        print("vote settings given:", args.vote)
    else:  # what a user runs: `autocoder examples fit --model retrieval` (held out of the store)
        fitted = api.fit_examples(settings, ws, model="retrieval", taxonomy_name="esco")
        print("examples fit:", json.dumps({k: v for k, v in fitted.items() if k != "path"}))
    coder = load_coder(settings, ws, model="retrieval", taxonomy_name="esco")
    model = coder.predictor
    assert isinstance(model, WithExamples)
    best = {"neighbours": model.voter.neighbours, "temperature": model.voter.temperature,
            "min_similarity": model.voter.min_similarity,
            "exact_weight": model.voter.exact_weight, "weight": model.weight,
            "exact_trust": model.exact_trust, "blend_temperature": model.temperature}  # fmt: skip
    print("coding votes with:", json.dumps(best))
    untempered = WithExamples(retrieval, model.voter, weight=model.weight,
                              exact_trust=model.exact_trust).fit()  # fmt: skip
    records = as_records(dev[["title"]])
    gold = list(dev["code"])
    seen = set(store.table()["key"])
    unseen = np.asarray([example_key(t) not in seen for t in dev["title"]])
    rows = {}
    for name, predictor in (("retrieval", retrieval), ("examples only", model.voter),
                            ("retrieval + examples, no blend temperature", untempered),
                            ("retrieval + examples", model)):  # fmt: skip
        t0 = time.perf_counter()
        p = np.asarray(predictor.predict_proba(records), np.float64)
        rows[name] = dev_row(p, classes, gold, unseen, tax, time.perf_counter() - t0)
        if isinstance(predictor, WithExamples):
            rows[name]["ece_coding"] = coding_ece(predictor, records, p, classes, gold)
        print(f"[{name}] dev:", json.dumps(rows[name]))
    if args.calibrate:
        for with_examples in (False, True):
            name = "target precision" + (", calibrated with examples" if with_examples else "")
            rows[name] = target_precision(settings, ws, tax, dev, unseen, out,
                                          with_examples=with_examples)  # fmt: skip
    if args.train:
        rows.update(trained(args, ws, base_overrides, tax, records, gold, unseen))
    (out / "results.json").write_text(json.dumps({"vote": best, "dev": rows}, indent=2))


def target_precision(
    settings: Any, ws: Workspace, tax: Any, dev: pd.DataFrame, unseen: np.ndarray, out: Path,
    *, with_examples: bool,
) -> dict[str, Any]:  # fmt: skip
    """Retrieval alone calibrated on real titles (`autocoder calibrate --model retrieval
    [--with-examples]`): a seeded half of dev calibrates it (examples off, or voting as when
    coding), the other half is
    coded with the examples voting (`autocoder code --target-precision`); per target the share
    and precision of `coded` and `partial` (right: the gold code's group at the assigned
    level), overall and on titles not in the history."""
    half = np.random.default_rng(7).permutation(len(dev)) < len(dev) // 2
    cal, ev = dev[half], dev[~half].reset_index(drop=True)
    cal.rename(columns={"code": "codes"}).to_csv(out / "calibrate.csv", index=False)
    ev.assign(id=[f"e{i}" for i in range(len(ev))])[["id", "title"]].to_csv(
        out / "eval.csv", index=False
    )
    fitted = api.calibrate(settings, ws, "retrieval", [out / "calibrate.csv"],
                           with_examples=with_examples)  # fmt: skip
    print(
        f"calibrate --model retrieval (with examples: {with_examples}):",
        json.dumps({k: fitted.get(k) for k in ("top1", "examples", "thresholds")}),
    )
    ev_unseen = unseen[~half]
    res: dict[str, Any] = {"calibrated_on": len(cal), "n": len(ev), "top1_cal": fitted["top1"]}
    for target in (0.95, 0.9):
        path = out / f"eval-{target}.csv"
        path.unlink(missing_ok=True)
        api.code(settings, ws, out / "eval.csv", path, model_dir="retrieval",
                 taxonomy_name="esco", target_precision=target, show_progress=False)  # fmt: skip
        coded = pd.read_csv(path, dtype=str, keep_default_na=False)
        right = assigned_right(coded, ev["code"], tax)
        for name, rows in (("all", np.ones(len(ev), bool)), ("unseen titles", ev_unseen)):
            res[f"{target} {name}"] = status_figures(coded["status"].to_numpy()[rows], right[rows])
        print(
            f"[target {target}, calibrated with examples: {with_examples}]",
            json.dumps({k: v for k, v in res.items() if str(target) in k}),
        )
    return res


def assigned_right(coded: pd.DataFrame, gold: pd.Series, tax: Any) -> np.ndarray:
    """Per coded row whether its assigned code is right: the gold code for ``coded``, the gold
    code's group at the assigned level for ``partial`` (``review`` rows: never)."""
    groups = [{c.code for c in tax.ancestors(g)} for g in gold]
    return np.asarray([
        a == g if s == "coded" else a in up
        for a, g, s, up in zip(coded["assigned_code"], gold, coded["status"], groups, strict=True)
    ])  # fmt: skip


def status_figures(status: np.ndarray, right: np.ndarray) -> dict[str, Any]:
    """The share of each status and the precision of ``coded`` and ``partial``."""
    row: dict[str, Any] = {}
    for name in ("coded", "partial", "review"):
        m = status == name
        row[name] = round(float(m.mean()), 4)
        if name != "review":
            row[f"{name}_precision"] = round(float(right[m].mean()), 4) if m.any() else None
    return row


def coding_ece(
    predictor: WithExamples, records: list[Any], p: np.ndarray, classes: np.ndarray,
    gold: list[str],
) -> float:  # fmt: skip
    """The ECE of the confidence `autocoder code` reports without a calibration sidecar: the
    top probability, raised to the exact-title floor where agreeing examples name the top code."""
    from autocoder.coding.trust import exact_floor

    floor = exact_floor(predictor, records, p)
    conf = np.maximum(p.max(axis=1), floor if floor is not None else 0.0)
    hit = classes[p.argmax(axis=1)] == np.asarray(gold)
    return round(expected_calibration_error(conf, hit), 4)


def trained(
    args: argparse.Namespace,
    ws: Workspace,
    base_overrides: list[str],
    tax: Any,
    records: list[Any],
    gold: list[str],
    unseen: np.ndarray,
) -> dict[str, Any]:
    """Train ``esco-history`` on the workspace store (the history), switch the embedder to its
    fine-tuned one, rebuild the index and code dev: with and without the model, with and
    without the examples' votes; each coder with its own `examples fit`."""
    model_dir = Path(args.home) / "models" / args.recipe
    t0 = time.perf_counter()
    settings = load_settings(overrides=base_overrides)
    if args.reuse_model and (model_dir / "config.json").is_file():
        trained_on = json.loads((model_dir / "config.json").read_text())["metadata"]["examples"]
        current = ExampleStore.of(ws, "esco").content_hash()
        if trained_on.get("content_hash") != current:
            raise SystemExit(
                f"{model_dir} was trained on another store ({trained_on.get('content_hash')} != {current})"
            )
        print(f"esco-history reused: {model_dir} (trained on this store, {current})")
    else:
        # No retrieval given: a mixture fitted now would be fitted against the index of the
        # base embedder, not the fine-tuned one coding uses below; the recipe's weight (0.5).
        train_from_recipe(args.recipe, model_dir, settings=settings, workspace=ws,
                          show_progress=True)  # fmt: skip
        print(f"esco-history trained in {time.perf_counter() - t0:.0f} s")
    vote = [f"examples.{k}={v}" for k, v in json.loads(args.vote or "{}").items()]
    tuned = load_settings(
        overrides=[*base_overrides, f'embedder.model="{model_dir / "embedder"}"', *vote]
    )
    t0 = time.perf_counter()
    api.build_index(tuned, ws, "esco")
    print(f"index on the fine-tuned embedder built in {time.perf_counter() - t0:.0f} s")
    rows: dict[str, Any] = {}
    plain = tuned.model_copy(
        update={"examples": tuned.examples.model_copy(update={"enabled": False})}
    )
    for name, cfg, model in (
        ("fine-tuned retrieval + examples", tuned, "retrieval"),
        ("esco-history model + retrieval", plain, str(model_dir)),
        ("esco-history model + retrieval + examples", tuned, str(model_dir)),
    ):
        if cfg is tuned and not args.vote:
            fitted = api.fit_examples(cfg, ws, model=model, taxonomy_name="esco")
            print(f"[{name}] examples fit:", json.dumps(fitted["settings"]),
                  json.dumps(fitted["figures"]))  # fmt: skip
        t0 = time.perf_counter()
        coder = load_coder(cfg, ws, model=model, taxonomy_name="esco")
        p = np.asarray(coder.predictor.predict_proba(records), np.float64)
        rows[name] = dev_row(p, coder.classes, gold, unseen, tax, time.perf_counter() - t0)
        if isinstance(coder.predictor, WithExamples):
            rows[name]["ece_coding"] = coding_ece(coder.predictor, records, p, coder.classes,
                                                  gold)  # fmt: skip
        print(f"[{name}] dev:", json.dumps(rows[name]))
    return rows


if __name__ == "__main__":
    main()
