"""Posting-style noise for job titles: employer names, locations, remote/hybrid, shifts, pay,
requisition numbers, contract terms, bonus phrasing and seniority words, drawn with a seeded RNG.

Used to make noisy dev sets (``benchmarks/noisy_dev.py``) and the noisy copies of validation
titles that the classifier's confidence is calibrated on (``autocoder train``), so that its
confidence holds on what users send, not only on clean taxonomy titles. The title normaliser
(``autocoder.titles``) is tested against the same kinds of noise.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

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
