"""FakeLLMServer answers in the shapes a real server (llama.cpp's llama-server) was measured to
send: the stream's first chunk, tool-call argument pieces, finish reasons at max_tokens, usage
only when asked for, embedding shapes and error bodies. The same behaviours are checked against
the real server in tests/realmodel/test_wire.py."""

from __future__ import annotations

import json
import math

import aiohttp
import pytest

from taskengine.testing.fake_llm import FakeLLMServer

CHAT = "/v1/chat/completions"


@pytest.fixture
def srv():
    with FakeLLMServer(default_reply="one two three four five") as server:
        yield server


async def sse(srv: FakeLLMServer, body: dict) -> list[dict]:
    async with aiohttp.ClientSession() as http, http.post(srv.url + CHAT, json=body) as resp:
        raw = await resp.text()
    lines = [line.removeprefix("data: ") for line in raw.split("\n\n") if line]
    assert lines[-1] == "[DONE]"
    return [json.loads(line) for line in lines[:-1]]


def ask(text: str, **extra) -> dict:
    return {"model": "m", "messages": [{"role": "user", "content": text}], **extra}


async def test_the_stream_opens_with_the_role_and_null_content(srv):
    chunks = await sse(srv, ask("hi", stream=True))
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": None}
    assert chunks[-1]["choices"][0] == {"index": 0, "delta": {}, "finish_reason": "stop"}
    assert all("usage" not in c for c in chunks)  # usage only with include_usage


async def test_tool_call_arguments_stream_in_token_sized_pieces(srv):
    srv.add_rule(tool_calls=[{"name": "weather", "arguments": {"city": "Oslo", "days": 3}}])
    chunks = await sse(srv, ask("hi", stream=True, stream_options={"include_usage": True}))
    calls = [
        tc for c in chunks if c["choices"] for tc in c["choices"][0]["delta"].get("tool_calls", [])
    ]
    first, rest = calls[0], calls[1:]
    assert (
        set(first) == {"index", "id", "type", "function"} and first["function"]["name"] == "weather"
    )
    assert len(rest) >= 4 and all(set(tc) == {"index", "function"} for tc in rest)
    args = "".join(tc["function"]["arguments"] for tc in calls)
    assert json.loads(args) == {"city": "Oslo", "days": 3}
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]][-1] == "tool_calls"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] > 0


@pytest.mark.parametrize("stream", [False, True])
async def test_max_tokens_cuts_the_reply_with_finish_reason_length(srv, stream):
    body = ask("hi", max_tokens=2, stream=stream, stream_options={"include_usage": True})
    if stream:
        chunks = await sse(srv, body)
        text = "".join(
            c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"]
        )
        finish = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]][-1]
        usage = chunks[-1]["usage"]
    else:
        async with aiohttp.ClientSession() as http, http.post(srv.url + CHAT, json=body) as resp:
            data = await resp.json()
        text, finish = data["choices"][0]["message"]["content"], data["choices"][0]["finish_reason"]
        usage = data["usage"]
    assert (text, finish, usage["completion_tokens"]) == ("one two", "length", 2)


async def test_embeddings_are_unit_vectors_one_per_input(srv):
    body = {"model": "m", "input": ["a", "b c"]}
    async with (
        aiohttp.ClientSession() as http,
        http.post(srv.url + "/v1/embeddings", json=body) as resp,
    ):
        data = await resp.json()
    assert [item["index"] for item in data["data"]] == [0, 1]
    for item in data["data"]:
        vector = item["embedding"]
        assert len(vector) == srv.embedding_dim
        assert math.isclose(math.sqrt(sum(x * x for x in vector)), 1.0, rel_tol=1e-6)
    assert data["usage"]["prompt_tokens"] == data["usage"]["total_tokens"] > 0


async def test_a_bad_request_gets_an_openai_error_body(srv):
    async with (
        aiohttp.ClientSession() as http,
        http.post(srv.url + CHAT, json={"model": "m"}) as resp,
    ):
        status, data = resp.status, await resp.json()
    assert status == 400
    assert set(data["error"]) >= {"message", "type", "code"} and data["error"]["code"] == 400
    assert data["error"]["type"] == "invalid_request_error"


async def test_a_prompt_over_the_context_size_is_rejected_like_llama_cpp():
    with FakeLLMServer(context_size=3) as small:
        async with (
            aiohttp.ClientSession() as http,
            http.post(small.url + CHAT, json=ask("one two three four")) as resp,
        ):
            status, data = resp.status, await resp.json()
        async with (
            aiohttp.ClientSession() as http,
            http.post(small.url + CHAT, json=ask("one two")) as fits,
        ):
            assert fits.status == 200
    assert status == 400 and data["error"]["type"] == "exceed_context_size_error"
    assert (data["error"]["n_prompt_tokens"], data["error"]["n_ctx"]) == (4, 3)
