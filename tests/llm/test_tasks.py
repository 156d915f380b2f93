import pytest

from autocoder.llm.prompts import load_prompt
from autocoder.llm.tasks import (
    AnswerError,
    parse_rag_pick,
    parse_synth,
    rag_pick_request,
    synth_request,
)
from autocoder.records import JobRecord
from tests.fakes import mini_taxonomy

CANDS = ["29-1141.00", "29-1292.00", "29-2052.00", "15-1252.00", "41-2031.00"]


def test_rag_pick_request_lists_the_record_and_every_candidate():
    tax = mini_taxonomy()
    req = rag_pick_request(
        load_prompt("rag_pick", "v1"),
        JobRecord("ICU nurse", "Care for patients"),
        CANDS,
        tax,
        max_definition_chars=40,
    )
    text = req.messages[-1]["content"]
    assert req.prompt_id == "rag_pick.v1"
    assert "Job title: ICU nurse" in text and "Job duties: Care for patients" in text
    for i, code in enumerate(CANDS, 1):
        assert f"{i}. {code} - {tax.get(code).title}" in text
    assert "Assess patient health problems and needs, develop and implement" not in text  # cut
    assert req.schema is not None
    assert req.schema["properties"]["code"]["enum"] == CANDS
    assert req.schema["properties"]["scores"]["required"] == CANDS


def test_parse_rag_pick_accepts_a_candidate():
    pick = parse_rag_pick(
        {
            "code": " 29-1141.00 ",
            "scores": {"29-1141.00": 0.9, "15-1252.00": "0.2", "99": 1},
            "rationale": "nurse",
        },
        CANDS,
    )
    assert pick.code == "29-1141.00" and pick.rationale == "nurse"
    assert pick.scores == {
        "29-1141.00": 0.9,
        "29-1292.00": 0.0,
        "29-2052.00": 0.0,
        "15-1252.00": 0.2,
        "41-2031.00": 0.0,
    }


def test_parse_rag_pick_rejects_a_code_that_was_not_offered():
    with pytest.raises(AnswerError, match="not among the offered candidates") as info:
        parse_rag_pick({"code": "11-1011.00", "scores": {}}, CANDS)
    assert info.value.rejected_code == "11-1011.00"


@pytest.mark.parametrize(
    "answer",
    [
        {},
        {"code": ""},
        {"code": 5},
        {"code": "29-1141.00", "scores": {"29-1141.00": "high"}},
        {"code": "29-1141.00", "scores": "all good"},
        {"code": "29-1141.00", "scores": {"29-1141.00": float("nan")}},
    ],
)
def test_parse_rag_pick_rejects_malformed_answers(answer):
    with pytest.raises(AnswerError):
        parse_rag_pick(answer, CANDS)


def test_parse_rag_pick_scores_as_list_and_clipped():
    pick = parse_rag_pick(
        {
            "code": "15-1252.00",
            "scores": [{"code": "15-1252.00", "score": 3}, {"code": "41-2031.00", "relevance": -1}],
        },
        CANDS,
    )
    assert pick.scores["15-1252.00"] == 1.0 and pick.scores["41-2031.00"] == 0.0


def test_synth_request_uses_the_code_texts():
    tax = mini_taxonomy()
    req = synth_request(load_prompt("synth", "v1"), "29-1292.00", tax, n=7)
    text = req.messages[-1]["content"]
    assert req.prompt_id == "synth.v1"
    assert "Code: 29-1292.00" in text and "Title: Dental Hygienists" in text
    assert "Administer oral hygiene care" in text and "- job title: Dental Hygienist" in text
    assert "- task: Clean teeth" in text and "7" in text
    assert req.schema is not None
    assert req.schema["properties"]["job title"]["maxItems"] == 7


def test_parse_synth_normalises_and_filters():
    parsed = parse_synth(
        {"job title": ["  Dental  Hygienist ", "...", "", "RDH"], "job_duties": "Clean teeth."}, n=2
    )
    assert parsed.titles == ["Dental Hygienist", "RDH"]
    assert parsed.duties == ["Clean teeth."]


@pytest.mark.parametrize(
    "answer", [{}, {"job title": ["..."]}, {"job title": [1, 2]}, {"job title": {"a": 1}}]
)
def test_parse_synth_rejects_empty_or_malformed(answer):
    with pytest.raises(AnswerError):
        parse_synth(answer)
