"""Against a real llama.cpp server (started by scripts/test.sh with `autocoder llm-server`).

The server's model is tiny (Gemma 3 270M): these tests check the protocol and the plumbing —
structured answers that parse, codes only from the candidates, provenance, files written — not
the quality of the choices. Set AUTOCODER_TEST_LLM_BASE_URL (and AUTOCODER_TEST_LLM_MODEL if the
alias is not gemma3-270m) to run them.
"""

from __future__ import annotations

import json
import os

import pandas as pd
import pytest

from autocoder import api
from autocoder.augment import SYNTH_COLUMNS
from autocoder.config import load_settings
from autocoder.embed import Embedder
from autocoder.index import make_index
from autocoder.labeler import OUTPUT_COLUMNS
from autocoder.taxonomy.store import save_taxonomy
from autocoder.workspace import Workspace
from tests.fakes import mini_taxonomy

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def llm_url() -> str:
    url = os.environ.get("AUTOCODER_TEST_LLM_BASE_URL")
    if not url:
        pytest.skip(
            "AUTOCODER_TEST_LLM_BASE_URL is not set: run `autocoder llm-server start` and export "
            "AUTOCODER_TEST_LLM_BASE_URL=http://127.0.0.1:8001/v1"
        )
    return url


@pytest.fixture(scope="module")
def env(llm_url, tmp_path_factory):
    """Settings pointing at the server, a workspace with a Chroma index of a tiny taxonomy."""
    model = os.environ.get("AUTOCODER_TEST_LLM_MODEL", "gemma3-270m")
    settings = load_settings(
        overrides=[
            f"llm.base_url={llm_url}",
            f"llm.model={model}",
            "llm.concurrency=1",
            "llm.timeout=240",
            "llm.max_retries=1",
            "llm.max_tokens=300",
            "index.backend=chroma",
        ]
    )
    ws = Workspace.resolve(tmp_path_factory.mktemp("ws"))
    tax = mini_taxonomy()
    save_taxonomy(ws, tax)  # api.label / api.synth load it from the workspace
    embedder = Embedder.from_settings(settings.embedder, ws.embedding_cache)
    make_index(settings, ws, tax, embedder).build(tax, embedder, show_progress=False)
    return settings, ws, tax, model


def test_label_file_against_local_server(env, tmp_path):
    settings, ws, tax, model = env
    src = tmp_path / "records.csv"
    pd.DataFrame(
        [
            ("r1", "ICU staff nurse", "Monitor patients and give medications", "29-1141.00"),
            ("r2", "Java developer", "Write and test code for web applications", "41-2031.00"),
            ("r3", "Shop assistant", "Serve customers at the till", "41-2031.00"),
        ],
        columns=["id", "title", "description", "code"],
    ).to_csv(src, index=False)
    out_path = tmp_path / "labels.csv"
    summary = api.label(settings, ws, src, out_path, taxonomy_name=tax.name, show_progress=False)
    out = pd.read_csv(out_path, dtype=str, keep_default_na=False)
    assert list(out.columns) == OUTPUT_COLUMNS and out["id"].tolist() == ["r1", "r2", "r3"]
    assert summary["llm_errors"] == 0, out["error"].tolist()
    assert set(out["status"]) <= {"ok", "rejected"}
    for _, row in out.iterrows():
        candidates = row["candidates"].split(";")
        assert len(candidates) == 5 and set(candidates) <= set(tax.leaf_codes())
        if row["status"] == "ok":
            assert row["chosen_code"] in candidates
            assert set(json.loads(row["relevance"])) == set(candidates)
            assert row["agrees"] == str(row["chosen_code"] == row["given_code"])
        else:
            assert row["chosen_code"] == ""
    assert set(out["prompt_version"]) == {"rag_pick.v1"} and set(out["model"]) == {model}
    assert summary["labelled_rows"] == 3 and summary["llm_requests"] == 3
    calls = [json.loads(line) for line in (ws.runs / "llm-calls.jsonl").read_text().splitlines()]
    assert len(calls) == 3 and all(c["prompt_tokens"] > 0 and c["latency_ms"] > 0 for c in calls)

    again = api.label(
        settings, ws, src, tmp_path / "again.csv", taxonomy_name=tax.name, show_progress=False
    )
    # the second run is answered from the cache: no new request reaches the server
    assert again["cache_hits"] == 3
    assert len((ws.runs / "llm-calls.jsonl").read_text().splitlines()) == len(calls)
    assert pd.read_csv(tmp_path / "again.csv", dtype=str, keep_default_na=False).equals(out)


def test_synth_file_against_local_server(env, tmp_path):
    settings, ws, tax, model = env
    out_path = tmp_path / "synth.csv"
    summary = api.synth(
        settings,
        ws,
        out_path,
        min_per_code=50,
        taxonomy_name=tax.name,
        codes=["29-1292.00"],
        n_per_code=3,
        show_progress=False,
    )
    assert summary["codes_requested"] == 1 and summary["llm_requests"] == 1
    # the schema (json_object) forces a well-formed answer: no transport or JSON failure
    for reason in summary["codes_failed"].values():
        assert reason.startswith("AnswerError"), reason
    # the server answered with records (a run that generates nothing must not pass)
    assert summary["generated"] >= 1, summary
    out = pd.read_csv(out_path, dtype={"code": str}, keep_default_na=False)
    assert list(out.columns) == SYNTH_COLUMNS and len(out) == summary["kept"]
    assert summary["generated"] == (
        summary["kept"] + summary["dropped_duplicates"] + summary["dropped_not_retrieved"]
    )
    assert set(out["code"]) <= {"29-1292.00"}
    assert out["retrieved_rank"].between(1, 5).all()
    assert set(out["source"]) <= {"synthetic"} and set(out["prompt_version"]) <= {"synth.v1"}
    assert set(out["model"]) <= {model}
