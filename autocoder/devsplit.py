"""A dev split of real-world job titles, held out of everything the coder learns from.

O*NET's Alternate Titles carry their sources; sources 02 (incumbent reports) and 10 (job
postings) are titles real people and real vacancies use. A deterministic, hash-based fraction of
those titles becomes the dev set (``id, title, codes``; ``codes`` = every code the title is
listed under). ``apply_holdout`` then removes the dev titles from a taxonomy before it is
indexed or used to train, so reported figures are never measured on training data.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from autocoder.records import normalize_text
from autocoder.taxonomy.model import Taxonomy

REAL_WORLD_SOURCES = ("02", "10")

#: A title's matching key (case and spacing ignored); the name callers of the dev split use.
normalize_title = normalize_text


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
    df = alt_titles.assign(key=alt_titles["title"].map(normalize_title))
    real = df[df["sources"].map(lambda s: bool(wanted & set(s)))]
    dev_keys = sorted(k for k in set(real["key"]) if k and _in_dev(k, fraction, seed))
    listed = df[["key", "code"]]
    if reported_titles is not None and len(reported_titles):
        listed = pd.concat(
            [
                listed,
                reported_titles.assign(key=reported_titles["title"].map(normalize_title))[
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
    return {normalize_title(t) for t in dev["title"] if normalize_title(t)}


def apply_holdout(taxonomy: Taxonomy, titles: set[str]) -> int:
    """Remove held-out titles from every code's alternate and reported titles; return the count."""
    removed = 0
    for code in taxonomy:
        for attr in ("alt_titles", "reported_titles"):
            kept = [t for t in getattr(code, attr) if normalize_title(t) not in titles]
            removed += len(getattr(code, attr)) - len(kept)
            setattr(code, attr, kept)
    return removed


def read_holdout(path: str | Path) -> set[str]:
    from autocoder.io import read_table

    return holdout_titles(read_table(path))
