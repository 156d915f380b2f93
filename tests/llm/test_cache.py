import json

from autocoder.llm.cache import LLMCache, cache_key
from autocoder.llm.client import LLMError, LLMModel
from autocoder.llm.tasks import LLMRequest, cached_call, run_requests
from tests.fakes import (
    FakeOpenAIServer,
    FakeReply,
    user_prompt,
)

REQ = LLMRequest("rag_pick.v1", [{"role": "user", "content": "record 1"}], {"type": "object"})


def echo(body):
    return FakeReply(json.dumps({"echo": user_prompt(body)}))


def test_cache_round_trip_and_persistence(tmp_path):
    cache = LLMCache(tmp_path)
    key = cache_key("p.v1", "m", {"messages": [1]})
    assert cache.get(key) is None
    cache.put(key, {"code": "x", "n": [1, 2]}, prompt_id="p.v1", model_id="m")
    cache.close()
    again = LLMCache(tmp_path)
    assert again.get(key) == {"code": "x", "n": [1, 2]}
    assert len(again) == 1


def test_key_depends_on_prompt_version_model_and_input():
    base = cache_key("rag_pick.v1", "m", {"messages": ["a"]})
    assert base == cache_key("rag_pick.v1", "m", {"messages": ["a"]})
    assert base != cache_key("rag_pick.v2", "m", {"messages": ["a"]})
    assert base != cache_key("rag_pick.v1", "m2", {"messages": ["a"]})
    assert base != cache_key("rag_pick.v1", "m", {"messages": ["b"]})


def test_second_identical_call_is_served_from_cache(tmp_path):
    cache = LLMCache(tmp_path)
    with FakeOpenAIServer(echo) as server:
        model = LLMModel("m1", base_url=server.base_url)
        first, hit1 = cached_call(model, REQ, cache=cache)
        second, hit2 = cached_call(model, REQ, cache=cache)
        assert (hit1, hit2) == (False, True)
        assert first == second == {"echo": "record 1"}
        assert len(server.chat_requests) == 1
        # another prompt version, model, input or setting is a miss
        cached_call(model, LLMRequest("rag_pick.v2", REQ.messages, REQ.schema), cache=cache)
        cached_call(LLMModel("m2", base_url=server.base_url), REQ, cache=cache)
        cached_call(
            model, LLMRequest(REQ.prompt_id, [{"role": "user", "content": "2"}]), cache=cache
        )
        cached_call(LLMModel("m1", base_url=server.base_url, temperature=0.5), REQ, cache=cache)
        assert len(server.chat_requests) == 5
    assert len(cache) == 5


def test_failed_calls_are_not_cached(tmp_path):
    cache = LLMCache(tmp_path)
    with FakeOpenAIServer(lambda body: FakeReply("down", status=500)) as server:
        model = LLMModel("m", base_url=server.base_url, max_retries=0)
        results, stats = run_requests(model, [REQ], cache=cache)
    assert isinstance(results[0], LLMError)
    assert stats.errors == 1 and len(cache) == 0


def test_run_requests_keeps_order_and_isolates_failures(tmp_path):
    def responder(body):
        text = user_prompt(body)
        return (
            FakeReply("x", status=400) if text == "bad" else FakeReply(json.dumps({"echo": text}))
        )

    requests = [
        LLMRequest("t.v1", [{"role": "user", "content": c}]) for c in ["a", "bad", "c", "d"]
    ]
    cache = LLMCache(tmp_path)
    with FakeOpenAIServer(responder) as server:
        model = LLMModel("m", base_url=server.base_url, max_retries=0, concurrency=3)
        results, stats = run_requests(model, requests, cache=cache)
        assert [r["echo"] for r in results if isinstance(r, dict)] == ["a", "c", "d"]
        assert isinstance(results[1], LLMError)
        assert (stats.requests, stats.errors, stats.cache_hits) == (4, 1, 0)
        _, stats2 = run_requests(model, requests, cache=cache)
        assert (stats2.cache_hits, stats2.errors) == (3, 1)
