import json
import re
from pathlib import Path

import pandas as pd
import pytest

from autocoder import api
from autocoder.config import load_settings
from autocoder.taxonomy.store import save_taxonomy
from autocoder.workspace import Workspace
from tests.fakes import (
    FakeOpenAIServer,
    FakeReply,
    tiny_taxonomy,
    user_prompt,
)


def _llm_settings(base_url: str, *extra: str):  # type: ignore[no-untyped-def]
    return load_settings(
        overrides=[
            'index.backend="memory"',
            f'llm.base_url="{base_url}"',
            'llm.model="fake-llm"',
            "llm.max_retries=0",
            *extra,
        ]
    )


def _first_candidate(body):  # type: ignore[no-untyped-def]
    cands = re.findall(r"^\d+\. (\S+) - ", user_prompt(body), flags=re.M)
    return FakeReply(json.dumps({"code": cands[0], "scores": {cands[0]: 1.0}, "rationale": ""}))


def test_label_builds_llm_retriever_and_cache_from_the_settings(tmp_path: Path) -> None:
    ws = Workspace.resolve(tmp_path / "ws")
    save_taxonomy(ws, tiny_taxonomy())
    src = tmp_path / "in.csv"
    pd.DataFrame({"id": ["a"], "title": ["HGV truck driver"], "code": ["53-3032.00"]}).to_csv(
        src, index=False
    )
    with FakeOpenAIServer(_first_candidate) as server:
        settings = _llm_settings(server.base_url)
        first = api.label(settings, ws, src, tmp_path / "o.csv", k=2, show_progress=False)
        second = api.label(settings, ws, src, tmp_path / "o.csv", k=2, show_progress=False)
        assert len(server.chat_requests) == 1  # the second run is answered by the cache
    assert first["agreement_rate"] == 1.0 and first["model"] == "fake-llm"
    assert second["cache_hits"] == 1
    assert (ws.runs / "llm-calls.jsonl").is_file()  # calls are logged in the workspace


def test_synth_needs_no_llm_when_no_code_is_rare(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_MODEL", raising=False)
    ws = Workspace.resolve(tmp_path / "ws")
    save_taxonomy(ws, tiny_taxonomy())
    settings = load_settings(overrides=['index.backend="memory"', 'llm.model=""'])
    summary = api.synth(settings, ws, tmp_path / "s.csv", min_per_code=1, show_progress=False)
    assert summary["codes_requested"] == 0 and summary["kept"] == 0
    with pytest.raises(ValueError, match="no LLM model configured"):
        api.synth(settings, ws, tmp_path / "s.csv", min_per_code=50, show_progress=False)
