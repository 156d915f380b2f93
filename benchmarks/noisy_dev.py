"""Noisy posting-style dev titles, and what the title normaliser buys the retrieval coder.

``make``: reads the dev split (``autocoder dev-split``: ``id, title, codes``; real incumbent and
posting titles held out of everything the coder learns from) and appends to each title the noise
job boards add, drawn with a seeded RNG: employer names, locations, remote/hybrid, shifts, pay,
requisition numbers, contract terms, sign-on bonus and "urgently hiring" phrasing, and seniority
words. The gold codes stay those of the clean title. Writes ``noisy_dev.csv`` (``id, title,
codes``), row for row with the dev split.

``eval``: top-1 / top-5 of the retrieval coder (in-memory index over the workspace's current
O*NET taxonomy, imported with ``--holdout`` the dev split; the workspace's embedding cache is
reused) on a sample of the clean titles, the same titles noisy, and the noisy titles through
``autocoder.titles.clean_title`` (and the clean titles through it, to check it costs nothing).

Run from the repository root (about 20 minutes on 2 loaded cores for the index's embeddings the
first time; then a minute)::

    export HF_HUB_OFFLINE=1 AUTOCODER_HOME=/tmp/nt10/home
    .venv/bin/autocoder dev-split ../shared/data/onet_29.2 -o /tmp/nt10/dev.csv
    .venv/bin/autocoder taxonomy import onet ../shared/data/onet_29.2 --holdout /tmp/nt10/dev.csv
    .venv/bin/python benchmarks/noisy_dev.py make /tmp/nt10/dev.csv -o /tmp/nt10/noisy_dev.csv
    nice -n 5 .venv/bin/python benchmarks/noisy_dev.py eval /tmp/nt10/dev.csv \\
        /tmp/nt10/noisy_dev.csv --sample 500 --out /tmp/nt10/noisy_eval.json
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

# Employers that post on US and UK job boards (names only, as they appear in titles).
EMPLOYERS = (
    "Amazon", "Walmart", "Target", "Kaiser Permanente", "HCA Healthcare", "CVS Health",
    "Walgreens", "Starbucks", "UPS", "FedEx", "The Home Depot", "Lowe's", "Deloitte",
    "Accenture", "Mayo Clinic", "Cleveland Clinic", "Aramark", "Sodexo", "Allied Universal",
    "Robert Half", "Randstad", "Adecco", "Banner Health", "Ascension", "Tesla", "Costco",
    "Dollar General", "Marriott", "Hilton", "Tesco", "Sainsbury's", "NHS Lothian", "Acme Corp",
    "Genesis Healthcare", "State of Texas", "City of Phoenix", "Brightview Landscapes LLC",
    "Sunrise Senior Living", "Compass Group", "Kroger", "Wells Fargo", "JPMorgan Chase",
)  # fmt: skip
# Places: some the normaliser lists, some it does not.
PLACES = (
    "New York, NY", "Dallas, TX", "Houston, TX", "Chicago, IL", "Atlanta, GA", "Phoenix, AZ",
    "Boise, ID", "Fargo, ND", "Knoxville, TN", "Springfield, IL", "Tulsa, OK", "Reno, NV",
    "Green Bay, WI", "Scranton, PA", "Lubbock, TX", "London, UK", "Leicester, UK",
    "Manchester", "Toronto, ON", "Sydney, Australia", "Remote, US", "Texas", "California",
    "Multiple Locations",
)  # fmt: skip
REMOTE = ("Remote", "Hybrid", "On-site", "Work From Home", "Fully Remote", "Remote Eligible")
SHIFTS = (
    "Night Shift", "Day Shift", "2nd Shift", "3rd Shift", "Nights", "Weekends",
    "Evening Shift", "7p-7a", "12-Hour Shifts", "Mon-Fri", "Overnight Shift",
)  # fmt: skip
CONTRACT = (
    "Full-Time", "Full Time", "Part-Time", "Part Time", "PRN", "Per Diem", "Temp", "Contract",
    "Temp-to-Hire", "Contract to Hire", "Permanent", "Seasonal", "13 Week Contract",
)  # fmt: skip
BONUS_SUFFIX = (
    "$5,000 Sign-On Bonus", "Sign-On Bonus", "$1,500 Signing Bonus", "Immediate Start",
    "Hiring Immediately", "Apply Today", "Weekly Pay", "Great Benefits", "Paid Training",
    "No Experience Necessary", "Relocation Assistance",
)  # fmt: skip
URGENT_PREFIX = ("URGENTLY HIRING: ", "Now Hiring: ", "Hiring Immediately! ", "Urgent: ")
SENIOR_PREFIX = ("Senior ", "Sr. ", "Sr ", "Junior ", "Jr. ", "Lead ", "Entry Level ")
SENIOR_SUFFIX = (" I", " II", " III", ", Senior", " - Senior", " Level 2")
SEPARATORS = (" - ", " - ", " | ", ", ", " – ", " ")


def _pay(rng: np.random.Generator) -> str:
    low = int(rng.integers(14, 60))
    forms = (
        f"${low}/hr",
        f"${low}.{int(rng.integers(0, 99)):02d}/hour",
        f"${low}-${low + int(rng.integers(2, 10))}/hr",
        f"£{low}k",
        f"Up to {low + 20}K",
        f"${low * 2},000 - ${low * 2 + 15},000 a year",
        f"Up to ${low} per hour",
    )
    return str(forms[int(rng.integers(len(forms)))])


def _requisition(rng: np.random.Generator) -> str:
    n = int(rng.integers(1000, 999999))
    forms = (
        f"Req #{n}",
        f"JR-{n:06d}",
        f"(ID {n})",
        f"Job ID: {n}",
        f"R{n:07d}",
        f"Requisition {n}",
        f"#{n}",
        f"REQ{n}",
    )
    return str(forms[int(rng.integers(len(forms)))])


def _pick(options: tuple[str, ...]) -> Callable[[np.random.Generator], str]:
    return lambda rng: str(options[int(rng.integers(len(options)))])


SUFFIX_KINDS: dict[str, Callable[[np.random.Generator], str]] = {
    "employer": _pick(EMPLOYERS),
    "location": _pick(PLACES),
    "remote": _pick(REMOTE),
    "shift": _pick(SHIFTS),
    "pay": _pay,
    "requisition": _requisition,
    "contract": _pick(CONTRACT),
    "bonus": _pick(BONUS_SUFFIX),
}


def _suffix(kind: str, piece: str, rng: np.random.Generator) -> str:
    """How a piece is attached: a separator, brackets, or 'at' for employers."""
    if kind == "employer" and rng.random() < 0.35:
        return f" at {piece}"
    if piece.startswith("(") or (kind in ("remote", "location", "contract") and rng.random() < 0.3):
        return f" {piece}" if piece.startswith("(") else f" ({piece})"
    return f"{SEPARATORS[int(rng.integers(len(SEPARATORS)))]}{piece}"


def noisy_title(title: str, rng: np.random.Generator) -> str:
    """``title`` with 1-3 kinds of posting noise, and sometimes seniority, added around it."""
    n = int(rng.choice([1, 2, 3], p=[0.3, 0.45, 0.25]))
    kinds = list(rng.choice(list(SUFFIX_KINDS), size=n, replace=False))
    out = title
    if rng.random() < 0.3:
        if rng.random() < 0.7:
            out = SENIOR_PREFIX[int(rng.integers(len(SENIOR_PREFIX)))] + out
        else:
            out += SENIOR_SUFFIX[int(rng.integers(len(SENIOR_SUFFIX)))]
    for kind in kinds:
        out += _suffix(kind, SUFFIX_KINDS[kind](rng), rng)
    if rng.random() < 0.08:
        out = URGENT_PREFIX[int(rng.integers(len(URGENT_PREFIX)))] + out
    if rng.random() < 0.05:
        out = out.upper()
    return out


def make_noisy(dev: pd.DataFrame, *, seed: int = 7) -> pd.DataFrame:
    """The dev split with noisy titles (same ids and codes, row for row)."""
    rng = np.random.default_rng(seed)
    return dev.assign(title=[noisy_title(str(t), rng) for t in dev["title"]])[
        ["id", "title", "codes"]
    ]


def _topk(coder: object, titles: list[str], gold: list[set[str]]) -> dict[str, float]:
    proba = np.asarray(coder.predict_proba(titles))  # type: ignore[attr-defined]
    classes = np.asarray(coder.classes_)  # type: ignore[attr-defined]
    order = np.argsort(-proba, axis=1, kind="stable")[:, :5]
    ranked = classes[order]
    hit1 = [r[0] in g for r, g in zip(ranked, gold, strict=True)]
    hit5 = [bool(set(r) & g) for r, g in zip(ranked, gold, strict=True)]
    return {"top1": round(float(np.mean(hit1)), 4), "top5": round(float(np.mean(hit5)), 4)}


def evaluate(dev_path: Path, noisy_path: Path, *, sample: int, seed: int) -> dict[str, object]:
    from autocoder.api import retrieval_coder
    from autocoder.config import load_settings
    from autocoder.taxonomy.store import load_taxonomy
    from autocoder.titles import clean_title
    from autocoder.workspace import Workspace

    dev, noisy = pd.read_csv(dev_path, dtype=str), pd.read_csv(noisy_path, dtype=str)
    if list(dev["id"]) != list(noisy["id"]):
        raise ValueError(f"{noisy_path} is not row for row with {dev_path}")
    rows = np.random.default_rng(seed).permutation(len(dev))[: min(sample, len(dev))]
    dev, noisy = dev.iloc[rows], noisy.iloc[rows]
    gold = [set(str(c).split(";")) for c in dev["codes"]]
    settings = load_settings(overrides=["index.backend=memory"])
    ws = Workspace.resolve()
    t0 = time.time()
    coder = retrieval_coder(settings, ws, load_taxonomy(ws, "onet"))
    out: dict[str, object] = {"n": len(dev), "index_seconds": round(time.time() - t0, 1)}
    sets = {
        "clean": list(dev["title"]),
        "clean+normaliser": [clean_title(t) for t in dev["title"]],
        "noisy": list(noisy["title"]),
        "noisy+normaliser": [clean_title(t) for t in noisy["title"]],
    }
    for name, titles in sets.items():
        out[name] = _topk(coder, titles, gold)
        print(name, out[name], flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    mk = sub.add_parser("make", help="write noisy_dev.csv from a dev split")
    mk.add_argument("dev", type=Path)
    mk.add_argument("-o", "--out", type=Path, required=True)
    mk.add_argument("--seed", type=int, default=7)
    ev = sub.add_parser("eval", help="retrieval top-1/top-5: clean, noisy, noisy+normaliser")
    ev.add_argument("dev", type=Path)
    ev.add_argument("noisy", type=Path)
    ev.add_argument("--sample", type=int, default=500)
    ev.add_argument("--seed", type=int, default=0)
    ev.add_argument("--out", type=Path)
    args = parser.parse_args()
    if args.cmd == "make":
        noisy = make_noisy(pd.read_csv(args.dev, dtype=str), seed=args.seed)
        noisy.to_csv(args.out, index=False)
        print(f"wrote {len(noisy)} noisy titles to {args.out}")
        return
    result = evaluate(args.dev, args.noisy, sample=args.sample, seed=args.seed)
    if args.out:
        args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
