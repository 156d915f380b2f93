import json
import re

import numpy as np
import pandas as pd
import pytest

from autocoder.coding.retrieval import RetrievalCoder
from autocoder.index import MemoryIndex
from autocoder.labeler import OUTPUT_COLUMNS, RAGLabeler, label_file
from autocoder.llm.cache import LLMCache
from autocoder.llm.client import LLMModel
from tests.fakes import FakeOpenAIServer, FakeReply, HashingEmbedder, mini_taxonomy, user_prompt

KEYWORDS = {
    "pharmacy": "29-2052.00",
    "nurse": "29-1141.00",
    "software": "15-1252.00",
    "sales": "41-2031.00",
}


def fake_llm(body):
    """Chooses by keyword among the offered candidates; misbehaves for 'hacker' and 'broken'."""
    text = user_prompt(body)
    cands = re.findall(r"^\d+\. (\S+) - ", text, flags=re.M)
    title = re.findall(r"^Job title: (.*)$", text, flags=re.M)[0].lower()
    if "broken" in title:
        return FakeReply("I think it is a nurse.")
    if "hacker" in title:
        return FakeReply(json.dumps({"code": "99-9999.99", "scores": {}, "rationale": "made up"}))
    chosen = next((c for k, c in KEYWORDS.items() if k in title and c in cands), cands[0])
    scores = {c: 0.1 for c in cands}
    scores[chosen] = 0.9
    if "pharmacy" in title and "29-1141.00" in cands:
        scores["29-1141.00"] = 0.8  # the given label is plausible too
    return FakeReply(json.dumps({"code": chosen, "scores": scores, "rationale": f"{title} fits"}))


ROWS = [
    ("a1", "ICU Staff Nurse", "Monitor patients and administer medications", "29-1141.00"),
    ("a2", "Software Engineer", "Write and test program code", "41-2031.00"),
    ("a3", "Hacker", "", "15-1252.00"),
    ("a4", "", "", "29-1141.00"),
    ("a5", "Sales Associate", "Greet customers and process sales", "00-0000.00"),
    ("a6", "Broken record", "something", "29-1141.00"),
    ("a7", "Staff nurse", "", ""),
    ("a8", "Pharmacy nurse", "Prepare medications for patients", "29-1141.00"),
]


@pytest.fixture
def retriever():
    tax = mini_taxonomy()
    embedder = HashingEmbedder()
    index = MemoryIndex()
    index.build(tax, embedder)
    return RetrievalCoder(index, embedder, classes=tax.leaf_codes(), top_k=5).fit()


@pytest.fixture
def src(tmp_path):
    path = tmp_path / "in.csv"
    pd.DataFrame(ROWS, columns=["id", "title", "description", "code"]).to_csv(path, index=False)
    return path


def test_label_file_writes_choices_flags_and_summary(src, retriever, tmp_path):
    out_path = tmp_path / "out" / "labels.csv"
    with FakeOpenAIServer(fake_llm) as server:
        model = LLMModel("fake-llm", base_url=server.base_url, max_retries=0, concurrency=2)
        summary = label_file(
            src,
            out_path,
            taxonomy=mini_taxonomy(),
            model=model,
            retriever=retriever,
            show_progress=False,
        )
        assert len(server.chat_requests) == 7  # the empty record is never sent
    out = pd.read_csv(out_path, dtype=str, keep_default_na=False)
    assert list(out.columns) == OUTPUT_COLUMNS
    out = out.set_index("id")
    assert list(out.index) == [r[0] for r in ROWS]
    for rid, row in out.iterrows():
        if row["chosen_code"]:
            assert row["chosen_code"] in row["candidates"].split(";"), rid
            assert set(json.loads(row["relevance"])) == set(row["candidates"].split(";"))
    assert "99-9999.99" not in set(out["chosen_code"])
    assert (
        out.loc["a3", "status"] == "rejected" and out.loc["a3", "rejected_answer"] == "99-9999.99"
    )
    assert out.loc["a4", "status"] == "error:empty_text"
    assert (
        out.loc["a6", "status"] == "error:LLMResponseError" and out.loc["a6", "chosen_code"] == ""
    )
    assert out.loc["a1", ["chosen_code", "agrees", "suspect_label"]].tolist() == [
        "29-1141.00",
        "True",
        "False",
    ]
    assert out.loc["a2", ["chosen_code", "agrees", "suspect_label"]].tolist() == [
        "15-1252.00",
        "False",
        "True",
    ]
    assert out.loc["a5", ["agrees", "suspect_label"]].tolist() == ["False", "True"]  # unknown code
    assert out.loc["a7", ["agrees", "suspect_label"]].tolist() == ["", ""]  # no given label
    assert out.loc["a8", ["chosen_code", "agrees", "suspect_label"]].tolist() == [
        "29-2052.00",
        "False",
        "False",
    ]
    assert out.loc["a8", "given_relevance"] == "0.8"
    assert set(out["prompt_version"]) == {"rag_pick.v1"} and set(out["model"]) == {"fake-llm"}
    assert summary["rows"] == 8 and summary["labelled_rows"] == 7
    assert summary["status"] == {
        "ok": 5,
        "rejected": 1,
        "error:empty_text": 1,
        "error:LLMResponseError": 1,
    }
    assert summary["agreement_rate"] == 0.25  # a1 of a1, a2, a5, a8
    assert summary["suspect_labels"] == 2 and summary["suspect_rate"] == round(2 / 7, 4)
    assert summary["llm_requests"] == 7 and summary["cache_hits"] == 0
    assert 0 <= summary["retrieval_agreement_rate"] <= 1


def test_label_file_second_run_comes_from_the_cache(src, retriever, tmp_path):
    cache = LLMCache(tmp_path / "llm-cache")
    with FakeOpenAIServer(fake_llm) as server:
        model = LLMModel("fake-llm", base_url=server.base_url, max_retries=0)
        kwargs = dict(
            taxonomy=mini_taxonomy(),
            cache=cache,
            model=model,
            retriever=retriever,
            show_progress=False,
        )
        label_file(src, tmp_path / "one.parquet", **kwargs)
        n = len(server.chat_requests)
        summary = label_file(src, tmp_path / "two.parquet", **kwargs)
        assert len(server.chat_requests) == n + 1  # only the failed (uncached) answer again
    assert summary["cache_hits"] == 6
    assert len(LLMCache(tmp_path / "llm-cache")) == 6
    one, two = pd.read_parquet(tmp_path / "one.parquet"), pd.read_parquet(tmp_path / "two.parquet")
    pd.testing.assert_frame_equal(one, two)


def test_label_file_needs_text_columns(tmp_path):
    bad = tmp_path / "bad.csv"
    pd.DataFrame({"id": ["1"], "code": ["x"]}).to_csv(bad, index=False)
    with pytest.raises(ValueError, match="needs a title column"):
        label_file(
            bad,
            tmp_path / "o.csv",
            taxonomy=mini_taxonomy(),
            model=object(),
            retriever=object(),
        )


def test_labeler_predictor_contract(retriever):
    tax = mini_taxonomy()
    records = [("ICU Staff Nurse", "Monitor patients"), ("Hacker", ""), ("Sales Associate", "")]
    with FakeOpenAIServer(fake_llm) as server:
        model = LLMModel("fake-llm", base_url=server.base_url, max_retries=0)
        labeler = RAGLabeler(model, retriever, tax, k=5).fit()
        proba = labeler.predict_proba(records)
        pred = labeler.predict(records)
    assert list(labeler.classes_) == sorted(tax.leaf_codes())
    assert proba.shape == (3, len(tax.leaf_codes()))
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
    assert pred[0] == "29-1141.00" and labeler.classes_[proba[0].argmax()] == "29-1141.00"
    assert pred[2] == "41-2031.00" and labeler.classes_[proba[2].argmax()] == "41-2031.00"
    # rejected answer: falls back to retrieval, whose top-1 is the prediction
    top1 = retriever.rank([records[1]])[0][0][0]
    assert pred[1] == top1 and labeler.classes_[proba[1].argmax()] == top1


def test_unfitted_labeler_raises(retriever):
    with pytest.raises(RuntimeError, match="not fitted"):
        RAGLabeler(object(), retriever, mini_taxonomy()).label(["x"])
