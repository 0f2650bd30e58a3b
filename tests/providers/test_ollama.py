"""OllamaProvider (native /api) against a real FakeLLMServer."""

from __future__ import annotations

import json
import time

import pytest

from taskengine.datatypes import FunctionCall, FunctionTool, Message, Tool, ToolCall
from taskengine.errors import ProviderRequestError, ProviderUnavailableError
from taskengine.providers.ollama import OllamaProvider
from taskengine.providers.presets import normalize_ollama_host

WEATHER = Tool(function=FunctionTool(name="weather.get_forecast", parameters={"type": "object"}))


@pytest.fixture
async def ollama(fake):
    prov = OllamaProvider("ollama", base_url=fake.url, timeout=5)
    yield prov
    await prov.aclose()


def user(text: str) -> list[Message]:
    return [Message(role="user", content=text)]


async def test_chat_uses_native_api_with_options(fake, ollama):
    result = await ollama.chat(user("hi there"), model="m1", temperature=0.4, max_tokens=20)

    assert result.content == "hello from fake"
    assert (result.provider, result.model, result.usage_reported) == ("ollama", "m1", True)
    assert (result.input_tokens, result.output_tokens) == (2, 3)
    sent = fake.last_request()
    assert sent.path == "/api/chat"
    assert sent.json["stream"] is False
    assert sent.json["options"] == {"temperature": 0.4, "num_predict": 20}
    assert sent.temperature == 0.4


async def test_system_instruction_reaches_the_server(fake, ollama):
    await ollama.prompt("question", model="m1", system_instruction="Answer in French.")
    assert fake.last_request().messages[0] == {"role": "system", "content": "Answer in French."}


async def test_streaming_ndjson(fake, ollama):
    fake.add_rule(reply="streamed reply here")
    deltas: list[str] = []

    async def on_delta(text: str) -> None:
        deltas.append(text)

    result = await ollama.chat(user("go"), model="m1", on_delta=on_delta)

    assert "".join(deltas) == result.content == "streamed reply here"
    assert len(deltas) == 3
    assert result.usage_reported is True
    assert result.output_tokens == 3
    assert fake.last_request().json["stream"] is True


async def test_tool_calls_in_ollama_format_both_ways(fake, ollama):
    fake.add_rule(
        "weather", tool_calls=[{"name": "weather.get_forecast", "arguments": {"city": "Oslo"}}]
    )

    result = await ollama.chat(user("weather?"), model="m1", tools=[WEATHER])

    [call] = result.tool_calls
    assert call.function.name == "weather.get_forecast"
    assert json.loads(call.function.arguments) == {"city": "Oslo"}
    assert result.finish_reason == "tool_calls"
    assert fake.last_request().tools[0]["function"]["name"] == "weather.get_forecast"

    async def ignore(_: str) -> None:
        return None

    streamed = await ollama.chat(user("weather?"), model="m1", tools=[WEATHER], on_delta=ignore)
    assert [c.function.name for c in streamed.tool_calls] == ["weather.get_forecast"]


async def test_history_sends_arguments_as_objects_and_names_tool_results(fake, ollama):
    call = ToolCall(
        id="c1", function=FunctionCall(name="weather.get_forecast", arguments='{"city": "Oslo"}')
    )
    history = [
        Message(role="user", content="weather?"),
        Message(role="assistant", content="", call_tools=[call]),
        Message(role="tool", content="3 degrees", tool_call_id="c1"),
    ]
    await ollama.chat(history, model="m1")

    sent = fake.last_request().messages
    assert sent[1]["tool_calls"] == [
        {"function": {"name": "weather.get_forecast", "arguments": {"city": "Oslo"}}}
    ]
    assert sent[2] == {"role": "tool", "content": "3 degrees", "tool_name": "weather.get_forecast"}


async def test_embed_and_tags(fake, ollama):
    result = await ollama.embed("vector me", model="embed-1")
    assert result.vector == pytest.approx(fake.embedding_for("vector me"))
    assert result.input_tokens == 2
    assert fake.last_request().path == "/api/embed"
    assert await ollama.list_models() == ["m1", "m2", "embed-1"]


@pytest.mark.parametrize("status", [500, 503, 429])
async def test_server_errors_are_unavailable(fake, ollama, status):
    fake.add_rule(status=status)
    with pytest.raises(ProviderUnavailableError) as info:
        await ollama.chat(user("x"), model="m1")
    assert info.value.status_code == status
    assert f"fake error {status}" in info.value.body


async def test_unknown_model_404_is_a_request_error(fake, ollama):
    fake.add_rule(model="nope", status=404, body={"error": "model 'nope' not found"})
    with pytest.raises(ProviderRequestError) as info:
        await ollama.chat(user("x"), model="nope")
    assert "model 'nope' not found" in str(info.value)


@pytest.mark.parametrize("stream", [False, True])
async def test_malformed_and_dropped_replies(fake, ollama, stream):
    async def ignore(_: str) -> None:
        return None

    on_delta = ignore if stream else None
    fake.add_rule("bad", malformed=True)
    fake.add_rule("drop", drop=True)
    with pytest.raises(ProviderUnavailableError) as info:
        await ollama.chat(user("bad"), model="m1", on_delta=on_delta)
    assert "malformed" in str(info.value)
    with pytest.raises(ProviderUnavailableError):
        await ollama.chat(user("drop"), model="m1", on_delta=on_delta)


async def test_stream_cut_before_done_is_an_error(fake, ollama):
    fake.add_rule(reply="a b c d", drop_after_chunks=2)

    async def ignore(_: str) -> None:
        return None

    with pytest.raises(ProviderUnavailableError):
        await ollama.chat(user("x"), model="m1", on_delta=ignore)


async def test_timeout(fake, ollama):
    fake.add_rule(delay=2.0)
    started = time.monotonic()
    with pytest.raises(ProviderUnavailableError) as info:
        await ollama.chat(user("x"), model="m1", timeout=0.2)
    assert time.monotonic() - started < 1.5
    assert "time" in str(info.value)


async def test_refused_connection(dead_url):
    prov = OllamaProvider("ollama", base_url=dead_url, timeout=2)
    try:
        with pytest.raises(ProviderUnavailableError) as info:
            await prov.embed("x", model="m")
    finally:
        await prov.aclose()
    assert "connection" in str(info.value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("127.0.0.1", "http://127.0.0.1:11434"),
        ("0.0.0.0:11500", "http://127.0.0.1:11500"),
        ("https://ollama.example.com", "https://ollama.example.com"),
        ("gpu-box", "http://gpu-box:11434"),
        ("http://gpu-box:8080/", "http://gpu-box:8080"),
    ],
)
def test_ollama_host_is_read_like_ollama_does(value, expected):
    assert normalize_ollama_host(value) == expected


async def test_usage_is_estimated_when_the_server_reports_none():
    from taskengine.testing.fake_llm import FakeLLMServer

    async with FakeLLMServer(report_usage=False) as srv:
        prov = OllamaProvider("o", base_url=srv.url, api_key="k", headers={"X-Team": "a"})
        try:
            result = await prov.chat(user("x"), model="m1")
        finally:
            await prov.aclose()
        sent = srv.last_request().headers
    assert result.usage_reported is False
    assert result.output_tokens > 0
    assert (sent["Authorization"], sent["X-Team"]) == ("Bearer k", "a")
