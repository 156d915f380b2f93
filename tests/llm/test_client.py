import json
import logging
import threading
import time

import pytest

from autocoder.config import LLMConfig
from autocoder.llm.client import LLMError, LLMModel, LLMResponseError, parse_json_object
from tests.fakes import (
    FakeOpenAIServer,
    FakeReply,
)

MESSAGES = [{"role": "user", "content": "hello"}]
SCHEMA = {"type": "object", "properties": {"a": {"type": "number"}}, "required": ["a"]}


def scripted(*replies: FakeReply):
    queue = list(replies)

    def responder(body):
        return queue.pop(0) if len(queue) > 1 else queue[0]

    return responder


def make_model(server, **kwargs) -> LLMModel:
    kwargs.setdefault("timeout", 5.0)
    return LLMModel("fake-model", base_url=server.base_url, **kwargs)


# --- parsing ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content",
    ['{"a": 1}', ' ```json\n{"a": 1}\n``` ', 'Sure! Here it is: {"a": 1} Hope it helps.'],
)
def test_parse_json_object_accepts_common_wrappings(content):
    assert parse_json_object(content) == {"a": 1}


@pytest.mark.parametrize("content", ["", "no json here", "[1, 2]", '{"a": 1', "{'a': 1}"])
def test_parse_json_object_rejects_non_objects(content):
    with pytest.raises(LLMResponseError):
        parse_json_object(content)


# --- requests --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "check"),
    [
        (
            "json_object",
            lambda b: b["response_format"] == {"type": "json_object", "schema": SCHEMA},
        ),
        (
            "json_schema",
            lambda b: (
                b["response_format"]["type"] == "json_schema"
                and b["response_format"]["json_schema"]["schema"] == SCHEMA
            ),
        ),
        ("none", lambda b: "response_format" not in b),
    ],
)
def test_json_modes_constrain_the_request(mode, check):
    with FakeOpenAIServer(scripted(FakeReply('{"a": 2}'))) as server:
        answer = make_model(server, json_mode=mode, max_tokens=33, temperature=0.0)(
            MESSAGES, schema=SCHEMA
        )
        body = server.chat_requests[0].body
    assert answer == {"a": 2}
    assert body["model"] == "fake-model" and body["messages"] == MESSAGES
    assert body["max_tokens"] == 33
    assert check(body), body


def test_json_schema_mode_without_a_schema_asks_for_any_json_object():
    with FakeOpenAIServer(scripted(FakeReply('{"a": 2}'))) as server:
        make_model(server, json_mode="json_schema")(MESSAGES)
        assert server.chat_requests[0].body["response_format"] == {"type": "json_object"}


def test_unknown_json_mode_is_refused():
    with pytest.raises(ValueError, match="json_mode"):
        LLMModel("m", json_mode="grammar")


# --- retries, timeouts -----------------------------------------------------------------------


FAST = {"retry-after-ms": "10"}  # the openai client's retries wait 10 ms instead of 0.5 s, 1 s, ...


def test_retries_server_errors_then_succeeds():
    replies = [
        FakeReply("boom", status=500, headers=FAST),
        FakeReply("busy", status=503, headers=FAST),
        FakeReply('{"a": 1}'),
    ]
    with FakeOpenAIServer(scripted(*replies)) as server:
        model = make_model(server, max_retries=3)
        assert model(MESSAGES) == {"a": 1}
        assert len(server.chat_requests) == 3
    assert model.stats.calls == 1 and model.stats.retries == 2 and model.stats.failures == 0


def test_rate_limit_is_retried_honouring_retry_after():
    # without the header the client would wait at most 0.5 s before its first retry
    replies = [
        FakeReply("slow down", status=429, headers={"Retry-After": "1"}),
        FakeReply('{"a": 1}'),
    ]
    with FakeOpenAIServer(scripted(*replies)) as server:
        assert make_model(server)(MESSAGES) == {"a": 1}
        first, second = server.chat_requests
    assert second.received - first.received >= 1.0
    assert second.headers["x-stainless-retry-count"] == "1"


def test_gives_up_after_max_retries(tmp_path):
    call_log = tmp_path / "calls.jsonl"
    with FakeOpenAIServer(scripted(FakeReply("down", status=500, headers=FAST))) as server:
        model = make_model(server, max_retries=2, call_log=call_log)
        with pytest.raises(LLMError, match="HTTP 500"):
            model(MESSAGES)
        assert len(server.chat_requests) == 3
    assert model.stats.failures == 1 and model.stats.retries == 2
    entry = json.loads(call_log.read_text())
    assert entry["status"] == "error" and entry["attempts"] == 3


def test_client_errors_are_not_retried():
    with FakeOpenAIServer(scripted(FakeReply("bad schema", status=400))) as server:
        with pytest.raises(LLMError, match=r"HTTP 400.*llm\.json_mode") as info:
            make_model(server, max_retries=3)(MESSAGES, schema=SCHEMA)
        assert len(server.chat_requests) == 1
    assert info.value.__cause__ is not None  # the openai error is kept as the cause


def test_timeout_is_retried_then_raised():
    # the reply comes after 1 s: only a client timeout of 0.25 s turns it into an error
    with FakeOpenAIServer(scripted(FakeReply('{"a": 1}', delay=1.0))) as server:
        with pytest.raises(LLMError, match="timeout"):
            make_model(server, timeout=0.25, max_retries=1)(MESSAGES)
        assert len(server.chat_requests) == 2


def test_invalid_json_is_not_retried_when_deterministic():
    replies = [FakeReply("not json"), FakeReply('{"a": 1}')]
    with FakeOpenAIServer(scripted(*replies)) as server:
        with pytest.raises(LLMResponseError, match="not JSON") as info:
            make_model(server, temperature=0.0)(MESSAGES)
        assert info.value.content == "not json"
        assert len(server.chat_requests) == 1


def test_invalid_json_is_retried_when_sampling():
    replies = [FakeReply("not json"), FakeReply('{"a": 1}')]
    with FakeOpenAIServer(scripted(*replies)) as server:
        assert make_model(server, temperature=0.7)(MESSAGES) == {"a": 1}
        assert len(server.chat_requests) == 2


def test_connection_refused_is_an_llm_error():
    model = LLMModel("m", base_url="http://127.0.0.1:9/v1", max_retries=1, timeout=1)
    with pytest.raises(LLMError, match="connection"):
        model(MESSAGES)


def test_concurrency_limit_holds_across_threads():
    lock = threading.Lock()
    state = {"now": 0, "max": 0}

    def responder(body):
        with lock:
            state["now"] += 1
            state["max"] = max(state["max"], state["now"])
        time.sleep(0.1)
        with lock:
            state["now"] -= 1
        return FakeReply('{"a": 1}')

    with FakeOpenAIServer(responder) as server:
        model = make_model(server, concurrency=2)
        threads = [threading.Thread(target=model, args=(MESSAGES,)) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(server.chat_requests) == 6
    assert state["max"] == 2


# --- logging, secrets, settings --------------------------------------------------------------


def test_api_key_is_sent_but_never_logged(tmp_path, caplog):
    secret = "sk-test-SECRET-4242"
    call_log = tmp_path / "calls.jsonl"
    caplog.set_level(logging.DEBUG)  # every logger, openai's and httpx's included
    replies = [FakeReply('{"a": 1}'), FakeReply("nope", status=401)]
    with FakeOpenAIServer(scripted(*replies)) as server:
        model = make_model(server, api_key=secret, call_log=call_log)
        model(MESSAGES)
        with pytest.raises(LLMError, match="OPENAI_API_KEY") as info:
            model(MESSAGES)
        assert server.chat_requests[0].headers["authorization"] == f"Bearer {secret}"
    assert "llm call model=fake-model status=ok" in caplog.text
    assert secret not in caplog.text
    assert secret not in call_log.read_text()
    assert secret not in repr(model) and secret not in str(info.value)


def test_call_log_records_latency_and_tokens(tmp_path):
    call_log = tmp_path / "logs" / "calls.jsonl"
    with FakeOpenAIServer(
        scripted(FakeReply('{"a": 1}', prompt_tokens=21, completion_tokens=4))
    ) as server:
        model = make_model(server, call_log=call_log)
        model(MESSAGES)
        model(MESSAGES)
    entries = [json.loads(line) for line in call_log.read_text().splitlines()]
    assert len(entries) == 2
    assert entries[0]["prompt_tokens"] == 21 and entries[0]["completion_tokens"] == 4
    assert entries[0]["latency_ms"] > 0 and entries[0]["status"] == "ok"
    assert model.stats.prompt_tokens == 42 and model.stats.completion_tokens == 8


def _cfg(**kwargs):
    base = dict(timeout=7.0, max_retries=1, concurrency=3, max_tokens=99, json_mode="json_schema")
    return LLMConfig(**{**base, **kwargs})


def test_from_settings_falls_back_to_openai_env_vars(monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", "http://env-host:1234/v1")
    monkeypatch.setenv("OPENAI_MODEL", "env-model")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env")
    model = LLMModel.from_settings(_cfg())
    assert (model.model, model.base_url, model._api_key) == (
        "env-model",
        "http://env-host:1234/v1",
        "sk-env",
    )
    assert (model.timeout, model.max_retries, model.concurrency, model.json_mode) == (
        7.0,
        1,
        3,
        "json_schema",
    )
    # timeouts and retries are the openai client's own
    assert (model.client.timeout, model.client.max_retries) == (7.0, 1)
    model = LLMModel.from_settings(
        _cfg(model="cfg-model", base_url="http://cfg/v1", api_key="sk-cfg")
    )
    assert (model.model, model.base_url, model._api_key) == ("cfg-model", "http://cfg/v1", "sk-cfg")


def test_from_settings_without_a_model_fails_clearly(monkeypatch):
    monkeypatch.delenv("OPENAI_MODEL", raising=False)
    with pytest.raises(ValueError, match="OPENAI_MODEL"):
        LLMModel.from_settings(_cfg())


def test_model_id_hides_credentials_in_urls():
    model = LLMModel("m", base_url="http://user:pw@host:8000/v1/")
    assert model.model_id == "http://host:8000/v1|m"
    assert "pw" not in repr(model)


def test_an_echoing_401_never_prints_the_key_or_the_whole_body():
    key = "sk-live-0123456789abcdef"
    echo = f"invalid key {key}; headers: Authorization: Bearer {key}; " + "y" * 2000
    with FakeOpenAIServer(scripted(FakeReply(echo, status=401))) as server:
        model = LLMModel("fake-model", base_url=server.base_url, api_key=key, timeout=5.0)
        with pytest.raises(LLMError) as err:
            model(MESSAGES)
    message = str(err.value)
    assert key not in message and "0123456789abcdef" not in message
    assert "HTTP 401" in message and len(message) < 500
