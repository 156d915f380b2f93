"""Emerging occupations on synthetic blobs: candidates, HDBSCAN clusters, terms, report, names."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from autocoder.index import SearchResult
from autocoder.llm.prompts import load_prompt
from autocoder.records import JobRecord
from autocoder.review.emerging import (
    Cluster,
    cluster_terms,
    find_emerging,
    flagged_records,
    name_clusters,
    report_paths,
    write_report,
)

DIM = 12


class VectorIndex:
    """Codes as unit vectors; ``search`` ranks them by cosine (stands in for the code index)."""

    def __init__(self, codes: list[str], vectors: np.ndarray) -> None:
        self.codes = codes
        self.M = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)

    def search(self, vectors: np.ndarray, k: int) -> SearchResult:
        X = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        sims = X @ self.M.T
        out = SearchResult(codes=[], scores=[], evidence=[])
        for row in sims:
            top = np.argsort(-row)[:k]
            out.codes.append([self.codes[j] for j in top])
            out.scores.append(row[top].astype(np.float32))
            out.evidence.append(["" for _ in top])
        return out


@pytest.fixture
def world():
    """Two codes on axes 0 and 1; two new occupations on axes 5 and 8; words keyed to axes."""
    rng = np.random.default_rng(0)
    axes = {"nurse": 0, "driver": 1, "prompt": 5, "drone": 8}

    def vec(word: str) -> np.ndarray:
        v = np.zeros(DIM)
        v[axes[word]] = 1.0
        return v + rng.normal(scale=0.05, size=DIM)

    table = {}

    def embed(records: list[JobRecord]) -> np.ndarray:
        out = []
        for r in records:
            if r.title not in table:
                word = next(w for w in axes if w in r.title)
                table[r.title] = vec(word)
            out.append(table[r.title])
        return np.asarray(out)

    index = VectorIndex(
        ["29-1141.00", "53-3032.00"], np.eye(DIM)[[0, 1]] + 0.3 * np.eye(DIM)[[5, 8]]
    )
    titles = {"29-1141.00": "Registered Nurses", "53-3032.00": "Truck Drivers"}
    return embed, index, titles


def _records(prefix: str, word: str, n: int, extra: str) -> list[dict]:
    return [
        {"id": f"{prefix}{i}", "title": f"{word} {extra} {i}", "description": ""} for i in range(n)
    ]


def test_find_emerging_clusters_flagged_and_far_records(world, tmp_path) -> None:
    embed, index, titles = world
    feedback = pd.DataFrame(
        _records("f", "prompt", 6, "engineer")
        + [{"id": "n1", "title": "nurse on ward", "description": ""}]
    ).assign(project="p", emerging=[True] * 6 + [False], code=[""] * 6 + ["29-1141.00"])
    records = pd.DataFrame(
        _records("d", "drone", 7, "pilot")
        + _records("k", "nurse", 10, "staff")  # close to a code: not a candidate
        + _records("f", "prompt", 2, "engineer")  # same titles as flagged: kept once
    )
    flagged = flagged_records(feedback)
    assert len(flagged) == 6
    result = find_emerging(
        flagged, records, embed, index, titles, min_similarity=0.5, min_cluster_size=4
    )
    s = result.summary()
    assert s["candidates"] == 13 and s["clusters"] == 2 and s["unclustered"] == 0
    assert s["flagged"] == 6 and s["far"] == 9  # 7 drone + the 2 prompt titles also far
    big, small = result.clusters
    assert big.size == 7 and small.size == 6
    assert big.terms[:2] == ["drone", "pilot"] and small.terms[:2] == ["engineer", "prompt"]
    assert big.flagged == 0 and big.far == 7 and small.flagged == 6
    assert big.nearest[0][0] == "53-3032.00" and big.nearest[0][1] == "Truck Drivers"
    assert small.nearest[0][0] == "29-1141.00"
    assert all(t.startswith("drone pilot") for t in big.representative)
    assert set(big.ids) == {f"d{i}" for i in range(7)}
    md, csv = write_report(result, tmp_path / "report.md")
    text = md.read_text()
    assert "## cluster" in text and "drone pilot" in text and "53-3032.00 Truck Drivers" in text
    table = pd.read_csv(csv)
    assert list(table["size"]) == [7, 6]
    assert table["nearest_codes"][0].startswith("53-3032.00 Truck Drivers")


def test_nothing_to_cluster(world, tmp_path) -> None:
    embed, index, titles = world
    result = find_emerging(pd.DataFrame(), pd.DataFrame(), embed, index, titles)
    assert result.summary()["candidates"] == 0 and result.clusters == []
    md, csv = write_report(result, tmp_path / "out")
    assert md == tmp_path / "out" / "emerging.md" and csv.exists()
    few = pd.DataFrame(_records("d", "drone", 2, "pilot"))
    result = find_emerging(pd.DataFrame(), few, embed, index, titles, min_cluster_size=5)
    assert result.summary()["unclustered"] == 2 and not result.clusters


def test_cluster_terms_prefer_distinctive_words() -> None:
    terms = cluster_terms(
        {0: ["data annotator", "data labeler", "data annotator"], 1: ["data pipeline", "pipeline"]}
    )
    assert terms[0][0] == "data" and "annotator" in terms[0][:2]
    assert terms[1][0] == "pipeline"


def test_report_paths() -> None:
    assert report_paths("x/rep.csv")[0].name == "rep.md"
    assert report_paths("x/rep")[1].name == "emerging.csv"


def _cluster(label: int) -> Cluster:
    return Cluster(
        label,
        ["a"],
        ["drone pilot"],
        ["drone pilot"],
        ["drone"],
        [("53-3032.00", "Truck Drivers", 0.3)],
        0,
        1,
        0.3,
    )


def test_name_clusters_with_a_model_answer_and_a_failure() -> None:
    prompt = load_prompt("emerging_name", "v1")
    seen = []

    def model(messages, *, schema=None, grammar=None):
        seen.append(messages[-1]["content"])
        if "fail" in messages[-1]["content"]:
            raise RuntimeError("endpoint down")
        return {"name": "  Drone   Pilots ", "rationale": "fly drones, not trucks"}

    ok, bad = _cluster(0), _cluster(1)
    bad.representative = ["fail"]
    assert name_clusters([ok, bad], model, prompt, taxonomy_name="O*NET-SOC 2019") == 1
    assert ok.name == "Drone Pilots" and ok.rationale == "fly drones, not trucks"
    assert bad.name == ""
    assert "- drone pilot" in seen[0] and "53-3032.00 - Truck Drivers" in seen[0]
    assert "O*NET-SOC 2019" in seen[0]


def test_emerging_report_needs_a_coder_with_the_code_index(tmp_path) -> None:
    from autocoder.coding.loaded import LoadedCoder
    from autocoder.config import load_settings
    from autocoder.review.emerging import emerging_report
    from autocoder.workspace import Workspace
    from tests.fakes import KeywordPredictor

    model_alone = LoadedCoder.from_predictor(KeywordPredictor({"nurse": "29-1141.00"}))
    with pytest.raises(ValueError, match="--model retrieval"):
        emerging_report(model_alone, load_settings(), Workspace.resolve(tmp_path), tmp_path / "r")
