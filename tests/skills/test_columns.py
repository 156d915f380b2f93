"""`autocoder code --skills K`: the coding output gets each coded record's top-K ESCO skills."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from autocoder.coding import code_frame
from autocoder.coding.batch import code_file
from autocoder.coding.loaded import LoadedCoder
from autocoder.config import CoderConfig
from autocoder.io import write_table
from autocoder.skills.columns import SkillColumns
from autocoder.skills.extract import SkillExtractor
from tests.fakes import KeywordPredictor
from tests.skills.test_extract import CATALOG

KEYWORDS = {"nurse": "29-1141.00", "java": "15-1252.00", "cook": "35-2014.00"}


class CountingExtractor:
    def __init__(self, inner: SkillExtractor) -> None:
        self.inner = inner
        self.texts: list[str] = []

    def rank(self, texts, top_k=None):
        self.texts += list(texts)
        return self.inner.rank(texts, top_k=top_k)


def _records() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "id": ["a", "b", "", "d", "e"],
            "title": ["Java developer", "Cook", "Nurse", "", "Java developer"],
            "description": ["writes SQL and Python", "cook meals", "", "", "writes SQL and Python"],
        }
    )


def test_code_file_adds_top_k_skills_per_coded_record_in_one_pass(tmp_path: Path, bow) -> None:
    src, out = tmp_path / "in.parquet", tmp_path / "out.parquet"
    write_table(_records(), src)
    opts = CoderConfig(top_n=1, threshold=0.0, batch_size=2)
    coder = LoadedCoder.from_predictor(KeywordPredictor(KEYWORDS))
    counting = CountingExtractor(SkillExtractor(bow).fit(CATALOG))
    extra = SkillColumns(counting, 2, "bow")
    code_file(src, out, coder=coder, runs_dir=tmp_path / "runs", options=opts,
              show_progress=False, extra=extra)  # fmt: skip
    table = pd.read_parquet(out)
    assert list(table.columns[-2:]) == ["skills", "skill_uris"]
    first = table.loc[0, "skills"].split("; ")
    assert len(first) == 2 and set(first) == {"SQL", "Python (computer programming)"}
    assert set(table.loc[0, "skill_uris"].split(";")) == {"u:sql", "u:py"}
    assert table.loc[1, "skills"].split("; ")[0] == "cook meals"
    assert table.loc[2, "skills"] == "" and table.loc[3, "skills"] == ""  # error rows
    assert table.loc[4, "skills"] == table.loc[0, "skills"]
    assert len(counting.texts) == len(set(counting.texts)) == 2  # each distinct record once
    frame = code_frame(coder, _records(), opts, extra=SkillColumns(counting.inner, 2, "bow"))
    pd.testing.assert_frame_equal(frame, table)


def test_skill_columns_change_the_job_key_and_reject_k_below_one(bow) -> None:
    ex = SkillExtractor(bow).fit(CATALOG)
    assert SkillColumns(ex, 2, "bow").key != SkillColumns(ex, 3, "bow").key
    with pytest.raises(ValueError, match="at least 1"):
        SkillColumns(ex, 0, "bow")
