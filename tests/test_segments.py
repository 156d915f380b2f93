"""Posting-title segmentation (autocoder.segments): candidates and the choice against an index."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from autocoder import segments as seg
from autocoder.coding.retrieval import RetrievalCoder
from autocoder.coding.trust import retrieval_scores
from autocoder.index import MemoryIndex
from autocoder.records import JobRecord
from tests.fakes import HashingEmbedder, mini_taxonomy


def test_candidates_whole_title_first_then_segments() -> None:
    cand = seg.candidates("cake decorator, hy-vee")
    assert cand.texts == ("cake decorator, hy-vee", "cake decorator", "hy-vee")
    assert cand.positions == (0, 1, 2) and cand.n_segments == 2
    assert seg.candidates("Kitchen Helper/Dishwasher").texts == ("Kitchen Helper/Dishwasher",)
    parts = seg.candidates("Technician (Mechanical) - Acme at Big Co | Remote").texts
    assert "Technician" in parts and "Mechanical" in parts


def test_choose_prefers_similarity_then_bonuses() -> None:
    sim = np.array([0.5, 0.7, 0.2, 0.9])
    owner = np.array([0, 0, 0, 1])
    position = np.array([0, 1, 2, 0])
    assert seg.choose(sim, owner, position).tolist() == [1, 3]
    assert seg.choose(sim, owner, position, whole_bonus=0.25).tolist() == [0, 3]
    with pytest.raises(ValueError, match="same length"):
        seg.choose(sim, owner[:2], position)


def _retrieval() -> RetrievalCoder:
    tax, embedder = mini_taxonomy(), HashingEmbedder(256)
    index = MemoryIndex()
    index.build(tax, embedder)
    return RetrievalCoder(index, embedder, classes=tax.leaf_codes(), top_k=5).fit()


def _choose(retrieval: RetrievalCoder, titles: list[str]) -> list[str]:
    cands = [seg.candidates(t) for t in titles]
    texts, owner, position = seg.flatten(cands)
    _, sim = retrieval_scores(retrieval, [JobRecord(t) for t in texts], retrieval.classes_)
    return [texts[i] for i in seg.choose(sim, owner, position, first_bonus=0.03)]


def test_employer_segment_is_dropped() -> None:
    chosen = _choose(_retrieval(), ["software engineer, hy-vee", "acme widgets, staff nurse"])
    assert chosen == ["software engineer", "staff nurse"]


@pytest.mark.shared_data
def test_segment_choice_on_real_posting_strings(shared_data_dir: Path) -> None:
    """Real titles from the TGRE file ("title, employer"): the occupation segment is coded and
    the employer dropped (the mini index knows software, nursing, sales and statistics)."""
    titles = pd.read_csv(shared_data_dir / "tgre_posting_titles" / "job_titles_unlabeled.csv")
    heads = ("registered nurse", "software engineer", "sales representative", "statistician")
    real = [t for t in titles["sentence"].astype(str) if t.split(",")[0].strip() in heads]
    assert len(real) >= 10, "the file has many nurse / engineer / sales titles"
    chosen = _choose(_retrieval(), real)
    assert chosen == [t.split(",")[0].strip() for t in real]
