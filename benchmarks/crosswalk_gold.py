"""How far the crosswalk gold of the ``messy`` dev set (JobBERT vacancy titles, ESCO codes
mapped to O*NET-SOC through the official ESCO-O*NET crosswalk) can be trusted.

A vacancy title that is word for word an O*NET-SOC title, alternate title or reported title of
exactly one occupation has an unambiguous O*NET code; this counts how often that code is among
the title's crosswalk gold codes. A coder that codes such titles right is scored wrong for the
rest: the share is a ceiling on the measured precision of ``coded`` on the titles a coder is
surest of.

    .venv/bin/python benchmarks/crosswalk_gold.py [--examples 8]
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

import pandas as pd

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"


def norm(text: object) -> str:
    return re.sub(r"\s+", " ", re.sub(r"[^a-z0-9 ]", " ", str(text).lower())).strip()


def onet_titles(release: Path) -> dict[str, set[str]]:
    """Normalised O*NET title / alternate title / reported title -> its O*NET-SOC codes."""
    tables = (
        ("Occupation Data.txt", "Title"),
        ("Alternate Titles.txt", "Alternate Title"),
        ("Sample of Reported Titles.txt", "Reported Job Title"),
    )
    out: dict[str, set[str]] = {}
    for name, column in tables:
        df = pd.read_csv(release / name, sep="\t", dtype=str, keep_default_na=False)
        for code, title in zip(df["O*NET-SOC Code"], df[column], strict=True):
            out.setdefault(norm(title), set()).add(code)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--examples", type=int, default=8, help="Disagreements to print.")
    args = ap.parse_args()
    cw = pd.read_csv(DATA / "esco_onet_crosswalk" / "crosswalk_esco_onet.csv", skiprows=16,
                     dtype=str, keep_default_na=False)  # fmt: skip
    gold: dict[str, set[str]] = {}
    kind: dict[str, set[str]] = {}
    for uri, soc, match in zip(cw["ESCO or ISCO URI"], cw["O*NET Id"], cw["Type of Match"],
                               strict=True):  # fmt: skip
        gold.setdefault(uri, set()).add(soc)
        kind.setdefault(uri, set()).add(match)
    titles = pd.read_csv(DATA / "jobbert_validation" / "titles.csv", dtype=str)
    titles = titles[titles["conceptUri"].isin(gold)]
    known = onet_titles(DATA / "onet_29.2")
    rows = [
        (t, u, next(iter(known[norm(t)])))
        for t, u in zip(titles["vacancyTitle"], titles["conceptUri"], strict=True)
        if len(known.get(norm(t), ())) == 1
    ]
    agree = [code in gold[u] for _, u, code in rows]
    print(f"JobBERT rows with crosswalk gold: {len(titles)}")
    print(f"... whose title is exactly one O*NET-SOC occupation's title: {len(rows)}")
    print(f"... whose crosswalk gold holds that occupation: {sum(agree) / len(rows):.3f}")
    by_match = Counter()
    hits = Counter()
    for (_, u, _), ok in zip(rows, agree, strict=True):
        key = "exactMatch in the crosswalk" if "exactMatch" in kind[u] else "no exactMatch"
        by_match[key] += 1
        hits[key] += ok
    for key, n in sorted(by_match.items()):
        print(f"    {key}: {n} rows, {hits[key] / n:.3f} agree")
    shown = [r for r, ok in zip(rows, agree, strict=True) if not ok][: args.examples]
    for title, uri, code in shown:
        print(f"  {title!r}: O*NET title of {code}; crosswalk gold {sorted(gold[uri])}")


if __name__ == "__main__":
    main()
