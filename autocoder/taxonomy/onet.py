"""Import an official O*NET database release in the text layout (tab-delimited, header row).

The release is a folder or the zip from the O*NET Resource Center (``db_29_2_text.zip``, whose
files sit in a ``db_29_2_text/`` folder). ``Occupation Data.txt`` is required; alternate titles,
reported titles, task statements, technology skills and tools are read when present.

The SOC 2018 hierarchy above the O*NET-SOC codes is derived from the code itself::

    major 11-0000 > minor 11-1000 > broad 11-1010 > detailed 11-1011 > O*NET-SOC 11-1011.00
"""

from __future__ import annotations

import csv
import functools
import importlib.resources
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from autocoder.taxonomy.download import ReleaseError, ReleaseFiles
from autocoder.taxonomy.model import Code, Skill, SkillLink, Taxonomy

log = logging.getLogger(__name__)

LEVELS = ["major", "minor", "broad", "detailed", "onet"]
CODE_COLUMN = "O*NET-SOC Code"
ONET_CODE_RE = re.compile(r"^\d{2}-\d{4}\.\d{2}$")

SOC_MAJOR_GROUPS: dict[str, str] = {
    "11": "Management Occupations",
    "13": "Business and Financial Operations Occupations",
    "15": "Computer and Mathematical Occupations",
    "17": "Architecture and Engineering Occupations",
    "19": "Life, Physical, and Social Science Occupations",
    "21": "Community and Social Service Occupations",
    "23": "Legal Occupations",
    "25": "Educational Instruction and Library Occupations",
    "27": "Arts, Design, Entertainment, Sports, and Media Occupations",
    "29": "Healthcare Practitioners and Technical Occupations",
    "31": "Healthcare Support Occupations",
    "33": "Protective Service Occupations",
    "35": "Food Preparation and Serving Related Occupations",
    "37": "Building and Grounds Cleaning and Maintenance Occupations",
    "39": "Personal Care and Service Occupations",
    "41": "Sales and Related Occupations",
    "43": "Office and Administrative Support Occupations",
    "45": "Farming, Fishing, and Forestry Occupations",
    "47": "Construction and Extraction Occupations",
    "49": "Installation, Maintenance, and Repair Occupations",
    "51": "Production Occupations",
    "53": "Transportation and Material Moving Occupations",
    "55": "Military Specific Occupations",
}

#: The SOC 2018 structure's groups (code, level, title, parent), shipped with autocoder
#: (``scripts/soc_groups.py`` writes it from the BLS structure file).
SOC2018_FILE = "soc2018.csv"


@functools.cache
def soc2018_groups() -> dict[str, tuple[str, str, str]]:
    """``{code: (level, title, parent)}`` for every major, minor, broad and detailed group of
    the SOC 2018 structure (BLS, public domain), which O*NET-SOC 2019 is built on."""
    text = importlib.resources.files(__package__).joinpath(SOC2018_FILE).read_text("utf-8")
    return {
        row["code"]: (row["level"], row["title"], row["parent"])
        for row in csv.DictReader(text.splitlines())
    }


# SOC 2018 groups whose code does not follow the digits of their members.
_SOC_MINOR_EXCEPTIONS = {"15-12": "15-1200", "31-11": "31-1100", "51-51": "51-5100"}
_SOC_BROAD_EXCEPTIONS = {"29-122": "29-1210"}

OCCUPATION_DATA = "Occupation Data.txt"
ALTERNATE_TITLES = "Alternate Titles.txt"
REPORTED_TITLES = "Sample of Reported Titles.txt"
TASK_STATEMENTS = "Task Statements.txt"
TECHNOLOGY_SKILLS = "Technology Skills.txt"
TOOLS_USED = "Tools Used.txt"
READ_ME = "Read Me.txt"


class OnetFormatError(ValueError):
    """A release file is not in the O*NET text layout; the message names file and line."""


@dataclass
class _Table:
    """The rows of one tab-delimited release file, each with its 1-based line number."""

    name: str
    header: list[str]
    rows: list[tuple[int, list[str]]]

    def column(self, wanted: str) -> int:
        lookup = {h.casefold(): i for i, h in enumerate(self.header)}
        try:
            return lookup[wanted.casefold()]
        except KeyError:
            raise OnetFormatError(
                f"{self.name}: line 1: missing column {wanted!r}; header is {self.header}"
            ) from None

    def optional_column(self, wanted: str) -> int | None:
        lookup = {h.casefold(): i for i, h in enumerate(self.header)}
        return lookup.get(wanted.casefold())


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


def _read_table(release: ReleaseFiles, filename: str, *, required: bool = False) -> _Table | None:
    location = release.find(filename)
    if location is None:
        if required:
            raise FileNotFoundError(
                f"{filename!r} not found in the O*NET release at {release.path}; expected the "
                "official text layout (e.g. db_29_2_text.zip or its unpacked folder)"
            )
        return None
    name = release.display(location)
    header: list[str] | None = None
    rows: list[tuple[int, list[str]]] = []
    for lineno, raw in enumerate(_decode(release.read_bytes(location)).split("\n"), start=1):
        line = raw.rstrip("\r")
        if not line.strip():
            continue
        fields = [f.strip() for f in line.split("\t")]
        if header is None:
            header = fields
            if CODE_COLUMN.casefold() not in (h.casefold() for h in header):
                raise OnetFormatError(
                    f"{name}: line {lineno}: header has no {CODE_COLUMN!r} column "
                    f"(is this a tab-delimited O*NET text file?); header is {header}"
                )
            continue
        if len(fields) != len(header):
            raise OnetFormatError(
                f"{name}: line {lineno}: expected {len(header)} tab-separated columns, "
                f"got {len(fields)}"
            )
        rows.append((lineno, fields))
    if header is None:
        raise OnetFormatError(f"{name}: file is empty (no header row)")
    table = _Table(name, header, rows)
    code_idx = table.column(CODE_COLUMN)
    for lineno, fields in rows:
        if not ONET_CODE_RE.match(fields[code_idx]):
            problem = "missing" if not fields[code_idx] else f"malformed ({fields[code_idx]!r})"
            raise OnetFormatError(
                f"{name}: line {lineno}: {CODE_COLUMN} is {problem}; expected e.g. 11-1011.00"
            )
    return table


def soc_groups(onet_code: str) -> tuple[str, str, str, str]:
    """``(major, minor, broad, detailed)`` SOC 2018 codes above an O*NET-SOC code (11-1011.00).

    Groups follow the code's digits (11-1011 is in 11-1010, 11-1000, 11-0000) except for the
    few SOC 2018 groups numbered otherwise (15-1200 Computer Occupations, 29-1210 Physicians...).
    """
    detailed = onet_code[:7]
    minor = _SOC_MINOR_EXCEPTIONS.get(detailed[:5], detailed[:4] + "000")
    broad = _SOC_BROAD_EXCEPTIONS.get(detailed[:6], detailed[:6] + "0")
    return detailed[:2] + "-0000", minor, broad, detailed


def _add_unique(target: list[str], seen: set[str], text: str) -> None:
    key = text.casefold()
    if text and key not in seen:
        seen.add(key)
        target.append(text)


def _named_version(texts: list[str]) -> str | None:
    """The first O*NET version a name or text states (``db_29_2_text``, ``O*NET 29.2``)."""
    for text in texts:
        match = re.search(r"db_(\d+)_(\d+)", text) or re.search(
            r"O\*NET[ _-]?(\d+)\.(\d+)", text, re.IGNORECASE
        )
        if match is None:
            match = re.search(r"onet[ _-]?(\d+)\.(\d+)", text, re.IGNORECASE)
        if match:
            return f"{match.group(1)}.{match.group(2)}"
    return None


def _read_me_version(release: ReleaseFiles) -> str | None:
    """The version the release's own ``Read Me.txt`` states, if it has one."""
    readme = release.find(READ_ME)
    if readme is None:
        return None
    content = _decode(release.read_bytes(readme))
    marker = re.search(r"^\s*version:\s*(\S+)", content, re.IGNORECASE | re.MULTILINE)
    return marker.group(1) if marker else _named_version([content])


def detect_onet_version(path: str | Path, release: ReleaseFiles | None = None) -> str:
    """The O*NET version of the release, read from its own ``Read Me.txt`` when it has one,
    else from its name (``db_29_2_text``), else "unknown".

    A release whose name states one version and whose Read Me states another is a
    ``ReleaseError`` (a renamed or mixed-up release must not be stored under a wrong label).
    """
    names = [str(Path(path).resolve())] + (release.names() if release is not None else [])
    named = _named_version(names)
    stated = _read_me_version(release) if release is not None else None
    if named and stated and named != stated:
        raise ReleaseError(
            f"{path}: the release is named {named} but its {READ_ME} says {stated}; import the "
            "right release, or give --version to state which one this is"
        )
    return stated or named or "unknown"


def import_onet(
    path: str | Path,
    *,
    version: str | None = None,
    group_titles: Mapping[str, str] | None = None,
) -> Taxonomy:
    """Import an O*NET text release (folder or zip) into a :class:`Taxonomy`.

    ``version`` overrides the detected version. Groups are titled from ``group_titles`` (SOC
    group codes such as ``"11-1000"``, ``"11-1010"`` to titles) when given, else from the SOC
    2018 structure shipped with autocoder (``soc2018_groups``); a group in neither gets the
    title of its ``.00`` occupation (detailed groups) or a readable fallback (``"SOC 11-1010"``).
    """
    with ReleaseFiles(path) as release:
        occupations = _read_table(release, OCCUPATION_DATA, required=True)
        assert occupations is not None
        leaves = _leaf_codes(occupations)
        _add_alternate_titles(release, leaves)
        _add_column_texts(release, leaves, REPORTED_TITLES, "Reported Job Title", "reported")
        _add_column_texts(release, leaves, TASK_STATEMENTS, "Task", "tasks")
        skills: dict[str, Skill] = {}
        _add_commodities(release, leaves, skills, TECHNOLOGY_SKILLS, "technology")
        _add_commodities(release, leaves, skills, TOOLS_USED, "tool")
        detected = version or detect_onet_version(path, release)
    if group_titles is None:
        group_titles = {code: title for code, (_, title, _) in soc2018_groups().items()}
    codes = _group_codes(leaves, group_titles) + list(leaves.values())
    return Taxonomy(
        "onet",
        detected,
        LEVELS,
        codes,
        skills=list(skills.values()),
        source=str(path),
        leaf_level=len(LEVELS),
    )


def _leaf_codes(table: _Table) -> dict[str, Code]:
    code_i, title_i = table.column(CODE_COLUMN), table.column("Title")
    desc_i = table.optional_column("Description")
    leaves: dict[str, Code] = {}
    for lineno, fields in table.rows:
        code = fields[code_i]
        if code in leaves:
            raise OnetFormatError(f"{table.name}: line {lineno}: duplicate code {code}")
        if not fields[title_i]:
            raise OnetFormatError(f"{table.name}: line {lineno}: code {code} has no title")
        leaves[code] = Code(
            code=code,
            title=fields[title_i],
            level=len(LEVELS),
            level_name=LEVELS[-1],
            parent=soc_groups(code)[3],
            description=fields[desc_i] if desc_i is not None else "",
        )
    return leaves


def _known_rows(table: _Table, leaves: Mapping[str, Code]) -> list[tuple[Code, list[str]]]:
    code_i = table.column(CODE_COLUMN)
    out: list[tuple[Code, list[str]]] = []
    unknown: set[str] = set()
    for _, fields in table.rows:
        leaf = leaves.get(fields[code_i])
        if leaf is None:
            unknown.add(fields[code_i])
        else:
            out.append((leaf, fields))
    if unknown:
        log.warning(
            "%s: skipped rows for %d codes not in %s (e.g. %s)",
            table.name,
            len(unknown),
            OCCUPATION_DATA,
            sorted(unknown)[0],
        )
    return out


def _add_alternate_titles(release: ReleaseFiles, leaves: Mapping[str, Code]) -> None:
    table = _read_table(release, ALTERNATE_TITLES)
    if table is None:
        return
    alt_i, short_i = table.column("Alternate Title"), table.optional_column("Short Title")
    seen: dict[str, set[str]] = {c: {leaf.title.casefold()} for c, leaf in leaves.items()}
    for leaf, fields in _known_rows(table, leaves):
        _add_unique(leaf.alt_titles, seen[leaf.code], fields[alt_i])
        if short_i is not None:
            _add_unique(leaf.alt_titles, seen[leaf.code], fields[short_i])


def _add_column_texts(
    release: ReleaseFiles, leaves: Mapping[str, Code], filename: str, column: str, kind: str
) -> None:
    table = _read_table(release, filename)
    if table is None:
        return
    text_i = table.column(column)
    seen: dict[str, set[str]] = {c: set() for c in leaves}
    for leaf, fields in _known_rows(table, leaves):
        target = leaf.reported_titles if kind == "reported" else leaf.tasks
        _add_unique(target, seen[leaf.code], fields[text_i])


def _add_commodities(
    release: ReleaseFiles,
    leaves: Mapping[str, Code],
    skills: dict[str, Skill],
    filename: str,
    relation: str,
) -> None:
    table = _read_table(release, filename)
    if table is None:
        return
    example_i, commodity_i = table.column("Example"), table.column("Commodity Code")
    commodity_title_i = table.optional_column("Commodity Title")
    hot_i = table.optional_column("Hot Technology")
    seen: dict[str, set[str]] = {c: set() for c in leaves}
    for leaf, fields in _known_rows(table, leaves):
        example = fields[example_i]
        if not example:
            continue
        skill_id = f"{fields[commodity_i]}:{example}"
        commodity_title = fields[commodity_title_i] if commodity_title_i is not None else ""
        if skill_id not in skills:
            skills[skill_id] = Skill(skill_id, example, skill_type=commodity_title)
        if skill_id in seen[leaf.code]:
            continue
        seen[leaf.code].add(skill_id)
        hot = hot_i is not None and fields[hot_i].upper() == "Y"
        leaf.skills.append(SkillLink(skill_id, example, relation, commodity_title, hot))


def _group_codes(leaves: Mapping[str, Code], titles: Mapping[str, str]) -> list[Code]:
    groups: dict[str, Code] = {}
    for code in sorted(leaves):
        chain = soc_groups(code)
        for depth, group in enumerate(chain):
            if group in groups:
                continue
            if group in titles:
                title = titles[group]
            elif depth == 0:
                title = SOC_MAJOR_GROUPS.get(group[:2], f"SOC {group}")
            elif depth == 3 and f"{group}.00" in leaves:
                title = leaves[f"{group}.00"].title
            else:
                title = f"SOC {group}"
            groups[group] = Code(
                code=group,
                title=title,
                level=depth + 1,
                level_name=LEVELS[depth],
                parent=chain[depth - 1] if depth else None,
            )
    return sorted(groups.values(), key=lambda c: (c.code, c.level))


def read_alternate_titles(path: str | Path) -> pd.DataFrame:
    """The real-world alternate titles of an O*NET release, one row per title.

    Columns: ``code`` (O*NET-SOC), ``title`` (the alternate title), ``short_title`` (may be
    empty) and ``sources`` (list of O*NET source codes, e.g. ``["02", "10"]``: 02 incumbent
    reports, 10 job postings).
    """
    with ReleaseFiles(path) as release:
        table = _read_table(release, ALTERNATE_TITLES)
    if table is None:
        raise FileNotFoundError(f"{ALTERNATE_TITLES!r} not found in the O*NET release at {path}")
    code_i, alt_i = table.column(CODE_COLUMN), table.column("Alternate Title")
    short_i, source_i = table.optional_column("Short Title"), table.optional_column("Source(s)")
    records = [
        {
            "code": fields[code_i],
            "title": fields[alt_i],
            "short_title": fields[short_i] if short_i is not None else "",
            "sources": (
                [s.strip() for s in fields[source_i].split(",") if s.strip()]
                if source_i is not None
                else []
            ),
        }
        for _, fields in table.rows
        if fields[alt_i]
    ]
    return pd.DataFrame(records, columns=["code", "title", "short_title", "sources"])
