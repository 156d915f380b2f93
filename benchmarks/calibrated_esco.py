"""A trained ESCO model with coded history, calibrated on real vacancy titles (issues 18 and 19).

Uses the workspace and model of ``benchmarks/examples_esco.py --train --recipe R`` (the same
seeded dev split of the JobBERT validation titles; the history in the examples store). A
seeded half of dev calibrates the model as a user does (``autocoder examples fit --model M``,
then ``autocoder calibrate --model M --output M-cal --with-examples``); the other half is coded
with the copy (``autocoder code --model M-cal``) at target precision 0.95 and 0.9 and with the
bare threshold, and with the model uncalibrated. Per row of the table: top-1 / top-5, the ECE of
the reported confidence, the share and precision of ``coded`` and ``partial`` (right: the gold
code's group at the assigned level) and the share left for review. ``office exact trust``
codes with the same calibration less its fitted exact-match trust (the office's
``examples.exact_trust`` as the floor of exact-title matches).

    HF_HUB_OFFLINE=1 PYTHONPATH=. .venv/bin/python benchmarks/calibrated_esco.py \\
        --home $BENCH/esco3 --recipe esco-history-head
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from examples_esco import DATA, assigned_right, split, status_figures

from autocoder import api
from autocoder.config import load_settings
from autocoder.metrics import expected_calibration_error
from autocoder.taxonomy.store import load_taxonomy
from autocoder.workspace import Workspace


def figures(coded: pd.DataFrame, gold: pd.Series, tax: Any) -> dict[str, Any]:
    """Top-1/5, ECE of ``confidence``, share and precision of each status."""
    g = gold.to_numpy()
    ranked = np.stack([coded[f"code_{i}"].to_numpy() for i in range(1, 6)], axis=1)
    hit = ranked[:, 0] == g
    conf = coded["confidence"].astype(float).to_numpy()
    return {
        "top1": round(float(hit.mean()), 4),
        "top5": round(float((ranked == g[:, None]).any(axis=1).mean()), 4),
        "ece": round(expected_calibration_error(conf, hit), 4),
        **status_figures(coded["status"].to_numpy(), assigned_right(coded, gold, tax)),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--home", required=True, help="The workspace of examples_esco.py --train.")
    ap.add_argument("--recipe", default="esco-history-head")
    ap.add_argument("--seed", type=int, default=18)
    ap.add_argument("--dev-share", type=float, default=0.25)
    ap.add_argument("--kinds", default='["title","alt_title"]')
    args = ap.parse_args()
    ws = Workspace.resolve(args.home)
    model = Path(args.home) / "models" / args.recipe
    settings = load_settings(overrides=[
        'taxonomy.default="esco"', f"index.kinds={args.kinds}",
        f'embedder.model="{model / "embedder"}"',
    ])  # fmt: skip
    tax = load_taxonomy(ws, "esco")
    dev, _ = split(DATA / "jobbert_validation" / "titles.csv", tax, args.seed, args.dev_share, 0)
    half = np.random.default_rng(7).permutation(len(dev)) < len(dev) // 2
    cal, ev = dev[half], dev[~half].reset_index(drop=True)
    out = Path(args.home) / "bench" / "calibrated"
    out.mkdir(parents=True, exist_ok=True)
    cal.rename(columns={"code": "codes"}).to_csv(out / "calibrate.csv", index=False)
    ev.assign(id=[f"e{i}" for i in range(len(ev))])[["id", "title"]].to_csv(
        out / "eval.csv", index=False
    )
    print(f"{len(cal)} calibration rows, {len(ev)} evaluation rows")
    fit = api.fit_examples(settings, ws, model=str(model), taxonomy_name="esco")
    print("examples fit:", json.dumps(fit["settings"]), json.dumps(fit["figures"]))
    calibrated = out / f"{args.recipe}-cal"
    shutil.rmtree(calibrated, ignore_errors=True)
    res = api.calibrate(settings, ws, model, [out / "calibrate.csv"], output=calibrated,
                        with_examples=True)  # fmt: skip
    print("calibrate:", json.dumps({k: res.get(k) for k in ("top1", "segments", "exact_matches")}))
    office = out / f"{args.recipe}-cal-office"
    shutil.rmtree(office, ignore_errors=True)
    shutil.copytree(calibrated, office)
    sidecar = json.loads((office / "calibration.json").read_text())
    sidecar.pop("exact", None)
    (office / "calibration.json").write_text(json.dumps(sidecar))

    runs: list[tuple[str, Path, float | None, float | None]] = [
        ("uncalibrated, threshold 0.5", model, None, 0.5),
        ("calibrated, threshold 0.5", calibrated, None, 0.5),
        ("calibrated, office exact trust, threshold 0.5", office, None, 0.5),
        ("calibrated, target 0.95", calibrated, 0.95, None),
        ("calibrated, target 0.9", calibrated, 0.9, None),
        ("calibrated, office exact trust, target 0.9", office, 0.9, None),
    ]
    table = {}
    for name, directory, target, threshold in runs:
        path = out / f"coded-{len(table)}.csv"
        path.unlink(missing_ok=True)
        api.code(settings, ws, out / "eval.csv", path, model_dir=directory, taxonomy_name="esco",
                 target_precision=target, threshold=threshold, show_progress=False)  # fmt: skip
        coded = pd.read_csv(path, dtype=str, keep_default_na=False)
        table[name] = figures(coded, ev["code"], tax)
        print(f"[{name}]", json.dumps(table[name]))
    (out / "results.json").write_text(json.dumps({"calibrate": res, "eval": table}, indent=2))


if __name__ == "__main__":
    main()
