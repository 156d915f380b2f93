"""Skill data: the ESCO skill catalogue, occupation–skill relations and the validation sets.

The catalogue comes from an imported ESCO taxonomy (``autocoder taxonomy import esco``), whose
:class:`~autocoder.taxonomy.model.Taxonomy` holds every skill (URI, preferred label, alternate
labels, description) and every occupation's essential/optional skill links.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from autocoder.taxonomy.model import Taxonomy

NO_LABEL = ("LABEL NOT PRESENT", "UNDERSPECIFIED")


class SkillDataError(ValueError):
    """Skill data is missing or malformed; the message names the file or record."""


@dataclass
class SkillCatalog:
    """ESCO skills in a fixed order: ``uris[i]`` has ``labels[i]``, ``alt_labels[i]`` …"""

    uris: list[str]
    labels: list[str]
    alt_labels: list[list[str]]
    descriptions: list[str]
    skill_types: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.uris)

    @property
    def fingerprint(self) -> str:
        """Changes when the skills or their labels change (keys caches of label embeddings)."""
        h = hashlib.sha1()
        for uri, label in zip(self.uris, self.labels, strict=True):
            h.update(f"{uri}\x00{label}\x01".encode())
        return h.hexdigest()[:16]

    def index_of_label(self) -> dict[str, int]:
        return {label: i for i, label in enumerate(self.labels)}

    @classmethod
    def from_taxonomy(cls, taxonomy: Taxonomy) -> SkillCatalog:
        if not taxonomy.skills:
            raise SkillDataError(
                f"taxonomy {taxonomy.name} {taxonomy.version} has no skills; import the ESCO "
                "CSV export with skills_en.csv (`autocoder taxonomy import esco PATH`)"
            )
        skills = sorted(taxonomy.skills.values(), key=lambda s: s.skill_id)
        return cls(
            uris=[s.skill_id for s in skills],
            labels=[s.label for s in skills],
            alt_labels=[list(s.alt_labels) for s in skills],
            descriptions=[s.description for s in skills],
            skill_types=[s.skill_type for s in skills],
        )


def occupation_skill_table(taxonomy: Taxonomy) -> pd.DataFrame:
    """One row per (occupation, skill) link: ``code, title, isco1..4, skill_uri, skill_label,
    relation`` — from the taxonomy's essential/optional (ESCO) or technology (O*NET) links."""
    rows = []
    for occ in taxonomy.leaves():
        groups = {lvl: taxonomy.parent(occ.code, lvl) or "" for lvl in (1, 2, 3, 4)}
        for link in occ.skills:
            rows.append(
                {
                    "code": occ.code,
                    "title": occ.title,
                    **{f"isco{lvl}": g for lvl, g in groups.items()},
                    "skill_uri": link.skill_id,
                    "skill_label": link.label,
                    "relation": link.relation,
                }
            )
    cols = ["code", "title", "isco1", "isco2", "isco3", "isco4"]
    cols += ["skill_uri", "skill_label", "relation"]
    return pd.DataFrame(rows, columns=cols)


@dataclass
class GoldSentence:
    sentence: str
    labels: list[str]


def read_annotations(path: str | Path) -> list[GoldSentence]:
    """Decorte et al. TECH/HOUSE annotations (``sentence, span, sub_span, label``) → one
    :class:`GoldSentence` per sentence, keeping sentences with at least one real ESCO label."""
    path = Path(path)
    if not path.is_file():
        raise SkillDataError(f"{path}: annotation file not found")
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = {"sentence", "label"} - set(frame.columns)
    if missing:
        raise SkillDataError(f"{path}: missing column(s) {sorted(missing)}")
    gold: dict[str, list[str]] = {}
    for sentence, label in zip(frame["sentence"], frame["label"], strict=True):
        labels = gold.setdefault(str(sentence), [])
        if label and label not in NO_LABEL and label not in labels:
            labels.append(str(label))
    return [GoldSentence(s, labels) for s, labels in gold.items() if labels]


def read_onet_technology(path: str | Path) -> pd.DataFrame:
    """O*NET ``Technology Skills.txt`` (tab-separated) → ``code, example, commodity, hot``."""
    path = Path(path)
    file = path / "Technology Skills.txt" if path.is_dir() else path
    if not file.is_file():
        raise SkillDataError(f"{file}: O*NET Technology Skills file not found")
    frame = pd.read_csv(file, sep="\t", dtype=str, keep_default_na=False)
    need = ["O*NET-SOC Code", "Example", "Commodity Title", "Hot Technology"]
    missing = [c for c in need if c not in frame.columns]
    if missing:
        raise SkillDataError(f"{file}: missing column(s) {missing}")
    out = frame[need].copy()
    out.columns = ["code", "example", "commodity", "hot"]
    out["hot"] = out["hot"].eq("Y")
    return out


def unique(texts: Iterable[str]) -> list[str]:
    seen: set[str] = set()
    out = []
    for t in texts:
        if t and t not in seen:
            seen.add(t)
            out.append(t)
    return out


def split_gold(
    gold: list[GoldSentence], *, dev_fraction: float = 0.5, seed: int = 0
) -> tuple[list[GoldSentence], list[GoldSentence]]:
    """``(tuning, dev)``: each sentence goes by a hash of ``seed`` and its text, so the split
    does not depend on the file's order or on other sentences (and a sentence met twice lands
    on one side). Choices are made on tuning; dev is only reported."""
    if not 0 < dev_fraction < 1:
        raise ValueError(f"dev_fraction must be in (0, 1), not {dev_fraction}")
    tuning: list[GoldSentence] = []
    dev: list[GoldSentence] = []
    for g in gold:
        digest = hashlib.sha1(f"{seed}\x00{g.sentence}".encode()).digest()
        (dev if int.from_bytes(digest[:8], "big") / 2**64 < dev_fraction else tuning).append(g)
    return tuning, dev
