from pathlib import Path

import pytest

from autocoder.llm.prompts import PLACEHOLDER, PromptError, load_prompt


def _write(directory: Path, name: str, text: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(text)
    return path


def test_shipped_rag_pick_renders_every_placeholder():
    prompt = load_prompt("rag_pick", "v1")
    assert prompt.id == "rag_pick.v1"
    messages = prompt.render(
        taxonomy="O*NET-SOC 2019",
        record="Job title: Nurse",
        candidates="1. 29-1141.00 - RN",
        n_candidates=1,
    )
    assert [m["role"] for m in messages] == ["system", "user"]
    text = "\n".join(m["content"] for m in messages)
    assert "Job title: Nurse" in text and "29-1141.00" in text and "O*NET-SOC 2019" in text
    assert not PLACEHOLDER.search(text)


def test_shipped_synth_prompt_has_the_mom_sections():
    prompt = load_prompt("synth", "v1")
    text = prompt.render(
        taxonomy="ESCO", code="2221", title="Nurses", definition="Care.", examples="- RN", n=30
    )[-1]["content"]
    positions = [
        text.index(s)
        for s in ("#CONTEXT#", "#OBJECTIVE#", "#STYLE#", "#TONE#", "#AUDIENCE#", "#RESPONSE#")
    ]
    assert positions == sorted(positions)
    assert '"job title"' in text and '"job duties"' in text and "30" in text


def test_missing_file_fails_loudly(tmp_path):
    _write(
        tmp_path, "other.v1.toml", 'name = "other"\nversion = "v1"\nplaceholders = []\nuser = "x"\n'
    )
    with pytest.raises(PromptError, match=r"rag_pick\.v9\.toml not found.*other\.v1\.toml"):
        load_prompt("rag_pick", "v9", override=tmp_path)


def test_render_rejects_missing_and_unknown_values():
    prompt = load_prompt("rag_pick", "v1")
    with pytest.raises(PromptError, match="missing values for"):
        prompt.render(taxonomy="x", record="y", candidates="z")
    with pytest.raises(PromptError, match="unknown placeholders"):
        prompt.render(taxonomy="x", record="y", candidates="z", n_candidates=1, extra=2)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('placeholders = ["a"]\nuser = "{{a}} {{b}}"\n', "used but not declared"),
        ('placeholders = ["a", "b"]\nuser = "{{a}}"\n', "declared but never used"),
        ('placeholders = ["a"]\nsystem = "{{a}}"\n', "non-empty 'user'"),
        ('user = "{{a}}"\n', "needs 'placeholders'"),
        ('placeholders = []\nuser = "x"\ncolor = "red"\n', "unknown keys"),
        ('placeholders = [\nuser = "x"\n', "not valid TOML"),
    ],
)
def test_malformed_templates_fail(tmp_path, body, message):
    _write(tmp_path, "t.v1.toml", 'name = "t"\nversion = "v1"\n' + body)
    with pytest.raises(PromptError, match=message):
        load_prompt("t", "v1", override=tmp_path)


def test_name_in_file_must_match(tmp_path):
    _write(tmp_path, "t.v2.toml", 'name = "t"\nversion = "v1"\nplaceholders = []\nuser = "x"\n')
    with pytest.raises(PromptError, match="does not match the file name"):
        load_prompt("t", "v2", override=tmp_path)


def test_override_directory_is_used(tmp_path):
    _write(
        tmp_path,
        "t.v1.toml",
        'name = "t"\nversion = "v1"\nplaceholders = ["x"]\nuser = "say {{ x }}"\n',
    )
    prompt = load_prompt("t", "v1", override=tmp_path)
    assert prompt.render(x="hi") == [{"role": "user", "content": "say hi"}]
