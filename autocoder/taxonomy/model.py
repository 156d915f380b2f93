"""The typed taxonomy model shared by every importer.

A ``Taxonomy`` holds every node of the hierarchy (groups and occupations) as ``Code`` objects.
Leaf occupations carry the texts used for retrieval and training: title, alternate titles,
reported (real-world) titles, description and tasks, and links to skills.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

TEXT_KINDS = ("title", "alt_title", "reported_title", "description", "task")
FORMAT_VERSION = 1


@dataclass
class SkillLink:
    """A link from an occupation to a skill, tool or technology."""

    skill_id: str
    label: str
    relation: str  # "essential" | "optional" | "technology" | "tool"
    skill_type: str = ""  # e.g. "skill/competence", "knowledge", commodity title
    hot: bool = False


@dataclass
class Code:
    code: str
    title: str
    level: int  # 1 = top of the hierarchy
    level_name: str
    parent: str | None = None
    description: str = ""
    alt_titles: list[str] = field(default_factory=list)
    reported_titles: list[str] = field(default_factory=list)
    tasks: list[str] = field(default_factory=list)
    skills: list[SkillLink] = field(default_factory=list)
    uri: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Code:
        data = dict(data)
        data["skills"] = [SkillLink(**s) for s in data.get("skills", [])]
        return cls(**data)


@dataclass
class Skill:
    skill_id: str
    label: str
    skill_type: str = ""
    alt_labels: list[str] = field(default_factory=list)
    description: str = ""


class Taxonomy:
    """An imported taxonomy release.

    ``levels`` names the hierarchy levels from the top (index 0 = level 1). Leaves are the codes
    at ``leaf_level`` (O*NET-SOC 8-digit codes, ESCO occupations); they are what gets coded.
    """

    def __init__(
        self,
        name: str,
        version: str,
        levels: list[str],
        codes: list[Code],
        *,
        skills: list[Skill] | None = None,
        source: str = "",
        leaf_level: int | None = None,
        holdout: str = "",
        holdout_file: str = "",
    ) -> None:
        self.name = name
        self.version = version
        self.levels = list(levels)
        self.source = source
        self.holdout = holdout  # what was held out of the texts (e.g. a dev split), "" = nothing
        self.holdout_file = holdout_file  # the held-out table (id, title, codes), "" = none
        self.leaf_level = leaf_level if leaf_level is not None else len(self.levels)
        self._codes: dict[str, Code] = {}
        for c in codes:
            if c.code in self._codes:
                raise ValueError(f"duplicate code {c.code!r} in taxonomy {name}")
            self._codes[c.code] = c
        self.skills: dict[str, Skill] = {s.skill_id: s for s in (skills or [])}
        self._by_uri = {c.uri: c.code for c in codes if c.uri}

    # --- lookup -----------------------------------------------------------------------------
    def __contains__(self, code: object) -> bool:
        return code in self._codes

    def __len__(self) -> int:
        return len(self._codes)

    def __iter__(self) -> Iterator[Code]:
        return iter(self._codes.values())

    @property
    def codes(self) -> list[str]:
        return list(self._codes)

    def get(self, code: str) -> Code:
        try:
            return self._codes[code]
        except KeyError:
            raise KeyError(f"code {code!r} is not in taxonomy {self.name} {self.version}") from None

    def has_uri(self, uri: str) -> bool:
        return uri in self._by_uri

    def by_uri(self, uri: str) -> Code:
        try:
            return self._codes[self._by_uri[uri]]
        except KeyError:
            raise KeyError(f"URI {uri!r} is not in taxonomy {self.name} {self.version}") from None

    def is_leaf(self, code: str) -> bool:
        """Whether ``code`` is a codable occupation: at the leaf level, even when narrower
        occupations sit below it (nested ESCO occupations)."""
        return self.get(code).level >= self.leaf_level

    def leaves(self) -> list[Code]:
        """The codable occupations (``is_leaf``), in stable order."""
        return [c for c in self._codes.values() if self.is_leaf(c.code)]

    def leaf_codes(self) -> list[str]:
        return [c.code for c in self.leaves()]

    def children(self, code: str) -> list[Code]:
        return [c for c in self._codes.values() if c.parent == code]

    def ancestors(self, code: str) -> list[Code]:
        """From the top of the hierarchy down to (and including) ``code``."""
        chain: list[Code] = []
        node: Code | None = self.get(code)
        seen: set[str] = set()
        while node is not None and node.code not in seen:
            seen.add(node.code)
            chain.append(node)
            node = self._codes.get(node.parent) if node.parent else None
        return list(reversed(chain))

    def parent(self, code: str, level: int | str) -> str | None:
        """The ancestor of ``code`` at ``level`` (number from 1 or level name), or None."""
        if isinstance(level, str):
            if level not in self.levels:
                raise ValueError(f"unknown level {level!r}; levels are {self.levels}")
            level = self.levels.index(level) + 1
        for node in reversed(self.ancestors(code)):  # nearest first: nested ESCO occupations
            if node.level == level:
                return node.code
        return None

    def texts(
        self, code: str, kinds: tuple[str, ...] | list[str] = TEXT_KINDS
    ) -> list[tuple[str, str]]:
        """``(kind, text)`` pairs describing a code: title, alternate titles, description, tasks."""
        c = self.get(code)
        out: list[tuple[str, str]] = []
        if "title" in kinds and c.title:
            out.append(("title", c.title))
        if "alt_title" in kinds:
            out.extend(("alt_title", t) for t in c.alt_titles)
        if "reported_title" in kinds:
            out.extend(("reported_title", t) for t in c.reported_titles)
        if "description" in kinds and c.description:
            out.append(("description", c.description))
        if "task" in kinds:
            out.extend(("task", t) for t in c.tasks)
        return out

    # --- persistence --------------------------------------------------------------------------
    def meta(self) -> dict:
        return {
            "format_version": FORMAT_VERSION,
            "name": self.name,
            "version": self.version,
            "levels": self.levels,
            "leaf_level": self.leaf_level,
            "source": self.source,
            "holdout": self.holdout,
            "holdout_file": self.holdout_file,
            "n_codes": len(self._codes),
            "n_leaves": len(self.leaves()),
            "n_skills": len(self.skills),
        }

    def save(self, directory: str | Path) -> Path:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "taxonomy.json").write_text(json.dumps(self.meta(), indent=2))
        with gzip.open(directory / "codes.json.gz", "wt", encoding="utf-8") as fh:
            json.dump([c.to_dict() for c in self._codes.values()], fh)
        with gzip.open(directory / "skills.json.gz", "wt", encoding="utf-8") as fh:
            json.dump([asdict(s) for s in self.skills.values()], fh)
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> Taxonomy:
        directory = Path(directory)
        meta_path = directory / "taxonomy.json"
        if not meta_path.exists():
            raise FileNotFoundError(f"no taxonomy store at {directory} (missing taxonomy.json)")
        meta = json.loads(meta_path.read_text())
        with gzip.open(directory / "codes.json.gz", "rt", encoding="utf-8") as fh:
            codes = [Code.from_dict(d) for d in json.load(fh)]
        skills: list[Skill] = []
        skills_path = directory / "skills.json.gz"
        if skills_path.exists():
            with gzip.open(skills_path, "rt", encoding="utf-8") as fh:
                skills = [Skill(**d) for d in json.load(fh)]
        return cls(
            meta["name"],
            meta["version"],
            meta["levels"],
            codes,
            skills=skills,
            source=meta.get("source", ""),
            holdout=meta.get("holdout", ""),
            holdout_file=meta.get("holdout_file", ""),
            leaf_level=meta.get("leaf_level"),
        )
