"""Fit a model's calibration sidecar on labeled real titles: ``autocoder calibrate``.

The sidecar (``calibration.json``, :mod:`autocoder.coding.trust`) is what gives a model its
calibrated confidence, ``--target-precision`` and partial codes. It belongs to one model: a
retrained model scores differently, so the sidecar of the model it started from does not fit
it. This module fits one from a table of real titles with their acceptable codes:

1. every candidate segment of each title is scored by the classifier and retrieval
   (:func:`autocoder.coding.trust.candidate_scores`);
2. the segment bonuses (:data:`SEGMENT_GRID`) with the best top-1 on the table are chosen
   (ties: the :class:`~autocoder.coding.trust.SegmentOptions` defaults, then the smaller
   bonuses), or no segments at all: the title as written, not normalised (:data:`AS_WRITTEN`),
   when that codes the table best. A model trained on an office's raw vacancy titles codes them
   best as written: on the JobBERT dev split the ESCO head coder has top-1 0.424 as written
   against 0.400 with the best segment bonuses (benchmarks/RESULTS.md);
3. one calibrator per level of the hierarchy and the thresholds of the stored target
   precisions are fitted (:func:`autocoder.coding.trust.fit_trust`);
4. with coded examples voting, how far an exact-title match can be trusted
   (:func:`autocoder.coding.trust.fit_exact_trust`): on the JobBERT titles an office's history
   gives the very title's code rightly only 152 times in 282, and the office's default
   ``exact_trust`` 0.95 made the calibrated coder's ECE 0.103 (0.063 with the fitted trust).

The rows should be real titles the model did not train on, like those it will code (clean and
messy): calibration measured on training rows is optimistic.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from autocoder.coding import trust as tr
from autocoder.examples.store import resolve_code
from autocoder.io import InputError
from autocoder.records import JobRecord, clean_text
from autocoder.taxonomy.model import Taxonomy

#: Whole-title and first-segment bonuses tried (``segments.choose``).
SEGMENT_GRID = ((-0.05, 0.0, 0.02, 0.05, 0.1), (0.0, 0.03, 0.06, 0.1))

#: The grid's key for coding each title as written (``SegmentOptions(enabled=False)``).
AS_WRITTEN = "as written"

#: Fewer labeled rows than this cannot support a threshold at a target precision.
MIN_ROWS = 100

#: Problems listed in the error for a table with bad rows (the rest are counted).
SHOWN_PROBLEMS = 10


@dataclass(frozen=True)
class CalibrationTable:
    """Labeled titles: ``titles[i]`` may be coded as any code of ``gold[i]``."""

    titles: list[str]
    gold: list[frozenset[str]]
    name: str = ""

    def __len__(self) -> int:
        return len(self.titles)


def calibration_table(
    df: pd.DataFrame,
    taxonomy: Taxonomy,
    *,
    title_column: str = "title",
    code_column: str = "codes",
    name: str = "",
) -> CalibrationTable:
    """The labeled rows of ``df``: each code cell holds one code or several separated by
    ``;`` (codes or, for ESCO, concept URIs). A row with an empty title or a code that is not a
    leaf code of ``taxonomy`` is an ``InputError`` naming the row (from 1) and the problem."""
    missing = [c for c in (title_column, code_column) if c not in df.columns]
    if missing:
        raise InputError(
            f"{name or 'calibration table'}: no column {', '.join(map(repr, missing))} "
            f"(columns: {', '.join(map(str, df.columns))}); name them with --title-column / "
            "--code-column"
        )
    titles, gold, problems = [], [], []
    for row, (title, cell) in enumerate(zip(df[title_column], df[code_column], strict=True), 1):
        text = clean_text(title)
        codes, whys = set(), []
        for part in clean_text(cell).split(";"):
            if part.strip():
                code, why = resolve_code(taxonomy, part.strip())
                if code is None:
                    whys.append(why)
                else:
                    codes.add(code)
        if not text:
            whys.insert(0, "empty title")
        if not codes and not whys:
            whys.append("empty code")
        if whys:
            problems.append(f"row {row} ({text!r}): {'; '.join(whys)}")
        titles.append(text)
        gold.append(frozenset(codes))
    if problems:
        more = len(problems) - SHOWN_PROBLEMS
        shown = "\n  ".join(problems[:SHOWN_PROBLEMS]) + (
            f"\n  ... {more} more" if more > 0 else ""
        )
        raise InputError(f"{name or 'calibration table'}: {len(problems)} bad rows:\n  {shown}")
    return CalibrationTable(titles, gold, name)


def top1(scores: tr.Scores, gold: Sequence[frozenset[str]]) -> float:
    """The share of rows whose top code is one of their acceptable codes."""
    top = scores.classes[scores.proba.argmax(axis=1)]
    return float(np.mean([t in g for t, g in zip(top, gold, strict=True)]))


def choose_segments(
    candidates: Sequence[tr.CandidateScores],
    gold: Sequence[frozenset[str]],
    *,
    as_written: Sequence[tr.CandidateScores] | None = None,
) -> tuple[tr.SegmentOptions, dict[str, float]]:
    """The bonuses of :data:`SEGMENT_GRID` with the best top-1 over ``candidates`` (chunks in
    the order of ``gold``), and the top-1 of each pair (``"whole:first"``). With
    ``as_written`` (the same chunks scored as written, ``SegmentOptions(enabled=False)``) the
    grid also holds :data:`AS_WRITTEN`, chosen only when it is strictly better than every pair."""
    grid: dict[str, float] = {}
    default = tr.SegmentOptions()
    for whole in SEGMENT_GRID[0]:
        for first in SEGMENT_GRID[1]:
            options = tr.SegmentOptions(whole_bonus=whole, first_bonus=first)
            scores = tr.concat([tr.choose(cs, options) for cs in candidates])
            grid[f"{whole}:{first}"] = top1(scores, gold)

    def rank(key: str) -> tuple[float, bool, float]:
        whole, first = (float(v) for v in key.split(":"))
        is_default = (whole, first) == (default.whole_bonus, default.first_bonus)
        return (round(grid[key], 4), is_default, -(abs(whole) + first))

    whole, first = (float(v) for v in max(grid, key=rank).split(":"))
    best = tr.SegmentOptions(whole_bonus=whole, first_bonus=first)
    if as_written is not None:
        plain = tr.SegmentOptions(enabled=False)
        written = top1(tr.concat([tr.choose(cs, plain) for cs in as_written]), gold)
        if round(written, 4) > round(max(grid.values()), 4):
            best = plain
        grid[AS_WRITTEN] = written
    return best, grid


def fit_sidecar(
    predictor: Any,
    taxonomy: Taxonomy,
    table: CalibrationTable,
    *,
    fitted_on: Mapping[str, Any],
    show_progress: bool = False,
) -> dict[str, Any]:
    """The calibration sidecar of ``predictor`` (a retrieval coder or a model mixed with
    retrieval) fitted on ``table``; JSON-ready, ``fitted_on`` recorded with the segment grid.
    A predictor with coded examples voting (``WithExamples``) is calibrated as ``autocoder
    code`` scores with it: its base's segment scores with the examples' votes blended in."""
    from autocoder.coding.examples import WithExamples

    base = predictor.base if isinstance(predictor, WithExamples) else predictor
    if len(table) < MIN_ROWS:
        raise ValueError(
            f"{len(table)} labeled rows cannot calibrate a model; give at least {MIN_ROWS} "
            "real titles it did not train on"
        )
    from tqdm.auto import tqdm

    records = [JobRecord(t) for t in table.titles]
    starts = range(0, len(records), tr.CHUNK)
    candidates = [
        tr.candidate_scores(base, records[i : i + tr.CHUNK], tr.SegmentOptions())
        for i in tqdm(starts, desc="calibrate", unit="chunk", disable=not show_progress)
    ]
    as_written = [
        tr.candidate_scores(base, records[i : i + tr.CHUNK], tr.SegmentOptions(enabled=False))
        for i in starts
    ]
    options, grid = choose_segments(candidates, table.gold, as_written=as_written)
    if not options.enabled:
        candidates = as_written
    chosen = [
        tr.examples_voted(predictor, tr.choose(cs, options), records[start : start + tr.CHUNK])
        for start, cs in zip(starts, candidates, strict=True)
    ]
    scores = tr.concat(chosen)
    levels = tr.hierarchy(taxonomy, [str(c) for c in scores.classes])
    trust = tr.fit_trust(
        scores,
        table.gold,
        levels,
        options=options,
        fitted_on={**fitted_on, "rows": len(table), "top1": top1(scores, table.gold),
                   "segment_grid_top1": grid},
    )  # fmt: skip
    exact = tr.fit_exact_trust(predictor, records, table.gold)
    if exact is not None:
        trust["exact"] = exact
    return trust
