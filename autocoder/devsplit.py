"""The dev split: real-world job titles held out of everything the coder learns from, the
posting-noise copy of them, and the figures a model reaches on both.

O*NET's Alternate Titles carry their sources; sources 02 (incumbent reports) and 10 (job
postings) are titles real people and real vacancies use. A deterministic, hash-based fraction of
those titles becomes the dev set (``id, title, codes``; ``codes`` = every code the title is
listed under). ``apply_holdout`` then removes the dev titles from a taxonomy before it is
indexed or used to train, so reported figures are never measured on training data.

The noisy copy (``noisy_titles``, ``make_noisy``) adds posting-style noise to titles: employer
names, locations, remote/hybrid, shifts, pay, requisition numbers, contract terms, bonus
phrasing and seniority words, drawn with a seeded RNG. It makes the noisy dev set
(``benchmarks/noisy_dev.py``) and the noisy copies of validation titles that the classifier's
confidence is calibrated on (``autocoder train``), so that its confidence holds on what users
send; the title normaliser (``autocoder.titles``) is tested against the same kinds of noise.

``dev_figures`` scores a predictor (anything with ``classes_`` and ``predict_proba``) on the dev
table as ``autocoder code`` would see it: each title through the title normaliser first, clean
and with noise. ``autocoder train`` stores the figures in the model's metadata and prints them,
so a user sees how well the model codes titles it never saw before it is refit on everything.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from autocoder.metrics import expected_calibration_error, macro_accuracy, top_k_accuracy
from autocoder.records import JobRecord, normalize_text
from autocoder.taxonomy.model import Taxonomy
from autocoder.titles import clean_title

REAL_WORLD_SOURCES = ("02", "10")


def _in_dev(key: str, fraction: float, seed: int) -> bool:
    digest = hashlib.sha1(f"{seed}:{key}".encode()).hexdigest()
    return int(digest[:8], 16) / 0xFFFFFFFF < fraction


def make_dev_split(
    alt_titles: pd.DataFrame,
    *,
    fraction: float = 0.2,
    seed: int = 13,
    sources: Iterable[str] = REAL_WORLD_SOURCES,
    reported_titles: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Return the dev split as ``id, title, codes`` (codes ``;``-separated).

    ``alt_titles`` has columns ``code, title, sources`` (a list of source ids), as returned by
    ``autocoder.taxonomy.onet.read_alternate_titles``. ``reported_titles`` (``code, title``) adds
    acceptable codes for a dev title that O*NET also lists as a reported title elsewhere.
    """
    if not 0 < fraction < 1:
        raise ValueError(f"fraction must be in (0, 1), got {fraction}")
    missing = {"code", "title", "sources"} - set(alt_titles.columns)
    if missing:
        raise ValueError(f"alternate titles table lacks columns {sorted(missing)}")
    wanted = set(sources)
    df = alt_titles.assign(key=alt_titles["title"].map(normalize_text))
    real = df[df["sources"].map(lambda s: bool(wanted & set(s)))]
    dev_keys = sorted(k for k in set(real["key"]) if k and _in_dev(k, fraction, seed))
    listed = df[["key", "code"]]
    if reported_titles is not None and len(reported_titles):
        listed = pd.concat(
            [
                listed,
                reported_titles.assign(key=reported_titles["title"].map(normalize_text))[
                    ["key", "code"]
                ],
            ]
        )
    codes_of = (
        listed[listed["key"].isin(set(dev_keys))]
        .groupby("key")["code"]
        .agg(lambda c: sorted(set(c)))
    )
    shown = real.drop_duplicates("key").set_index("key")["title"]
    rows = [
        {"id": f"dev-{i:05d}", "title": shown[k], "codes": ";".join(codes_of[k])}
        for i, k in enumerate(dev_keys, start=1)
    ]
    return pd.DataFrame(rows, columns=["id", "title", "codes"])


def holdout_titles(dev: pd.DataFrame) -> set[str]:
    """The normalised titles of a dev split table (``title`` column)."""
    if "title" not in dev.columns:
        raise ValueError("holdout table needs a 'title' column")
    return {normalize_text(t) for t in dev["title"] if normalize_text(t)}


def apply_holdout(taxonomy: Taxonomy, titles: set[str]) -> int:
    """Remove held-out titles from every code's alternate and reported titles; return the count."""
    removed = 0
    for code in taxonomy:
        for attr in ("alt_titles", "reported_titles"):
            kept = [t for t in getattr(code, attr) if normalize_text(t) not in titles]
            removed += len(getattr(code, attr)) - len(kept)
            setattr(code, attr, kept)
    return removed


def read_holdout(path: str | Path) -> set[str]:
    from autocoder.io import read_table

    return holdout_titles(read_table(path))


def release_dev_split(release: Path, *, fraction: float, seed: int) -> pd.DataFrame:
    """The dev split of an O*NET text release folder (its Alternate Titles)."""
    from autocoder.taxonomy.onet import read_alternate_titles

    return make_dev_split(read_alternate_titles(release), fraction=fraction, seed=seed)


# --- the noisy copy: posting-style noise ------------------------------------------------------
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


def noisy_titles(titles: Sequence[str], *, seed: int = 7) -> list[str]:
    """A noisy version of each title (seeded: the same titles and seed give the same noise)."""
    rng = np.random.default_rng(seed)
    return [noisy_title(str(t), rng) for t in titles]


def make_noisy(dev: pd.DataFrame, *, seed: int = 7) -> pd.DataFrame:
    """The dev split with noisy titles (same ids and codes, row for row)."""
    rng = np.random.default_rng(seed)
    return dev.assign(title=[noisy_title(str(t), rng) for t in dev["title"]])[
        ["id", "title", "codes"]
    ]


# --- dev figures --------------------------------------------------------------------------------
NOISE_SEED = 7
REVIEW_THRESHOLD = 0.5  # the default coder.threshold


def dev_gold(dev: pd.DataFrame) -> list[tuple[str, ...]]:
    """The right codes of each dev row."""
    if not {"title", "codes"} <= set(dev.columns):
        raise ValueError(f"a dev table needs 'title' and 'codes' columns, has {list(dev.columns)}")
    return [tuple(str(c).split(";")) for c in dev["codes"]]


def score_proba(
    proba: np.ndarray, classes: np.ndarray, gold: list[tuple[str, ...]]
) -> dict[str, float]:
    """top-1/3/5, macro top-1 (mean over gold codes), the ECE of the top-1 confidence, and the
    share coded automatically at the default review threshold with its precision."""
    order = np.argsort(-proba, axis=1, kind="stable")[:, :5]
    ranked = np.asarray(classes)[order]
    correct = np.asarray([r[0] in g for r, g in zip(ranked, gold, strict=True)])
    auto = proba.max(axis=1) >= REVIEW_THRESHOLD
    return {
        "coded_at_threshold": round(float(auto.mean()), 4) if len(auto) else float("nan"),
        "precision_at_threshold": round(float(correct[auto].mean()), 4)
        if auto.any()
        else float("nan"),
        "top1": round(top_k_accuracy(ranked, gold, k=1), 4),
        "top3": round(top_k_accuracy(ranked, gold, k=3), 4),
        "top5": round(top_k_accuracy(ranked, gold, k=5), 4),
        "macro_top1": round(macro_accuracy(ranked, gold), 4),
        "ece": round(expected_calibration_error(proba.max(axis=1), correct), 4),
    }


def dev_inputs(dev: pd.DataFrame, *, noise_seed: int = NOISE_SEED) -> dict[str, list[JobRecord]]:
    """The dev titles as the coder sees them, clean and noisy, both normalised."""
    titles = [str(t) for t in dev["title"]]
    return {
        "clean": [JobRecord(clean_title(t)) for t in titles],
        "noisy": [JobRecord(clean_title(t)) for t in noisy_titles(titles, seed=noise_seed)],
    }


def dev_figures(model: Any, dev: pd.DataFrame) -> dict[str, Any]:
    """``{"n": rows, "clean": {...}, "noisy": {...}}`` for ``model`` on the dev table."""
    gold = dev_gold(dev)
    out: dict[str, Any] = {"n": len(dev)}
    for name, records in dev_inputs(dev).items():
        out[name] = score_proba(np.asarray(model.predict_proba(records)), model.classes_, gold)
    return out
