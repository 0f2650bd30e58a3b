"""OpenAICompatProvider against a real FakeLLMServer: chat, stream, tools, embeddings, faults."""

from __future__ import annotations

import json
import time

import pytest

from taskengine.datatypes import FunctionCall, FunctionTool, Message, Tool, ToolCall
from taskengine.errors import LLMError, ProviderRequestError, ProviderUnavailableError
from taskengine.providers.openai_compat import OpenAICompatProvider

WEATHER = Tool(
    function=FunctionTool(
        name="weather.get_forecast",
        description="Forecast for a city",
        parameters={
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    )
)


@pytest.fixture
async def provider(fake):
    prov = OpenAICompatProvider(
        "local", type="vllm", base_url=fake.openai_base_url, api_key="sk-test", timeout=5
    )
    yield prov
    await prov.aclose()


def user(text: str) -> list[Message]:
    return [Message(role="user", content=text)]


async def test_chat_returns_reply_usage_and_who_answered(fake, provider):
    result = await provider.chat(
        user("say hello please"), model="m1", temperature=0.3, max_tokens=50
    )

    assert result.content == "hello from fake"
    assert result.message.role == "assistant"
    assert (result.provider, result.model) == ("local", "m1")
    assert result.usage_reported is True
    assert (result.input_tokens, result.output_tokens) == (3, 3)  # the fake counts words
    assert result.finish_reason == "stop"
    assert result.latency_ms > 0
    sent = fake.last_request()
    assert sent.path == "/v1/chat/completions"
    assert sent.model == "m1"
    assert sent.temperature == 0.3
    assert sent.max_tokens == 50
    assert sent.messages == [{"role": "user", "content": "say hello please"}]
    assert sent.headers["Authorization"] == "Bearer sk-test"


async def test_temperature_is_omitted_when_not_given(fake, provider):
    await provider.chat(user("hi"), model="m1")
    assert "temperature" not in fake.last_request().json


async def test_prompt_sends_system_instruction_first(fake, provider):
    await provider.prompt(
        "what now?", model="m1", system_instruction="You are terse.", temperature=0.0
    )

    sent = fake.last_request()
    assert sent.messages == [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "what now?"},
    ]
    assert sent.temperature == 0.0


async def test_streaming_chat_delivers_deltas_and_usage(fake, provider):
    fake.add_rule("story", reply="once upon a time")
    deltas: list[str] = []

    async def on_delta(text: str) -> None:
        deltas.append(text)

    result = await provider.chat(user("tell a story"), model="m1", on_delta=on_delta)

    assert len(deltas) == 4
    assert "".join(deltas) == result.content == "once upon a time"
    assert result.usage_reported is True
    assert result.output_tokens == 4
    assert fake.last_request().stream is True
    assert fake.last_request().json["stream_options"] == {"include_usage": True}


async def test_stream_iterator_yields_text(fake, provider):
    fake.add_rule(reply="a b c")
    pieces = [piece async for piece in provider.stream(user("x"), model="m1")]
    assert "".join(pieces) == "a b c"


async def test_tool_names_are_mapped_out_and_back(fake, provider):
    fake.add_rule(
        "weather", tool_calls=[{"name": "weather__get_forecast", "arguments": {"city": "Oslo"}}]
    )

    result = await provider.chat(user("weather in Oslo?"), model="m1", tools=[WEATHER])

    sent_names = [t["function"]["name"] for t in fake.last_request().tools]
    assert sent_names == ["weather__get_forecast"]  # OpenAI rejects dots
    assert result.finish_reason == "tool_calls"
    [call] = result.tool_calls
    assert call.function.name == "weather.get_forecast"
    assert json.loads(call.function.arguments) == {"city": "Oslo"}
    assert call.id


async def test_streamed_tool_calls_are_reassembled(fake, provider):
    fake.add_rule(
        "weather", tool_calls=[{"name": "weather__get_forecast", "arguments": {"city": "Bergen"}}]
    )

    async def ignore(_: str) -> None:
        return None

    result = await provider.chat(user("weather?"), model="m1", tools=[WEATHER], on_delta=ignore)

    [call] = result.tool_calls
    assert call.function.name == "weather.get_forecast"
    assert json.loads(call.function.arguments) == {"city": "Bergen"}
    assert result.finish_reason == "tool_calls"


async def test_history_with_tool_calls_is_sent_with_wire_names(fake, provider):
    call = ToolCall(
        id="call_1", function=FunctionCall(name="weather.get_forecast", arguments='{"city":"Oslo"}')
    )
    history = [
        Message(role="user", content="weather?"),
        Message(role="assistant", content="", call_tools=[call]),
        Message(role="tool", content='{"temp": 3}', tool_call_id="call_1"),
    ]
    await provider.chat(history, model="m1", tools=[WEATHER])

    sent = fake.last_request().messages
    assert sent[1]["tool_calls"][0]["function"]["name"] == "weather__get_forecast"
    assert sent[1]["content"] is None
    assert sent[2] == {"role": "tool", "content": '{"temp": 3}', "tool_call_id": "call_1"}


async def test_embed_and_list_models(fake, provider):
    result = await provider.embed("some text", model="embed-1")
    assert result.vector == pytest.approx(fake.embedding_for("some text"))
    assert (result.provider, result.model, result.input_tokens) == ("local", "embed-1", 2)
    assert fake.last_request().json["encoding_format"] == "float"
    assert await provider.list_models() == ["m1", "m2", "embed-1"]


async def test_openai_org_headers_do_not_leak_to_other_servers(fake, monkeypatch):
    monkeypatch.setenv("OPENAI_ORG_ID", "org-secret")
    prov = OpenAICompatProvider("v", type="vllm", base_url=fake.openai_base_url)
    try:
        await prov.chat(user("hi"), model="m1")
    finally:
        await prov.aclose()
    headers = {k.lower() for k in fake.last_request().headers}
    assert "openai-organization" not in headers


async def test_httpx_transport_also_works(fake):
    prov = OpenAICompatProvider("h", base_url=fake.openai_base_url, transport="httpx", timeout=5)
    try:
        result = await prov.chat(user("hi"), model="m1")
    finally:
        await prov.aclose()
    assert result.content == "hello from fake"


# --- faults ------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [500, 502, 503, 429])
async def test_server_errors_are_unavailable_with_status_and_body(fake, provider, status):
    fake.add_rule(status=status, body={"error": {"message": f"boom {status}"}})

    with pytest.raises(ProviderUnavailableError) as info:
        await provider.chat(user("hi"), model="m1")

    err = info.value
    assert (err.provider, err.model, err.status_code) == ("local", "m1", status)
    assert f"boom {status}" in err.body
    assert f"HTTP {status}" in str(err)


@pytest.mark.parametrize("status", [400, 401, 422])
async def test_request_errors_are_not_retryable(fake, provider, status):
    fake.add_rule(status=status, body="bad request text")

    with pytest.raises(ProviderRequestError) as info:
        await provider.chat(user("hi"), model="m1")

    assert info.value.status_code == status
    assert "bad request text" in str(info.value)


async def test_malformed_body_is_a_clear_error(fake, provider):
    fake.add_rule(malformed=True)
    with pytest.raises(ProviderUnavailableError) as info:
        await provider.chat(user("hi"), model="m1")
    assert "malformed" in str(info.value)
    assert '{"id": "broken"' in info.value.body


async def test_malformed_stream_is_a_clear_error(fake, provider):
    fake.add_rule(malformed=True)

    async def ignore(_: str) -> None:
        return None

    with pytest.raises(LLMError) as info:
        await provider.chat(user("hi"), model="m1", on_delta=ignore)
    assert info.value.provider == "local"


async def test_dropped_connection_is_unavailable(fake, provider):
    fake.add_rule(drop=True)
    with pytest.raises(ProviderUnavailableError) as info:
        await provider.chat(user("hi"), model="m1")
    assert "local" in str(info.value)


async def test_connection_dropped_mid_stream_is_unavailable(fake, provider):
    fake.add_rule(reply="one two three four five", drop_after_chunks=2)
    seen: list[str] = []

    async def collect(text: str) -> None:
        seen.append(text)

    with pytest.raises(ProviderUnavailableError):
        await provider.chat(user("hi"), model="m1", on_delta=collect)
    assert seen == ["one "]


async def test_slow_server_times_out_quickly(fake, provider):
    fake.add_rule(delay=2.0)
    started = time.monotonic()
    with pytest.raises(ProviderUnavailableError) as info:
        await provider.chat(user("hi"), model="m1", timeout=0.2)
    assert time.monotonic() - started < 1.5
    assert "time" in str(info.value).lower()


async def test_refused_connection_is_unavailable(dead_url):
    prov = OpenAICompatProvider("gone", base_url=dead_url + "/v1", timeout=2)
    try:
        with pytest.raises(ProviderUnavailableError) as info:
            await prov.chat(user("hi"), model="m1")
    finally:
        await prov.aclose()
    assert "connection" in str(info.value).lower()
    assert info.value.provider == "gone"


@pytest.mark.parametrize("stream", [False, True])
async def test_usage_is_estimated_when_the_server_reports_none(stream):
    from taskengine.providers.base import estimate_tokens
    from taskengine.testing.fake_llm import FakeLLMServer

    async def ignore(_: str) -> None:
        return None

    async with FakeLLMServer(default_reply="four words right here", report_usage=False) as srv:
        prov = OpenAICompatProvider("quiet", base_url=srv.openai_base_url, timeout=5)
        try:
            messages = user("count me")
            result = await prov.chat(messages, model="m1", on_delta=ignore if stream else None)
        finally:
            await prov.aclose()
    assert result.usage_reported is False
    assert result.input_tokens == estimate_tokens(messages)
    assert result.output_tokens == estimate_tokens(result.message) > 0


async def test_configured_headers_arrive(fake):
    prov = OpenAICompatProvider("h", base_url=fake.openai_base_url, headers={"X-Team": "search"})
    try:
        await prov.chat(user("hi"), model="m1")
    finally:
        await prov.aclose()
    assert fake.last_request().headers["X-Team"] == "search"


def test_reply_text_decodes_utf8_without_parsing_the_header_and_honours_another_charset():
    from taskengine.providers.openai_compat import _httpx, _reply_text

    httpx = _httpx()
    text = '{"content": "naïve ☃"}'
    plain = httpx.Response(200, content=text.encode(), headers={"content-type": "application/json"})
    assert _reply_text(plain) == text
    bare = httpx.Response(200, content=text.encode())
    assert _reply_text(bare) == text
    latin = httpx.Response(
        200,
        content='{"content": "naïve"}'.encode("latin-1"),
        headers={"content-type": "application/json; charset=ISO-8859-1"},
    )
    assert _reply_text(latin) == '{"content": "naïve"}'
    broken = httpx.Response(
        200, content=b'{"a": "\xff"}', headers={"content-type": "application/json"}
    )
    assert _reply_text(broken) == '{"a": "\ufffd"}'  # replaced, as response.text does
