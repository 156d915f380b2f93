"""Issue 19 on real posting titles with hand-assigned codes (benchmarks/data/tgre_handcoded.csv).

The crosswalk gold of the `messy` / `posting` dev sets (benchmarks/trust.py) is wrong about half
the time even on titles that match an O*NET title word for word, so a calibration fitted on it
learns that posting-like titles are coded wrong half the time. This measures, on 600 real TGRE
posting titles coded by hand (553 codable, 47 that should go to review), the packaged model
with each calibration recipe. Every calibration fitted on hand-coded titles is cross-fitted:
the titles are split in two folds by a hash of their id; each fold is coded with a copy
calibrated (``autocoder calibrate``) on the other fold (plus any other sets of the recipe), and
the figures pool both folds. `packaged` is the shipped calibration, never refitted.

    export HF_HUB_OFFLINE=1 AUTOCODER_HOME=$BENCH/trust/home PYTHONPATH=$PWD
    python benchmarks/handcoded_postings.py --dev $BENCH/trust/dev.csv --out $BENCH/handcoded2 \\
        [--recipes packaged,packaged-sets+clean-posting,clean+clean-posting,clean+hand]

`--dev` is the issue 19 dev split; the dev halves of its clean, messy and posting sets (never in
any calibration) are coded with every copy of a recipe too, pooled (`RECIPE_SETS` lists the
recipes, `hand` and `packaged-sets+hand` among them). Prints a Markdown table; writes every
coded table and `results.json` under `--out`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
import trust as B  # noqa: E402

from autocoder import api  # noqa: E402
from autocoder.config import load_settings  # noqa: E402
from autocoder.evaluate import realdev, structural_level_fns  # noqa: E402
from autocoder.metrics import expected_calibration_error  # noqa: E402
from autocoder.workspace import Workspace  # noqa: E402

HAND = Path(__file__).resolve().parent / "data" / "tgre_handcoded.csv"
TARGETS = (0.95, 0.9)
RECIPES = ("packaged", "clean+clean-posting", "packaged-sets+clean-posting", "clean+hand")
#: code -> its group at each level autocoder assigns (``assigned_level``), as the import builds it
GROUP_AT = structural_level_fns("onet")


def fold_of(ids: pd.Series) -> np.ndarray:
    """0 or 1 per id, from a hash (stable across runs and machines)."""
    return np.asarray([hashlib.sha256(str(i).encode()).digest()[0] % 2 for i in ids])


def figures(coded: pd.DataFrame, gold: dict[str, frozenset[str]]) -> dict[str, Any]:
    """Top-1/5, ECE and the shares (with precision) per status of one coded table."""
    lab = coded[coded["id"].map(lambda i: bool(gold[i]))]
    unc = coded[coded["id"].map(lambda i: not gold[i])]
    gs = [gold[i] for i in lab["id"]]
    top = lab[[f"code_{k}" for k in range(1, 6)]].to_numpy()
    t1 = np.asarray([r[0] in g for r, g in zip(top, gs, strict=True)])
    t5 = np.asarray([any(c in g for c in r) for r, g in zip(top, gs, strict=True)])
    conf = lab["confidence"].astype(float).to_numpy()
    ece = expected_calibration_error(conf, t1, n_bins=10)
    right = np.asarray(
        [
            bool(a) and any(GROUP_AT[lv](c) == a for c in g)
            for a, lv, g in zip(lab["assigned_code"], lab["assigned_level"], gs, strict=True)
        ]
    )
    status = lab["status"].to_numpy()

    def share(mask: np.ndarray) -> dict[str, Any]:
        n = int(mask.sum())
        return {
            "share": n / len(lab),
            "n": n,
            "precision": float(right[mask].mean()) if n else None,
        }

    return {
        "n": len(lab),
        "top1": float(t1.mean()),
        "top5": float(t5.mean()),
        "ece": float(ece),
        "mean_confidence": float(conf.mean()),
        "coded": share(status == "coded"),
        "partial": share(status == "partial"),
        "coded_or_partial": share((status == "coded") | (status == "partial")),
        "review": float((status == "review").mean()),
        "uncodable": {
            "n": len(unc),
            "coded": int((unc["status"] == "coded").sum()),
            "partial": int((unc["status"] == "partial").sum()),
        },
    }


def write_sets(dev_csv: Path, out: Path) -> tuple[dict[str, Path], dict[str, pd.DataFrame]]:
    """Calibration tables (``calibrate``'s title, codes) of the fit halves of the issue 19 sets
    (clean, messy, posting: what the packaged calibration was fitted on) and of
    ``clean-posting``, the clean fit half with a real employer appended as `posting` has it
    (the same codes: the gold is the clean gold); and the dev halves of clean, messy and posting
    (never in a calibration)."""
    sets = B.datasets(dev_csv, per_part=1000, seed=13)
    names = B.employers(B.DATA / "tgre_posting_titles" / "job_titles_unlabeled.csv")
    clean = sets["clean"]
    pick = np.random.default_rng(19).integers(len(names), size=len(clean))
    sets["clean-posting"] = clean.assign(
        title=[f"{t}, {names[i]}" for t, i in zip(clean["title"], pick, strict=True)],
        id=[f"clean-posting-{i}" for i in clean["id"]],
    )
    files, devs = {}, {}
    for name, df in sets.items():
        files[name] = out / f"fit_{name}.csv"
        df[df["part"] == realdev.FIT][["id", "title", "codes"]].to_csv(files[name], index=False)
        if name != "clean-posting":
            devs[name] = df[df["part"] != realdev.FIT][["id", "title", "codes"]]
    return files, {k: v.reset_index(drop=True) for k, v in devs.items()}


# recipe -> (calibration sets besides hand-coded titles, whether hand-coded titles are in it)
RECIPE_SETS: dict[str, tuple[tuple[str, ...], bool]] = {
    "packaged": ((), False),  # the shipped calibration (clean, messy, posting), not refitted
    "clean+clean-posting": (("clean", "clean-posting"), False),
    "packaged-sets+clean-posting": (("clean", "clean-posting", "messy", "posting"), False),
    "clean+hand": (("clean",), True),
    "hand": ((), True),
    "packaged-sets+hand": (("clean", "messy", "posting"), True),
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dev", type=Path, required=True, help="the issue 19 dev split")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--recipes", default=",".join(RECIPES))
    args = ap.parse_args()
    settings, ws = load_settings(), Workspace.resolve()
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    hand = pd.read_csv(HAND, dtype=str, keep_default_na=False)
    gold = {
        i: frozenset(c for c in v.split(";") if c)
        for i, v in zip(hand["id"], hand["codes"], strict=True)
    }
    folds = fold_of(hand["id"])
    set_files, devs = write_sets(args.dev, out)
    dev_paths, dev_golds = {}, {}
    for name, df in devs.items():
        dev_golds[name] = dict(zip(df["id"], realdev.gold_sets(df), strict=True))
        dev_paths[name] = out / f"dev_{name}.csv"
        df[["id", "title"]].to_csv(dev_paths[name], index=False)
    all_in = out / "hand_all.csv"
    hand[["id", "title"]].to_csv(all_in, index=False)
    fold_paths = []
    for f in (0, 1):
        p_in, p_fit = out / f"hand_fold{f}.csv", out / f"hand_fit_not{f}.csv"
        hand[folds == f][["id", "title"]].to_csv(p_in, index=False)
        hand[(folds != f) & (hand["codes"] != "")].to_csv(p_fit, index=False)
        fold_paths.append((p_in, p_fit))

    def coded(model: str, path: Path, name: str, target: float) -> pd.DataFrame:
        o = out / f"coded-{name}.csv"
        api.code(
            settings, ws, path, o, model_dir=model, target_precision=target, show_progress=False
        )
        return pd.read_csv(o, dtype=str, keep_default_na=False)

    def calibrated(name: str, files: list[Path]) -> str:
        model_dir = out / f"model-{name}"
        if not (model_dir / "calibration.json").exists():
            api.calibrate(settings, ws, "pretrained", files, output=model_dir)
        return str(model_dir)

    results: dict[str, Any] = {}
    for recipe in args.recipes.split(","):
        names, with_hand = RECIPE_SETS[recipe]
        extra = [set_files[n] for n in names]
        if recipe == "packaged":
            models = ["pretrained"]
        elif with_hand:  # cross-fitted: fold f is coded by a copy fitted on the other fold
            models = [calibrated(f"{recipe}-{f}", [*extra, fold_paths[f][1]]) for f in (0, 1)]
        else:
            models = [calibrated(recipe, extra)]
        per_target: dict[str, Any] = {}
        for target in TARGETS:
            tag = f"{recipe}-{target}"
            if with_hand:
                parts = [
                    coded(models[f], fold_paths[f][0], f"{tag}-hand{f}", target) for f in (0, 1)
                ]
                hand_coded = pd.concat(parts)
            else:
                hand_coded = coded(models[0], all_in, f"{tag}-hand", target)
            per_target[str(target)] = {"hand": figures(hand_coded, gold)}
            for name, path in dev_paths.items():  # every copy of the recipe codes them, pooled
                tables = [coded(m, path, f"{tag}-{name}-{k}", target) for k, m in enumerate(models)]
                per_target[str(target)][name] = figures(pd.concat(tables), dev_golds[name])
        results[recipe] = per_target
        print(recipe, json.dumps(per_target), flush=True)
    (out / "results.json").write_text(json.dumps(results, indent=2))
    print(markdown(results))


def markdown(results: dict[str, Any]) -> str:
    def pct(s: dict[str, Any]) -> str:
        p = "–" if s["precision"] is None else f"{s['precision']:.3f}"
        return f"{s['share']:.0%} ({p})"

    lines = [
        "| calibration | target | hand-coded: ECE | hand-coded: `coded` (precision) | `partial` "
        "(precision) | review | uncodable: coded / partial | clean dev: `coded` / + `partial` "
        "| messy dev: `coded` | posting dev: `coded` |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for recipe, per in results.items():
        for target, r in per.items():
            h, c = r["hand"], r["clean"]
            lines.append(
                f"| {recipe} | {target} | {h['ece']:.3f} | {pct(h['coded'])} | "
                f"{pct(h['partial'])} | {h['review']:.0%} | {h['uncodable']['coded']} / "
                f"{h['uncodable']['partial']} of {h['uncodable']['n']} | {pct(c['coded'])} / "
                f"{pct(c['coded_or_partial'])} | {pct(r['messy']['coded'])} | "
                f"{pct(r['posting']['coded'])} |"
            )
    first = next(iter(results.values()))["0.95"]
    lines.append(
        "\nTop-1 / top-5 (no calibration changes them, but a calibration's segment bonuses can): "
        + "; ".join(
            f"{k} {first[k]['top1']:.3f} / {first[k]['top5']:.3f} (n={first[k]['n']})"
            for k in ("hand", "clean", "messy", "posting")
        )
    )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
