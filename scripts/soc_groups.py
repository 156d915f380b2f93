"""Write the SOC 2018 group titles that ship with autocoder (``autocoder/taxonomy/soc2018.csv``).

Source: the BLS SOC 2018 structure (``soc_structure_2018.xlsx``, public domain; in
``../shared/data/bls_soc2018_direct_match_titles/``). O*NET-SOC 2019 is built on SOC 2018, so its
major, minor, broad and detailed groups are the structure's; ``import_onet`` titles them from
the shipped file instead of "SOC 11-1010". Read with the standard library (an .xlsx is a zip of
XML), so the project needs no spreadsheet package:

    python scripts/soc_groups.py ../shared/data/bls_soc2018_direct_match_titles/soc_structure_2018.xlsx
"""

from __future__ import annotations

import argparse
import csv
import re
import zipfile
from pathlib import Path
from xml.etree import ElementTree

NS = {"x": "http://schemas.openxmlformats.org/spreadsheetml/2006/main"}
LEVELS = ("major", "minor", "broad", "detailed")  # the structure's columns A-D
OUT = Path(__file__).resolve().parent.parent / "autocoder" / "taxonomy" / "soc2018.csv"
CODE = re.compile(r"^\d\d-\d{4}$")


def _text(node: ElementTree.Element) -> str:
    return "".join(t.text or "" for t in node.iter(f"{{{NS['x']}}}t"))


def rows(xlsx: Path) -> list[dict[str, str]]:
    """``{column letter: text}`` for each row of the first sheet."""
    with zipfile.ZipFile(xlsx) as book:
        shared = [
            _text(si)
            for si in ElementTree.fromstring(book.read("xl/sharedStrings.xml")).findall("x:si", NS)
        ]
        sheet = ElementTree.fromstring(book.read("xl/worksheets/sheet1.xml"))
    out = []
    for row in sheet.iter(f"{{{NS['x']}}}row"):
        cells = {}
        for cell in row.findall("x:c", NS):
            value = cell.find("x:v", NS)
            if cell.get("t") == "s" and value is not None:
                text = shared[int(value.text or 0)]
            elif cell.get("t") == "inlineStr":
                text = _text(cell)
            else:
                text = value.text if value is not None and value.text else ""
            cells[re.sub(r"\d", "", cell.get("r", ""))] = text.strip()
        out.append(cells)
    return out


def groups(xlsx: Path) -> list[tuple[str, str, str, str]]:
    """``(code, level, title, parent)`` for every group of the structure, in its order."""
    found: list[tuple[str, str, str, str]] = []
    above: dict[str, str] = {}
    for cells in rows(xlsx):
        for depth, column in enumerate("ABCD"):
            code = cells.get(column, "")
            if CODE.match(code) and cells.get("E"):
                parent = above.get(LEVELS[depth - 1], "") if depth else ""
                above[LEVELS[depth]] = code
                found.append((code, LEVELS[depth], cells["E"], parent))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("xlsx", type=Path)
    parser.add_argument("-o", "--output", type=Path, default=OUT)
    args = parser.parse_args()
    found = groups(args.xlsx)
    with args.output.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["code", "level", "title", "parent"])
        writer.writerows(found)
    counts = {level: sum(1 for g in found if g[1] == level) for level in LEVELS}
    print(f"wrote {args.output}: {counts}")


if __name__ == "__main__":
    main()
