"""Labeled dev sets of real titles for calibration and honest figures.

Two sets, each split deterministically (a seeded hash of the normalised title) into a
``fit`` half (what calibrators and the target-precision threshold are fitted on) and a ``dev``
half (what figures are reported on):

* ``messy``: JobBERT validation vacancy titles (real postings, each tagged with an ESCO
  occupation URI) mapped to O*NET-SOC through the official ESCO-O*NET crosswalk. An ESCO
  occupation linked to several O*NET codes gives a *set* of acceptable codes; the match types
  of the links are kept (``match``). Titles whose URI the crosswalk does not link are dropped.
* ``clean``: the project's own dev split of O*NET real-world titles (``autocoder dev-split``,
  :mod:`autocoder.devsplit`), held out of the taxonomy's texts at import.

Tables have columns ``id, title, codes, part`` (``codes`` ``;``-separated), plus ``match`` and
``uri`` for the JobBERT set.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd

from autocoder.classify.sources import read_crosswalk
from autocoder.records import normalize_text

FIT, DEV = "fit", "dev"

#: The crosswalk's match types, strongest first (``match`` lists a title's types in this order).
MATCH_ORDER = ("exactMatch", "closeMatch", "narrowMatch", "broadMatch", "exactISCO")


def split_part(key: str, *, seed: int, fit_fraction: float = 0.5) -> str:
    """``fit`` or ``dev`` for a normalised title, from a seeded SHA-1 hash (stable)."""
    digest = hashlib.sha1(f"realdev:{seed}:{key}".encode()).hexdigest()  # own salt: not devsplit's
    return FIT if int(digest[:8], 16) / 0xFFFFFFFF < fit_fraction else DEV


def assign_parts(table: pd.DataFrame, *, seed: int, fit_fraction: float = 0.5) -> pd.DataFrame:
    """``table`` with a ``part`` column (the same title always lands in the same half)."""
    if not 0 < fit_fraction < 1:
        raise ValueError(f"fit_fraction must be in (0, 1), got {fit_fraction}")
    keys = table["title"].map(normalize_text)
    parts = [split_part(k, seed=seed, fit_fraction=fit_fraction) for k in keys]
    return table.assign(part=parts)


def jobbert_onet(
    titles_csv: str | Path, crosswalk_csv: str | Path, *, seed: int = 13, fit_fraction: float = 0.5
) -> pd.DataFrame:
    """JobBERT vacancy titles with their acceptable O*NET-SOC codes (one row per distinct
    normalised title; codes of a title tagged with several URIs are pooled)."""
    raw = pd.read_csv(titles_csv, dtype=str)
    missing = {"vacancyTitle", "conceptUri"} - set(raw.columns)
    if missing:
        raise ValueError(f"{titles_csv}: lacks columns {sorted(missing)}")
    links = read_crosswalk(crosswalk_csv)
    links = links[links["esco_uri"].str.contains("/occupation/", regex=False)]
    codes_of = links.groupby("esco_uri")["onet_code"].agg(lambda c: sorted(set(c)))
    match_of = links.groupby("esco_uri")["match"].agg(set)
    raw = raw.dropna(subset=["vacancyTitle", "conceptUri"])
    raw = raw[raw["conceptUri"].isin(codes_of.index)].assign(
        key=lambda d: d["vacancyTitle"].map(normalize_text)
    )
    rows = []
    for key, group in raw[raw["key"] != ""].groupby("key", sort=True):
        uris = sorted(set(group["conceptUri"]))
        codes = sorted({c for u in uris for c in codes_of[u]})
        matches = set().union(*(match_of[u] for u in uris))
        rows.append(
            {
                "title": " ".join(str(group["vacancyTitle"].iloc[0]).split()),
                "codes": ";".join(codes),
                "match": ";".join(m for m in MATCH_ORDER if m in matches),
                "uri": ";".join(uris),
                "key": key,
            }
        )
    table = pd.DataFrame(rows, columns=["title", "codes", "match", "uri", "key"])
    table.insert(0, "id", [f"jobbert-{i:05d}" for i in range(1, len(table) + 1)])
    return assign_parts(table.drop(columns="key"), seed=seed, fit_fraction=fit_fraction)


def clean_dev(dev_csv: str | Path, *, seed: int = 13, fit_fraction: float = 0.5) -> pd.DataFrame:
    """The project's dev split (``id, title, codes``) with the ``part`` column."""
    table = pd.read_csv(dev_csv, dtype=str)
    missing = {"id", "title", "codes"} - set(table.columns)
    if missing:
        raise ValueError(f"{dev_csv}: lacks columns {sorted(missing)}")
    return assign_parts(table, seed=seed, fit_fraction=fit_fraction)


def gold_sets(table: pd.DataFrame) -> list[frozenset[str]]:
    """Per row, the set of acceptable codes."""
    return [frozenset(c for c in str(v).split(";") if c) for v in table["codes"]]
