"""Extra real training text for the O*NET classifier, from releases other than O*NET's.

* ``bls_titles``: the BLS 2018 SOC Direct Match Title File, titles the SOC Policy Committee
  assigned to a 6-digit SOC code. A SOC code maps to its O*NET-SOC ``.00`` occupation when the
  taxonomy has it, else to its only O*NET-SOC child; SOC codes split over several O*NET
  occupations (``15-1299`` -> ``.01`` … ``.09``) are left out, since the title does not say which.
* ``esco_titles``: ESCO occupations' preferred and alternative labels, mapped to O*NET-SOC
  through the official ESCO <-> O*NET crosswalk. Only the match types in ``match_weights`` are
  used (by default ``exactMatch`` 1.0 and ``closeMatch`` 0.6); a label whose occupation maps to
  ``n`` O*NET codes carries ``weight / n`` for each.

Both return a table ``text, code, source, weight`` (one row per distinct text and code), with
every held-out title removed (``holdout``: normalised titles, see ``autocoder.devsplit``), and
only codes in ``codes`` (the taxonomy's leaf codes) kept. ``source_summary`` counts rows and
codes per source. Nothing here changes the default recipe; a recipe can append these rows.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from pathlib import Path

import pandas as pd

from autocoder.records import clean_text, normalize_text

SOURCE_COLUMNS = ["text", "code", "source", "weight"]
BLS_SOURCE = "bls_direct_match"
ESCO_SOURCE = "esco_crosswalk"
BLS_FILE = "soc_2018_direct_match_title_file.csv"
CROSSWALK_FILE = "crosswalk_esco_onet.csv"
ESCO_OCCUPATIONS_FILE = "occupations_en.csv"
#: Weight of an ESCO label per crosswalk match type; other types are not used.
MATCH_WEIGHTS: Mapping[str, float] = {"exactMatch": 1.0, "closeMatch": 0.6}


def finish_source_rows(rows: pd.DataFrame, source: str, holdout: Collection[str]) -> pd.DataFrame:
    """Clean texts, drop held-out titles and duplicates (keep the highest weight)."""
    rows = rows.assign(text=rows["text"].map(clean_text), source=source)
    keys = rows["text"].map(normalize_text)
    rows = rows[(keys != "") & ~keys.isin(set(holdout))].assign(_key=keys)
    rows = rows.sort_values("weight", ascending=False, kind="stable")
    rows = rows.drop_duplicates(["_key", "code"]).sort_values(["code", "text"], kind="stable")
    return rows[SOURCE_COLUMNS].reset_index(drop=True)


def soc_to_onet(soc_codes: Iterable[str], codes: Collection[str]) -> dict[str, str]:
    """6-digit SOC code -> the one O*NET-SOC code it stands for (see the module notes)."""
    children: dict[str, list[str]] = {}
    for code in codes:
        children.setdefault(code.split(".")[0], []).append(code)
    out: dict[str, str] = {}
    for soc in set(soc_codes):
        kids = children.get(soc, [])
        if f"{soc}.00" in kids:
            out[soc] = f"{soc}.00"
        elif len(kids) == 1:
            out[soc] = kids[0]
    return out


def bls_titles(
    folder: str | Path, codes: Collection[str], *, holdout: Collection[str] = ()
) -> pd.DataFrame:
    """The BLS direct-match titles as O*NET-SOC training rows (weight 1)."""
    path = Path(folder) / BLS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: BLS direct match title file not found")
    table = pd.read_csv(path, dtype=str)
    wanted = {"2018 SOC Code", "2018 SOC Direct Match Title"}
    if missing := wanted - set(table.columns):
        raise ValueError(f"{path}: lacks columns {sorted(missing)}")
    soc = table["2018 SOC Code"].str.strip()
    mapping = soc_to_onet(soc.dropna(), codes)
    rows = pd.DataFrame(
        {"text": table["2018 SOC Direct Match Title"], "code": soc.map(mapping), "weight": 1.0}
    ).dropna(subset=["text", "code"])
    return finish_source_rows(rows, BLS_SOURCE, holdout)


def read_crosswalk(path: str | Path) -> pd.DataFrame:
    """The ESCO -> O*NET crosswalk as ``onet_code, esco_uri, match`` (the header is found
    below the file's metadata lines)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: ESCO-O*NET crosswalk not found")
    with path.open(encoding="utf-8-sig") as fh:
        skip = next((i for i, line in enumerate(fh) if line.startswith("O*NET Id,")), None)
    if skip is None:
        raise ValueError(f"{path}: no header line starting with 'O*NET Id,'")
    table = pd.read_csv(path, skiprows=skip, dtype=str, encoding="utf-8-sig")
    return pd.DataFrame(
        {
            "onet_code": table["O*NET Id"].str.strip(),
            "esco_uri": table["ESCO or ISCO URI"].str.strip(),
            "match": table["Type of Match"].str.strip(),
        }
    ).dropna()


def esco_labels(occupations_csv: str | Path) -> pd.DataFrame:
    """Every preferred and alternative label of each ESCO occupation: ``esco_uri, text``."""
    table = pd.read_csv(occupations_csv, dtype=str)
    rows = []
    for uri, pref, alts in zip(
        table["conceptUri"], table["preferredLabel"], table["altLabels"], strict=True
    ):
        labels = [pref, *str(alts).split("\n")] if isinstance(alts, str) else [pref]
        rows += [(uri, label) for label in labels if isinstance(label, str) and label.strip()]
    return pd.DataFrame(rows, columns=["esco_uri", "text"])


def esco_titles(
    crosswalk_folder: str | Path,
    esco_folder: str | Path,
    codes: Collection[str],
    *,
    holdout: Collection[str] = (),
    match_weights: Mapping[str, float] = MATCH_WEIGHTS,
) -> pd.DataFrame:
    """ESCO occupation labels as O*NET-SOC training rows, weighted by the crosswalk match."""
    links = read_crosswalk(Path(crosswalk_folder) / CROSSWALK_FILE)
    links = links[links["match"].isin(set(match_weights)) & links["onet_code"].isin(set(codes))]
    links = links.assign(weight=links["match"].map(dict(match_weights)))
    links = links.sort_values("weight", ascending=False).drop_duplicates(["esco_uri", "onet_code"])
    fan_out = links.groupby("esco_uri")["onet_code"].transform("count")
    links = links.assign(weight=links["weight"] / fan_out)
    labels = esco_labels(Path(esco_folder) / ESCO_OCCUPATIONS_FILE)
    rows = labels.merge(links, on="esco_uri").rename(columns={"onet_code": "code"})
    return finish_source_rows(rows[["text", "code", "weight"]], ESCO_SOURCE, holdout)


def source_summary(
    tables: Iterable[pd.DataFrame], codes: Collection[str], known: Collection[str] = ()
) -> pd.DataFrame:
    """Per source: rows, codes covered, rows whose text is new (not among ``known``, the
    normalised texts the taxonomy already has) and codes no other source in ``tables`` covers."""
    table = pd.concat(list(tables), ignore_index=True)
    known = set(known)
    out = []
    for source, rows in table.groupby("source"):
        others = set(table.loc[table["source"] != source, "code"])
        covered = set(rows["code"])
        out.append(
            {
                "source": source,
                "rows": len(rows),
                "new_texts": int((~rows["text"].map(normalize_text).isin(known)).sum()),
                "codes": len(covered),
                "codes_of_taxonomy": len(codes),
                "codes_only_here": len(covered - others),
                "mean_weight": round(float(rows["weight"].mean()), 3),
            }
        )
    return pd.DataFrame(out)
