import json
import re
from collections import Counter

import pandas as pd
import pytest

from autocoder.augment import SYNTH_COLUMNS, count_examples, plan_synth, rare_codes, synth_file
from autocoder.coding.retrieval import RetrievalCoder
from autocoder.index import MemoryIndex
from autocoder.llm.cache import LLMCache
from autocoder.llm.client import LLMModel
from tests.fakes import FakeOpenAIServer, FakeReply, HashingEmbedder, mini_taxonomy, user_prompt

DENTAL = {
    "job title": [
        "Registered Dental Hygienist",
        "Oral Hygiene Specialist",
        "Registered Dental Hygienist",
        "Dental Hygienist",
        "Barista",
        "Dental Hygiene Coordinator",
    ],
    "job duties": [
        "Clean teeth and polish them for dental patients.",
        "Teach patients oral hygiene and clean teeth.",
        "Clean teeth and polish them for dental patients",
    ],
}


def fake_llm(body):
    code = re.findall(r"^Code: (\S+)$", user_prompt(body), flags=re.M)[0]
    if code == "29-1292.00":
        return FakeReply(json.dumps(DENTAL))
    return FakeReply(json.dumps({"answer": "I cannot"}))


class KeywordRetriever:
    """Dental texts retrieve the dental code first; anything else never does."""

    def __init__(self):
        self.seen = []

    def rank(self, records):
        self.seen.extend(records)
        others = ["41-2031.00", "41-3091.00", "15-1252.00", "29-1141.00", "29-2052.00"]
        codes = [
            ["29-2052.00", "29-1292.00", *others[:3]]
            if re.search(r"dental|teeth", f"{r.title} {r.duties}", flags=re.I)
            else others
            for r in records
        ]
        return codes, [None] * len(records), [None] * len(records)


@pytest.fixture
def env(tmp_path):
    tax = mini_taxonomy()
    training = pd.DataFrame(
        [
            (c, f"{c} title {i}", "")
            for c in tax.leaf_codes()
            if c not in ("29-1292.00", "41-3091.00")
            for i in range(3)
        ]
        + [
            (
                "29-1292.00",
                "Oral Hygiene Specialist",
                "Teach patients oral hygiene and clean teeth.",
            )
        ],
        columns=["code", "title", "duties"],
    )
    path = tmp_path / "train.csv"
    training.to_csv(path, index=False)
    return tax, path


def test_counts_and_rare_codes(env):
    tax, path = env
    from_titles = count_examples(tax)
    assert from_titles["29-1141.00"] == 3 and from_titles["29-1292.00"] == 2  # title + alt titles
    counts = count_examples(tax, pd.read_csv(path, dtype=str))
    assert counts["29-1292.00"] == 1 and counts["41-3091.00"] == 0 and counts["29-1141.00"] == 3
    assert rare_codes(counts, 3) == ["41-3091.00", "29-1292.00"]
    assert rare_codes(counts, 3, max_codes=1) == ["41-3091.00"]
    assert rare_codes(counts, 4, codes=["29-1141.00"]) == ["29-1141.00"]
    with pytest.raises(ValueError, match="not among the taxonomy"):
        rare_codes(counts, 3, codes=["99-0000.00"])


def test_synth_file_generates_filters_and_records_provenance(env, tmp_path):
    tax, train = env
    retriever = KeywordRetriever()
    out_path = tmp_path / "synth.jsonl"
    with FakeOpenAIServer(fake_llm) as server:
        model = LLMModel("fake-llm", base_url=server.base_url, max_retries=0)
        summary = synth_file(
            out_path,
            plan_synth(tax, 3, training_data=train),
            model=model,
            retriever=retriever,
            n_per_code=6,
            k=5,
            show_progress=False,
        )
        prompts = [user_prompt(r.body) for r in server.chat_requests]
    assert sorted(re.findall(r"Code: (\S+)", p)[0] for p in prompts) == [
        "29-1292.00",
        "41-3091.00",
    ]
    out = pd.read_json(out_path, lines=True, dtype=False)
    assert list(out.columns) == SYNTH_COLUMNS
    assert out[["title", "duties"]].values.tolist() == [
        ["Registered Dental Hygienist", "Clean teeth and polish them for dental patients."],
        ["Dental Hygiene Coordinator", ""],
    ]
    assert set(out["code"]) == {"29-1292.00"} and out["retrieved_rank"].tolist() == [2, 2]
    assert set(out["source"]) == {"synthetic"} and set(out["prompt_version"]) == {"synth.v1"}
    assert set(out["model"]) == {"fake-llm"}
    # dropped: a training-data duplicate, a repeat, a known alt title; Barista is not retrieved
    assert summary["generated"] == 6 and summary["dropped_duplicates"] == 3
    assert summary["dropped_not_retrieved"] == 1 and summary["kept"] == 2
    assert [r.title for r in retriever.seen] == [
        "Registered Dental Hygienist",
        "Barista",
        "Dental Hygiene Coordinator",
    ]
    assert list(summary["codes_failed"]) == ["41-3091.00"]
    assert summary["codes_requested"] == 2 and summary["prompt_version"] == "synth.v1"


def test_synth_file_with_real_retrieval_and_cache(env, tmp_path):
    tax, _ = env
    embedder = HashingEmbedder()
    index = MemoryIndex()
    index.build(tax, embedder)
    retriever = RetrievalCoder(index, embedder, classes=tax.leaf_codes(), top_k=5).fit()
    with FakeOpenAIServer(fake_llm) as server:
        model = LLMModel("fake-llm", base_url=server.base_url, max_retries=0)
        plan = plan_synth(tax, 5, codes=["29-1292.00"])
        kwargs = dict(
            model=model,
            retriever=retriever,
            cache=LLMCache(tmp_path / "llm-cache"),
            n_per_code=6,
            show_progress=False,
        )
        first = synth_file(tmp_path / "a.csv", plan, **kwargs)
        second = synth_file(tmp_path / "b.csv", plan, **kwargs)
        assert len(server.chat_requests) == 1
    assert second["cache_hits"] == 1 and first["cache_hits"] == 0
    a = pd.read_csv(tmp_path / "a.csv", dtype={"code": str}, keep_default_na=False)
    assert a.equals(pd.read_csv(tmp_path / "b.csv", dtype={"code": str}, keep_default_na=False))
    assert len(a) == first["kept"] and first["kept"] + first["dropped_not_retrieved"] == 4
    assert a["retrieved_rank"].between(1, 5).all()
    assert not Counter(zip(a["title"], a["duties"], strict=True)).most_common(1)[0][1] > 1


def test_no_rare_codes_writes_an_empty_table(env, tmp_path):
    tax, _ = env
    summary = synth_file(
        tmp_path / "none.csv",
        plan_synth(tax, 1),
        model=None,  # no code needs examples: no LLM is needed either
        retriever=None,
        show_progress=False,
    )
    assert summary["codes_requested"] == 0 and summary["kept"] == 0
    assert list(pd.read_csv(tmp_path / "none.csv").columns) == SYNTH_COLUMNS


def test_a_plan_with_targets_needs_a_model(env, tmp_path):
    tax, _ = env
    with pytest.raises(ValueError, match="give a model and retriever"):
        synth_file(tmp_path / "x.csv", plan_synth(tax, 5), model=None, retriever=None)
    with pytest.raises(ValueError, match="min_per_code must be at least 1"):
        plan_synth(tax, 0)
