import re

import pytest

from autocoder.llm.grammar import schema_to_gbnf
from autocoder.llm.tasks import rag_pick_schema, synth_schema


def _rules(grammar: str) -> dict[str, str]:
    rules = {}
    for line in grammar.strip().splitlines():
        name, body = line.split(" ::= ", 1)
        rules[name] = body
    return rules


def _references(body: str) -> set[str]:
    body = re.sub(r'"(?:\\.|[^"\\])*"', " ", body)  # string literals
    body = re.sub(r"\[(?:\\.|[^\]\\])*\]", " ", body)  # character classes
    body = re.sub(r"\{[0-9,]*\}", " ", body)  # repetition counts
    return set(re.findall(r"[a-z][a-z0-9-]*", body))


@pytest.mark.parametrize("schema", [rag_pick_schema(["15-1252.00", "29-1141.00"]), synth_schema(3)])
def test_every_referenced_rule_is_defined(schema):
    rules = _rules(schema_to_gbnf(schema))
    assert "root" in rules
    for name, body in rules.items():
        assert _references(body) <= set(rules), (name, body)


def test_enum_codes_become_exact_alternatives():
    rules = _rules(schema_to_gbnf(rag_pick_schema(["15-1252.00", "29-1141.00"])))
    assert rules["answer-code"] == '"\\"15-1252.00\\"" | "\\"29-1141.00\\""'
    assert "unit" in rules  # scores are 0..1
    assert "char{0,200}" in rules["answer-rationale"]


def test_array_bounds():
    rules = _rules(schema_to_gbnf(synth_schema(4)))
    assert "{0,3}" in rules["answer-job-title"]  # 1 item + up to 3 more


def test_unsupported_schema_raises():
    with pytest.raises(ValueError, match="unsupported"):
        schema_to_gbnf({"type": "object", "properties": {"x": {"type": "null"}}})
