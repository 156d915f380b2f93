from __future__ import annotations

import pytest

from autocoder.llm.prompts import load_prompt
from autocoder.skills.extract import SkillHit
from autocoder.skills.llm import LLMSkillRanker, parse_skills, skills_request


class _Pool:
    top_k = 3

    def rank(self, texts, top_k=None):
        return [[SkillHit(f"u{i}", f"skill {i}", 1 - i / 10) for i in range(4)] for _ in texts]


def test_prompt_renders_numbered_candidates() -> None:
    prompt = load_prompt("extract_skills", "v1")
    req = skills_request(prompt, "We need SQL.", _Pool().rank(["x"])[0])
    assert req.prompt_id == "extract_skills.v1"
    assert (
        "1. skill 0" in req.messages[-1]["content"]
        and "We need SQL." in req.messages[-1]["content"]
    )
    assert req.schema["properties"]["skills"]["items"]["maximum"] == 4


def test_parse_skills_rejects_numbers_outside_the_list() -> None:
    assert parse_skills({"skills": [3, 1, 3]}, 4) == [2, 0]
    with pytest.raises(ValueError, match="not one of the 4"):
        parse_skills({"skills": [5]}, 4)
    with pytest.raises(ValueError, match="no 'skills'"):
        parse_skills({"picked": []}, 4)


def test_llm_reorders_and_a_bad_answer_keeps_the_matcher_order() -> None:
    answers = iter([{"skills": [3, 2]}, {"skills": ["x"]}])

    def model(messages, schema=None):
        return next(answers)

    ranker = LLMSkillRanker(_Pool(), model, load_prompt("extract_skills", "v1"), candidates=4)
    good, bad = (
        ranker.rank(["a"], top_k=3)[0],
        ranker.rank(["b"], top_k=3)[0],
    )
    assert [h.uri for h in good] == ["u2", "u1", "u0"]
    assert [h.uri for h in bad] == ["u0", "u1", "u2"]
