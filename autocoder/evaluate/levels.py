"""Hierarchy levels: functions mapping a code to its ancestor at one level of the taxonomy."""

from __future__ import annotations

import re
from collections.abc import Collection
from typing import TYPE_CHECKING

from autocoder.metrics import LevelFn
from autocoder.taxonomy.onet import soc_groups

if TYPE_CHECKING:
    from autocoder.taxonomy.model import Taxonomy

ONET_RE = re.compile(r"^\d{2}-\d{4}(\.\d{2})?$")
ISCO_RE = re.compile(r"^\d{1,4}(\.\d+)*$")


def _onet_major(code: str) -> str | None:
    return code[:2] + "-0000" if ONET_RE.match(code) else None


def _onet_minor(code: str) -> str | None:
    # soc_groups is the rule the O*NET import builds the hierarchy with (SOC 2018 exceptions)
    return soc_groups(code)[1] if ONET_RE.match(code) else None


def _onet_broad(code: str) -> str | None:
    return soc_groups(code)[2] if ONET_RE.match(code) else None


def _onet_detailed(code: str) -> str | None:
    return code[:7] if ONET_RE.match(code) else None


def _onet_code(code: str) -> str | None:
    return code if ONET_RE.match(code) else None


def _isco_prefix(n_digits: int) -> LevelFn:
    def level_fn(code: str) -> str | None:
        if not ISCO_RE.match(code):
            return None
        digits = code.split(".")[0]
        return digits[:n_digits] if len(digits) >= n_digits else None

    level_fn.__name__ = f"isco_{n_digits}_digit"
    return level_fn


def _isco_code(code: str) -> str | None:
    return code if ISCO_RE.match(code) else None


def structural_level_fns(scheme: str) -> dict[str, LevelFn]:
    """Level functions read off the code itself, top level first, no taxonomy needed.

    ``"onet"`` (O*NET-SOC ``11-1011.03``): major ``11-0000``, minor ``11-1000`` (SOC 2018
    exceptions ``15-1200``, ``31-1100``, ``51-5100``), broad ``11-1010`` (exception: ``29-1221``
    to ``29-1229`` are in ``29-1210`` Physicians), detailed ``11-1011``,
    onet (the full code). ``"isco"``: the 1- to 4-digit prefixes major, sub_major, minor, unit.
    ``"esco"``: the ISCO levels plus occupation (the full ESCO code such as ``2654.1.7``).
    A code that does not fit the scheme maps to None (never counted correct).
    """
    scheme = scheme.lower()
    if scheme in ("onet", "o*net", "soc", "onet-soc"):
        return {
            "major": _onet_major,
            "minor": _onet_minor,
            "broad": _onet_broad,
            "detailed": _onet_detailed,
            "onet": _onet_code,
        }
    if scheme in ("isco", "isco-08", "esco"):
        fns: dict[str, LevelFn] = {
            "major": _isco_prefix(1),
            "sub_major": _isco_prefix(2),
            "minor": _isco_prefix(3),
            "unit": _isco_prefix(4),
        }
        if scheme == "esco":
            fns["occupation"] = _isco_code
        return fns
    raise ValueError(f"unknown code scheme {scheme!r}; use 'onet', 'isco' or 'esco'")


def detect_scheme(codes: Collection[str]) -> str | None:
    """``"onet"`` or ``"isco"`` when every (non-empty) code fits that pattern, else None."""
    codes = [c for c in codes if c]
    if not codes:
        return None
    if all(ONET_RE.match(c) for c in codes):
        return "onet"
    if all(ISCO_RE.match(c) for c in codes):
        return "isco" if all("." not in c for c in codes) else "esco"
    return None


def _norm_level(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def _taxonomy_scheme(taxonomy: Taxonomy) -> str | None:
    scheme = detect_scheme(taxonomy.leaf_codes()[:500])
    if scheme is None:
        name = taxonomy.name.lower()
        scheme = "onet" if "onet" in name or "o*net" in name else None
    return scheme


def hierarchy_level_fns(taxonomy: Taxonomy, *, scheme: str | None = None) -> dict[str, LevelFn]:
    """One function per taxonomy level (top first): ``code -> ancestor at that level``.

    Codes in the taxonomy use ``taxonomy.parent(code, level)``. Others fall back to
    :func:`structural_level_fns` for ``scheme`` (detected from the taxonomy's leaf codes when not
    given), matched to the taxonomy's levels by name, else by position from the top.
    """
    if scheme is None:
        scheme = _taxonomy_scheme(taxonomy)
    structural = structural_level_fns(scheme) if scheme else {}
    by_name = {_norm_level(k): v for k, v in structural.items()}
    positional = list(structural.values())
    any_by_name = any(_norm_level(lv) in by_name for lv in taxonomy.levels)

    fns: dict[str, LevelFn] = {}
    for i, level in enumerate(taxonomy.levels):
        fallback = by_name.get(_norm_level(level))
        if fallback is None and not any_by_name:
            fallback = positional[i] if i < len(positional) else None
        fns[level] = _taxonomy_level_fn(taxonomy, level, fallback)
    return fns


def _taxonomy_level_fn(taxonomy: Taxonomy, level: str, fallback: LevelFn | None) -> LevelFn:
    def level_fn(code: str) -> str | None:
        if not code:
            return None
        if code in taxonomy:
            return taxonomy.parent(code, level)
        return fallback(code) if fallback is not None else None

    level_fn.__name__ = f"level_{level}"
    return level_fn
