"""Import the official ESCO v1.x CSV export (folder or zip) into a :class:`Taxonomy`.

Files (English): ``occupations_en.csv`` and ``ISCOGroups_en.csv`` (required), ``skills_en.csv``,
``occupationSkillRelations.csv`` and ``broaderRelationsOccPillar.csv`` (optional; the relation
files may also carry a language suffix, e.g. ``occupationSkillRelations_en.csv``).

Hierarchy: ISCO-08 groups at levels 1-4 (codes "2", "26", "265", "2654"; leading zeros kept,
e.g. "0110") and every ESCO occupation at level 5 ("occupation"). An ESCO occupation may sit
under another occupation (2654.1 > 2654.1.7); its ``parent`` is then that occupation, but it is
still a leaf for coding, so ``Taxonomy.leaves()`` returns all occupations.

Texts: ``alt_titles`` are the ``altLabels`` (minus the preferred label). ``hiddenLabels``
(misspellings, informal or outdated search terms such as "dr") are left out unless
``include_hidden_labels=True``; they are appended to ``alt_titles`` then.
"""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from autocoder.taxonomy.download import ReleaseFiles
from autocoder.taxonomy.model import Code, Skill, SkillLink, Taxonomy

log = logging.getLogger(__name__)

LEVELS = ["isco1", "isco2", "isco3", "isco4", "occupation"]
OCCUPATION_LEVEL = 5


class EscoFormatError(ValueError):
    """An export file is not in the ESCO CSV layout; the message names the file and row."""


def _split_labels(text: str) -> list[str]:
    return [part.strip() for part in text.split("\n") if part.strip()]


def _unique(texts: Iterable[str], exclude: Iterable[str] = ()) -> list[str]:
    seen = {t.casefold() for t in exclude}
    out: list[str] = []
    for text in texts:
        key = text.casefold()
        if text and key not in seen:
            seen.add(key)
            out.append(text)
    return out


def _read_csv(
    release: ReleaseFiles,
    names: list[str],
    columns: list[str],
    *,
    required: bool,
) -> tuple[pd.DataFrame | None, str]:
    location = release.find(*names)
    if location is None:
        if required:
            raise FileNotFoundError(
                f"{names[0]!r} not found in the ESCO export at {release.path}; expected the "
                "official ESCO v1.x CSV export (folder or zip)"
            )
        return None, ""
    name = release.display(location)
    try:
        frame = pd.read_csv(
            io.BytesIO(release.read_bytes(location)),
            dtype=str,
            keep_default_na=False,
            encoding="utf-8-sig",
        )
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise EscoFormatError(f"{name}: not a readable CSV file: {exc}") from exc
    frame.columns = [str(c).strip() for c in frame.columns]
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise EscoFormatError(
            f"{name}: missing column(s) {missing}; columns are {list(frame.columns)}"
        )
    frame = frame[columns].apply(lambda col: col.str.strip())
    return frame, name


def _rows(frame: pd.DataFrame) -> Iterator[Any]:
    """The frame's rows as named tuples (every cell is text: the files are read as strings)."""
    return frame.itertuples(index=False)


def _check_filled(frame: pd.DataFrame, name: str, columns: list[str]) -> None:
    for column in columns:
        empty = frame.index[frame[column] == ""]
        if len(empty):
            row = int(empty[0])
            uri = frame.at[empty[0], "conceptUri"] if "conceptUri" in frame.columns else ""
            raise EscoFormatError(
                f"{name}: data row {row + 1} ({str(uri) or 'no conceptUri'}): empty {column!r}"
            )


def detect_esco_version(path: str | Path, release: ReleaseFiles | None = None) -> str:
    """The ESCO version named in the path or zip member names (``v1.1.1``), or "unknown"."""
    texts = [str(Path(path).resolve())] + (release.names() if release is not None else [])
    for text in texts:
        match = re.search(r"(?<![A-Za-z0-9])v(\d+\.\d+(?:\.\d+)?)", text)
        if match:
            return f"v{match.group(1)}"
    return "unknown"


def _esco_tables(language: str) -> dict[str, tuple[list[str], list[str], bool]]:
    """Each table ``import_esco`` reads: (file names to try, columns, required)."""
    return {
        "groups": (
            [f"ISCOGroups_{language}.csv"],
            ["conceptUri", "code", "preferredLabel", "altLabels", "description"],
            True,
        ),
        "occupations": (
            [f"occupations_{language}.csv"],
            [
                "conceptUri",
                "iscoGroup",
                "preferredLabel",
                "altLabels",
                "hiddenLabels",
                "description",
                "code",
            ],
            True,
        ),
        "skills": (
            [f"skills_{language}.csv"],
            ["conceptUri", "skillType", "preferredLabel", "altLabels", "description"],
            False,
        ),
        "relations": (
            ["occupationSkillRelations.csv", f"occupationSkillRelations_{language}.csv"],
            ["occupationUri", "relationType", "skillType", "skillUri"],
            False,
        ),
        "broader": (
            ["broaderRelationsOccPillar.csv", f"broaderRelationsOccPillar_{language}.csv"],
            ["conceptType", "conceptUri", "broaderType", "broaderUri"],
            False,
        ),
    }


def _skills(frame: pd.DataFrame) -> dict[str, Skill]:
    """ESCO skills keyed by URI."""
    return {
        row.conceptUri: Skill(
            skill_id=row.conceptUri,
            label=row.preferredLabel,
            skill_type=row.skillType,
            alt_labels=_unique(_split_labels(row.altLabels), exclude=[row.preferredLabel]),
            description=row.description,
        )
        for row in _rows(frame)
    }


def import_esco(
    path: str | Path,
    *,
    version: str | None = None,
    language: str = "en",
    include_hidden_labels: bool = False,
) -> Taxonomy:
    """Import an ESCO CSV export (folder or zip) for ``language`` into a :class:`Taxonomy`."""
    with ReleaseFiles(path) as release:
        read = {
            key: _read_csv(release, names, columns, required=required)
            for key, (names, columns, required) in _esco_tables(language).items()
        }
        detected = version or detect_esco_version(path, release)
    (groups, groups_name), (occupations, occ_name) = read["groups"], read["occupations"]
    skills_frame, relations, broader = read["skills"][0], read["relations"][0], read["broader"][0]
    assert groups is not None and occupations is not None
    _check_filled(groups, groups_name, ["conceptUri", "code", "preferredLabel"])
    _check_filled(occupations, occ_name, ["conceptUri", "iscoGroup", "preferredLabel", "code"])

    group_codes = _isco_codes(groups, groups_name)
    occ_codes = _occupation_codes(occupations, include_hidden_labels=include_hidden_labels)
    _resolve_parents(occ_codes, group_codes, broader, occ_name)
    skills = _skills(skills_frame) if skills_frame is not None else {}
    if relations is not None:
        _link_skills(occ_codes, skills, relations, have_skill_file=skills_frame is not None)
    return Taxonomy(
        "esco",
        detected,
        LEVELS,
        list(group_codes.values()) + list(occ_codes.values()),
        skills=list(skills.values()),
        source=str(path),
        leaf_level=OCCUPATION_LEVEL,
    )


def _isco_codes(groups: pd.DataFrame, name: str) -> dict[str, Code]:
    """ISCO groups keyed by URI; level = number of digits, parent = the code minus one digit."""
    by_uri: dict[str, Code] = {}
    for i, row in enumerate(_rows(groups), start=1):
        code = row.code
        if not code.isdigit() or not 1 <= len(code) <= 4:
            raise EscoFormatError(
                f"{name}: data row {i} ({row.conceptUri}): ISCO code {code!r} is not 1-4 digits"
            )
        by_uri[row.conceptUri] = Code(
            code=code,
            title=row.preferredLabel,
            level=len(code),
            level_name=LEVELS[len(code) - 1],
            parent=code[:-1] if len(code) > 1 else None,
            description=row.description,
            alt_titles=_unique(_split_labels(row.altLabels), exclude=[row.preferredLabel]),
            uri=row.conceptUri,
        )
    return by_uri


def _occupation_codes(occupations: pd.DataFrame, *, include_hidden_labels: bool) -> dict[str, Code]:
    by_uri: dict[str, Code] = {}
    for row in _rows(occupations):
        labels = _split_labels(row.altLabels)
        if include_hidden_labels:
            labels += _split_labels(row.hiddenLabels)
        by_uri[row.conceptUri] = Code(
            code=row.code,
            title=row.preferredLabel,
            level=OCCUPATION_LEVEL,
            level_name=LEVELS[-1],
            parent=row.iscoGroup,  # replaced by the broader relation when there is one
            description=row.description,
            alt_titles=_unique(labels, exclude=[row.preferredLabel]),
            uri=row.conceptUri,
        )
    return by_uri


def _resolve_parents(
    occ: dict[str, Code],
    groups: dict[str, Code],
    broader: pd.DataFrame | None,
    occ_name: str,
) -> None:
    """Point each occupation at its broader concept (occupation or ISCO unit group)."""
    group_by_code = {g.code: g for g in groups.values()}
    if broader is not None:
        rows = broader[broader["conceptType"].str.casefold() == "occupation"]
        unknown = 0
        for row in _rows(rows):
            child = occ.get(row.conceptUri)
            target = occ.get(row.broaderUri) or groups.get(row.broaderUri)
            if child is None or target is None:
                unknown += 1
                continue
            child.parent = target.code
        if unknown:
            log.warning(
                "broaderRelationsOccPillar: skipped %d relations naming occupations or groups "
                "that are not in %s",
                unknown,
                occ_name,
            )
    occ_by_code = {c.code for c in occ.values()}
    for code in occ.values():
        if code.parent not in group_by_code and code.parent not in occ_by_code:
            raise EscoFormatError(
                f"{occ_name}: occupation {code.code} ({code.uri}) has ISCO group "
                f"{code.parent!r}, which is not in ISCOGroups"
            )


def _link_skills(
    occ: dict[str, Code],
    skills: dict[str, Skill],
    relations: pd.DataFrame,
    *,
    have_skill_file: bool,
) -> None:
    skipped = 0
    seen: set[tuple[str, str]] = set()
    for row in _rows(relations):
        code = occ.get(row.occupationUri)
        skill = skills.get(row.skillUri)
        if code is None or (have_skill_file and skill is None):
            skipped += 1
            continue
        key = (row.occupationUri, row.skillUri)
        if key in seen:
            continue
        seen.add(key)
        code.skills.append(
            SkillLink(
                skill_id=row.skillUri,
                label=skill.label if skill is not None else "",
                relation=row.relationType,
                skill_type=row.skillType or (skill.skill_type if skill is not None else ""),
            )
        )
    if skipped:
        log.warning(
            "occupationSkillRelations: skipped %d relations naming unknown occupations or skills",
            skipped,
        )
