"""The wire behaviour FakeLLMServer imitates, checked against the real llama-server: if one of
these fails after a llama.cpp upgrade, tests/testing/test_fake_fidelity.py and the fake need
the same change, so the fast tests stay faithful."""

from __future__ import annotations

import json
import math

import aiohttp
import pytest

from .conftest import EMBED_DIM, LocalModel

pytestmark = pytest.mark.realmodel


def ask(model: LocalModel, text: str, **extra) -> dict:
    return {"model": model.model, "messages": [{"role": "user", "content": text}],
            "temperature": 0, **extra}  # fmt: skip


async def sse(url: str, body: dict) -> list[dict]:
    async with aiohttp.ClientSession() as http, http.post(url, json=body) as resp:
        assert resp.status == 200, await resp.text()
        raw = await resp.text()
    lines = [line.removeprefix("data: ") for line in raw.split("\n\n") if line.strip()]
    assert lines[-1] == "[DONE]"
    return [json.loads(line) for line in lines[:-1]]


async def post(url: str, body: dict) -> tuple[int, dict]:
    async with aiohttp.ClientSession() as http, http.post(url, json=body) as resp:
        return resp.status, await resp.json()


async def test_stream_shape_and_usage_only_when_asked(local_model):
    url = local_model.base_url + "/chat/completions"
    chunks = await sse(url, ask(local_model, "Say hi.", stream=True, max_tokens=8))
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": None}
    last = chunks[-1]["choices"][0]
    assert last["delta"] == {} and last["finish_reason"] in ("stop", "length")
    assert all("usage" not in c for c in chunks)
    with_usage = await sse(url, ask(local_model, "Say hi.", stream=True, max_tokens=8,
                                    stream_options={"include_usage": True}))  # fmt: skip
    assert with_usage[-1]["choices"] == [] and with_usage[-1]["usage"]["completion_tokens"] > 0


async def test_tool_call_deltas(local_model):
    tool = {"type": "function", "function": {
        "name": "get_forecast", "description": "Weather forecast for a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                       "required": ["city"]}}}  # fmt: skip
    example = {"role": "assistant", "content": None, "tool_calls": [{
        "id": "call_1", "type": "function",
        "function": {"name": "get_forecast", "arguments": '{"city": "Paris"}'}}]}  # fmt: skip
    messages = [{"role": "user", "content": "What is the weather in Paris?"}, example,
                {"role": "user", "content": "What is the weather in Oslo?"}]  # fmt: skip
    body = {"model": local_model.model, "messages": messages, "tools": [tool], "temperature": 0,
            "max_tokens": 64, "stream": True}  # fmt: skip
    chunks = await sse(local_model.base_url + "/chat/completions", body)
    calls = [tc for c in chunks if c["choices"] for tc in c["choices"][0]["delta"].get("tool_calls") or []]  # fmt: skip
    assert calls, "the few-shot example makes SmolLM2-135M call the tool"
    first, rest = calls[0], calls[1:]
    assert set(first) == {"index", "id", "type", "function"}
    assert first["function"]["name"] == "get_forecast"
    assert rest and all(set(tc) == {"index", "function"} for tc in rest)
    assert isinstance(json.loads("".join(tc["function"]["arguments"] for tc in calls)), dict)
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]][-1] == "tool_calls"


async def test_max_tokens_cuts_with_finish_reason_length(local_model):
    body = ask(local_model, "Write a long story about a dragon.", max_tokens=3)
    _status, data = await post(local_model.base_url + "/chat/completions", body)
    assert data["choices"][0]["finish_reason"] == "length"
    assert data["usage"]["completion_tokens"] == 3


async def test_embeddings_are_unit_vectors_one_per_input(local_model):
    body = {"model": local_model.model, "input": ["a", "b c"]}
    _status, data = await post(local_model.base_url + "/embeddings", body)
    assert [item["index"] for item in data["data"]] == [0, 1]
    for item in data["data"]:
        assert len(item["embedding"]) == EMBED_DIM
        norm = math.sqrt(sum(x * x for x in item["embedding"]))
        assert math.isclose(norm, 1.0, rel_tol=1e-4)
    assert data["usage"]["prompt_tokens"] == data["usage"]["total_tokens"] > 0


async def test_a_bad_request_gets_an_openai_error_body(local_model):
    status, data = await post(
        local_model.base_url + "/chat/completions", {"model": local_model.model}
    )
    assert status == 400
    assert set(data["error"]) >= {"message", "type", "code"} and data["error"]["code"] == 400
    assert data["error"]["type"] == "invalid_request_error"


async def test_a_prompt_over_the_context_size_is_rejected(local_model):
    body = ask(local_model, "word " * 5000, max_tokens=1)
    status, data = await post(local_model.base_url + "/chat/completions", body)
    assert status == 400 and data["error"]["type"] == "exceed_context_size_error"
    assert data["error"]["n_ctx"] == 4096 and data["error"]["n_prompt_tokens"] > 4096
