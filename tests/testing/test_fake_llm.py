"""FakeLLMServer speaks both wire formats, follows its script, injects faults and records requests."""

from __future__ import annotations

import asyncio
import base64
import json
import math
import struct
import subprocess
import sys
import time
import urllib.error
import urllib.request

import aiohttp
import pytest

from taskengine.testing.fake_llm import FakeLLMServer

CHAT = "/v1/chat/completions"


def chat_body(text: str, **extra) -> dict:
    return {"model": "m", "messages": [{"role": "user", "content": text}], **extra}


def post(url: str, body: dict) -> tuple[int, str]:
    """A plain synchronous POST (the server must work from sync tests too)."""
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.read().decode()


@pytest.fixture
def srv():
    with FakeLLMServer(default_reply="default answer") as server:
        yield server


@pytest.fixture
async def http():
    async with aiohttp.ClientSession() as session:
        yield session


def test_sync_lifecycle_and_urls():
    server = FakeLLMServer().start()
    try:
        assert server.url.startswith("http://127.0.0.1:")
        assert server.openai_base_url == server.url + "/v1"
        status, text = post(server.openai_base_url + "/chat/completions", chat_body("hi"))
        assert status == 200
        assert json.loads(text)["choices"][0]["message"]["content"] == "OK"
    finally:
        server.stop()
    with pytest.raises(RuntimeError, match="not started"):
        _ = FakeLLMServer().url


async def test_async_context_manager(http):
    async with FakeLLMServer(models=["a", "b"]) as server:
        async with http.get(server.openai_base_url + "/models") as resp:
            assert [m["id"] for m in (await resp.json())["data"]] == ["a", "b"]
        async with http.get(server.url + "/api/tags") as resp:
            assert [m["name"] for m in (await resp.json())["models"]] == ["a", "b"]


def test_openai_reply_usage_and_recording(srv):
    status, text = post(
        srv.url + CHAT, chat_body("three word prompt", temperature=0.5, max_tokens=9)
    )
    reply = json.loads(text)
    assert status == 200
    assert reply["object"] == "chat.completion"
    assert reply["choices"][0] == {
        "index": 0,
        "message": {"role": "assistant", "content": "default answer"},
        "finish_reason": "stop",
    }
    assert reply["usage"] == {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
    record = srv.last_request()
    assert (record.path, record.api, record.model, record.temperature, record.max_tokens) == (
        CHAT,
        "openai",
        "m",
        0.5,
        9,
    )
    assert record.text == "three word prompt"
    assert record.headers["Content-Type"] == "application/json"
    assert srv.requests_for(CHAT) == [record]
    srv.clear()
    assert srv.requests == []


def test_rules_first_match_wins_times_regex_model_and_callables(srv):
    srv.add_rule("weather", reply="sunny")
    srv.add_rule(regex=r"^\d+$", reply="a number")
    srv.add_rule(model="special", reply="special model")
    once = srv.add_rule("once", reply="first time", times=1)
    srv.add_rule("echo", reply=FakeLLMServer.echo)
    srv.add_rule("weather", reply="never reached")

    def answer(text: str, **extra) -> str:
        return json.loads(post(srv.url + CHAT, chat_body(text, **extra))[1])["choices"][0][
            "message"
        ]["content"]

    assert answer("the weather today") == "sunny"
    assert answer("42") == "a number"
    assert answer("x42") == "default answer"
    assert answer("hi", model="special") == "special model"
    assert answer("once") == "first time"
    assert answer("once") == "default answer"
    assert once.hits == 1
    assert answer("echo this back") == "echo this back"


def test_matching_uses_the_last_user_message(srv):
    srv.add_rule("old", reply="matched old")
    body = {
        "model": "m",
        "messages": [
            {"role": "user", "content": "old question"},
            {"role": "assistant", "content": "answer"},
            {"role": "user", "content": "new question"},
        ],
    }
    assert (
        json.loads(post(srv.url + CHAT, body)[1])["choices"][0]["message"]["content"]
        == "default answer"
    )


def test_reply_sequence(srv):
    srv.reply_sequence(["one", "two", {"reply": "three", "status": 503}])
    replies = [post(srv.url + CHAT, chat_body("x")) for _ in range(4)]
    assert [json.loads(t)["choices"][0]["message"]["content"] for _, t in replies[:2]] == [
        "one",
        "two",
    ]
    assert replies[2][0] == 503
    assert json.loads(replies[3][1])["choices"][0]["message"]["content"] == "default answer"


def test_openai_tool_calls_and_strict_names(srv):
    srv.add_rule("call", tool_calls=[{"name": "lookup", "arguments": {"q": "x"}}])
    reply = json.loads(post(srv.url + CHAT, chat_body("call it"))[1])
    choice = reply["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] is None
    [call] = choice["message"]["tool_calls"]
    assert call["type"] == "function"
    assert call["function"] == {"name": "lookup", "arguments": '{"q": "x"}'}

    bad_tools = [{"type": "function", "function": {"name": "hook.tool", "parameters": {}}}]
    status, text = post(srv.url + CHAT, chat_body("hi", tools=bad_tools))
    assert status == 400
    assert "hook.tool" in json.loads(text)["error"]["message"]


async def test_openai_stream_with_tool_calls_and_usage(srv, http):
    srv.add_rule("plain", reply="streamed words here")
    srv.add_rule("tool", tool_calls=[{"name": "f", "arguments": {"a": 1}}])

    async def events(text: str) -> list:
        body = chat_body(text, stream=True, stream_options={"include_usage": True})
        async with http.post(srv.url + CHAT, json=body) as resp:
            assert resp.headers["Content-Type"].startswith("text/event-stream")
            raw = await resp.text()
        lines = [line[len("data: ") :] for line in raw.split("\n\n") if line]
        assert lines[-1] == "[DONE]"
        return [json.loads(line) for line in lines[:-1]]

    chunks = await events("plain")
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == "streamed words here"
    assert chunks[-1]["usage"]["completion_tokens"] == 3

    chunks = await events("tool")
    args = "".join(
        tc["function"].get("arguments", "")
        for c in chunks
        if c["choices"]
        for tc in c["choices"][0]["delta"].get("tool_calls", [])
    )
    assert json.loads(args) == {"a": 1}
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]][-1] == "tool_calls"


async def test_ollama_chat_stream_and_tools(srv, http):
    srv.add_rule("tool", tool_calls=[{"name": "hook.do", "arguments": {"n": 2}}])
    body = {
        "model": "m",
        "messages": [{"role": "user", "content": "a tool please"}],
        "stream": False,
    }
    async with http.post(srv.url + "/api/chat", json=body) as resp:
        reply = await resp.json()
    assert reply["done"] is True
    assert reply["message"]["tool_calls"] == [
        {"function": {"name": "hook.do", "arguments": {"n": 2}}}
    ]

    body = {
        "model": "m",
        "messages": [{"role": "user", "content": "hi"}],
        "options": {"temperature": 0.1},
    }
    async with http.post(srv.url + "/api/chat", json=body) as resp:  # Ollama streams by default
        lines = [json.loads(line) for line in (await resp.text()).splitlines()]
    assert "".join(line["message"]["content"] for line in lines) == "default answer"
    assert lines[-1]["done"] is True and lines[-1]["eval_count"] == 2
    assert srv.last_request().temperature == 0.1
    assert srv.last_request().stream is True


async def test_embeddings_are_deterministic_unit_vectors(http):
    async with FakeLLMServer(embedding_dim=8) as server:
        async with http.post(
            server.url + "/v1/embeddings", json={"model": "e", "input": ["a", "b"]}
        ) as resp:
            data = (await resp.json())["data"]
        async with http.post(server.url + "/api/embed", json={"model": "e", "input": "a"}) as resp:
            ollama = (await resp.json())["embeddings"][0]
        body = {"model": "e", "input": "a", "encoding_format": "base64"}
        async with http.post(server.url + "/v1/embeddings", json=body) as resp:
            packed = (await resp.json())["data"][0]["embedding"]
    first, second = data[0]["embedding"], data[1]["embedding"]
    assert len(first) == 8
    assert math.isclose(sum(v * v for v in first), 1.0, rel_tol=1e-9)
    assert first != second
    assert ollama == first == server.embedding_for("a")
    assert list(struct.unpack("<8f", base64.b64decode(packed))) == pytest.approx(first, rel=1e-6)


async def test_fault_status_body_headers_and_malformed(srv, http):
    srv.add_rule("limit", status=429, headers={"Retry-After": "1"})
    srv.add_rule("custom", status=500, body="plain failure")
    srv.add_rule("broken", malformed=True)
    srv.add_rule("ollama", status=503)
    async with http.post(srv.url + CHAT, json=chat_body("limit")) as resp:
        assert resp.status == 429
        assert resp.headers["Retry-After"] == "1"
        assert (await resp.json())["error"]["type"] == "rate_limit_exceeded"
    async with http.post(srv.url + CHAT, json=chat_body("custom")) as resp:
        assert (resp.status, await resp.text()) == (500, "plain failure")
    async with http.post(srv.url + CHAT, json=chat_body("broken")) as resp:
        assert resp.status == 200
        with pytest.raises(json.JSONDecodeError):
            json.loads(await resp.text())
    async with http.post(srv.url + "/api/chat", json=chat_body("ollama")) as resp:
        assert resp.status == 503
        assert "error" in await resp.json()


async def test_drop_and_drop_mid_stream(srv, http):
    srv.add_rule("drop", drop=True)
    srv.add_rule("mid", reply="a b c d e", drop_after_chunks=2)
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await http.post(srv.url + CHAT, json=chat_body("drop"))
    with pytest.raises(aiohttp.ClientPayloadError):
        async with http.post(srv.url + CHAT, json=chat_body("mid", stream=True)) as resp:
            await resp.read()


async def test_delay_is_per_rule(srv, http):
    srv.add_rule("slow", delay=0.2)
    started = time.monotonic()
    async with http.post(srv.url + CHAT, json=chat_body("fast")) as resp:
        await resp.read()
    fast = time.monotonic() - started
    started = time.monotonic()
    async with http.post(srv.url + CHAT, json=chat_body("slow")) as resp:
        await resp.read()
    assert time.monotonic() - started >= 0.2 > fast


def test_bad_json_is_a_400_and_still_recorded(srv):
    request = urllib.request.Request(
        srv.url + CHAT, data=b"{nope", headers={"Content-Type": "application/json"}
    )
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(request, timeout=5)
    with info.value as response:
        assert response.code == 400
    assert srv.last_request().json is None


async def test_500_concurrent_requests_with_50ms_delay(http):
    async with FakeLLMServer() as server:
        server.add_rule(delay=0.05)
        connector = aiohttp.TCPConnector(limit=1000)
        async with aiohttp.ClientSession(connector=connector) as session:

            async def one(i: int) -> int:
                async with session.post(server.url + CHAT, json=chat_body(f"q{i}")) as resp:
                    await resp.read()
                    return resp.status

            started = time.monotonic()
            statuses = await asyncio.gather(*(one(i) for i in range(500)))
            elapsed = time.monotonic() - started
        assert statuses == [200] * 500
        assert len(server.requests) == 500
        assert elapsed < 5.0  # served concurrently: one at a time would take 25 s


def test_wait_for_requests_polls_with_a_deadline(srv):
    post(srv.url + CHAT, chat_body("x"))
    assert len(srv.wait_for_requests(1, timeout=1)) == 1
    with pytest.raises(AssertionError, match="expected 2 requests"):
        srv.wait_for_requests(2, timeout=0.05)


def test_runs_as_a_standalone_process():
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "taskengine.testing.fake_llm",
            "--reply",
            "from child",
            "--model",
            "x",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline().strip()  # the child prints its URL once bound
        assert line.startswith("FAKE_LLM_URL=http://127.0.0.1:")
        url = line.split("=", 1)[1]
        status, text = post(url + CHAT, chat_body("hi"))
        assert status == 200
        assert json.loads(text)["choices"][0]["message"]["content"] == "from child"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        proc.stdout.close()
    assert proc.returncode == 0
