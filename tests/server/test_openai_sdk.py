"""The official `openai` SDK, sync and streaming, as a client of a real uvicorn server."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import openai
import pytest

from taskengine.testing.fake_llm import FakeLLMServer

from .conftest import TOKEN, LiveServer, make_settings

CHAT = {
    "id": "assistant",
    "tasks": [
        {
            "id": "reply",
            "handler": "model_execution",
            "execute_config": {"pass_clients_tools": True},
        }
    ],
}
#: a classifier first (its reply must not leak into the streamed answer), then the answer
ROUTED = {
    "id": "routed",
    "tasks": [
        {"id": "classify", "handler": "condition_key", "prompt_template": "Is this polite? {{.input}}",
         "valid_conditions": {"yes": True, "no": True},
         "transition": {"branches": [{"operator": "default", "goto": "reply"}]}},
        {"id": "reply", "handler": "model_execution", "input_var": "input"},
    ],
}  # fmt: skip
WEATHER_TOOL = {
    "type": "function",
    "function": {"name": "get_weather", "description": "Weather for a city.",
                 "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}},
}  # fmt: skip


@pytest.fixture
def server(
    tmp_path: Path, fake_llm: FakeLLMServer, live_server: Callable[..., LiveServer]
) -> LiveServer:
    live = live_server(make_settings(tmp_path, fake_llm, api_token=TOKEN))
    for chain in (CHAT, ROUTED):
        response = httpx.post(
            f"{live.url}/taskchains", json=chain, headers={"Authorization": f"Bearer {TOKEN}"}
        )
        assert response.status_code == 201, response.text
    return live


@pytest.fixture
def client(server: LiveServer):
    sdk = openai.OpenAI(base_url=f"{server.url}/openai/assistant/v1", api_key=TOKEN, max_retries=0)
    yield sdk
    sdk.close()


def test_sync_completion(client: openai.OpenAI, fake_llm: FakeLLMServer) -> None:
    fake_llm.add_rule("capital", reply="Paris is the capital.")
    completion = client.chat.completions.create(
        model="assistant",
        messages=[{"role": "user", "content": "What is the capital of France?"}],
        temperature=0.3,
    )
    assert completion.object == "chat.completion"
    assert completion.id.startswith("chatcmpl-") and completion.created > 0
    assert completion.model == "assistant"
    choice = completion.choices[0]
    assert choice.message.role == "assistant" and choice.message.content == "Paris is the capital."
    assert choice.finish_reason == "stop"
    usage = completion.usage
    assert usage is not None and usage.completion_tokens > 0
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    sent = fake_llm.last_request()
    assert (
        sent.temperature == 0.3 and sent.model == "fake-model"
    )  # the chain id is not a backend model


def test_streaming_sends_chunks_as_tokens_arrive(
    client: openai.OpenAI, fake_llm: FakeLLMServer
) -> None:
    fake_llm.add_rule("story", reply="one two three four five six", chunk_delay=0.15)
    started = time.monotonic()
    arrivals: list[tuple[float, openai.types.chat.ChatCompletionChunk]] = []
    stream = client.chat.completions.create(
        model="assistant", messages=[{"role": "user", "content": "tell a story"}], stream=True,
        stream_options={"include_usage": True},
    )  # fmt: skip
    with stream:
        for chunk in stream:
            arrivals.append((time.monotonic() - started, chunk))
    chunks = [c for _, c in arrivals]
    assert all(c.object == "chat.completion.chunk" and c.model == "assistant" for c in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "one two three four five six"
    finals = [
        c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason
    ]
    assert finals == ["stop"]
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
    content_times = [t for t, c in arrivals if c.choices and c.choices[0].delta.content]
    # Not buffered: the first words reach the client while the model is still producing the rest.
    assert content_times[-1] - content_times[0] > 0.4


def test_streaming_shows_only_the_answer_not_the_classifier(
    server: LiveServer, fake_llm: FakeLLMServer
) -> None:
    fake_llm.add_rule(regex="^Is this polite", reply="yes")
    fake_llm.add_rule("please", reply="Happy to help")
    with openai.OpenAI(
        base_url=f"{server.url}/openai/routed/v1", api_key=TOKEN, max_retries=0
    ) as sdk:
        stream = sdk.chat.completions.create(
            model="routed", messages=[{"role": "user", "content": "please help"}], stream=True
        )
        with stream:
            text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        assert text == "Happy to help"
        completion = sdk.chat.completions.create(
            model="routed", messages=[{"role": "user", "content": "please"}]
        )
    assert completion.choices[0].message.content == "Happy to help"
    assert completion.usage is not None and completion.usage.prompt_tokens > 0


def test_tool_calls_round_trip(client: openai.OpenAI, fake_llm: FakeLLMServer) -> None:
    fake_llm.reply_sequence([
        {"tool_calls": [{"name": "get_weather", "arguments": {"city": "Oslo"}}]},
        "It is sunny in Oslo.",
    ])  # fmt: skip
    messages: list[dict] = [{"role": "user", "content": "What is the weather in Oslo?"}]
    first = client.chat.completions.create(
        model="assistant", messages=messages, tools=[WEATHER_TOOL]
    )
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    call = choice.message.tool_calls[0]
    assert call.function.name == "get_weather" and json.loads(call.function.arguments) == {
        "city": "Oslo"
    }
    assert fake_llm.last_request().tools[0]["function"]["name"] == "get_weather"

    messages.append(choice.message.model_dump(exclude_none=True))
    messages.append({"role": "tool", "tool_call_id": call.id, "content": "Sunny, 21 C"})
    second = client.chat.completions.create(
        model="assistant", messages=messages, tools=[WEATHER_TOOL]
    )
    assert second.choices[0].message.content == "It is sunny in Oslo."
    sent = fake_llm.last_request().messages
    assert sent[-1]["role"] == "tool" and sent[-1]["tool_call_id"] == call.id
    assert sent[-2]["tool_calls"][0]["function"]["name"] == "get_weather"


def test_tool_calls_stream(client: openai.OpenAI, fake_llm: FakeLLMServer) -> None:
    fake_llm.add_rule(
        "weather", tool_calls=[{"name": "get_weather", "arguments": {"city": "Bergen"}}]
    )
    stream = client.chat.completions.create(
        model="assistant", messages=[{"role": "user", "content": "weather in Bergen"}], tools=[WEATHER_TOOL],
        stream=True,
    )  # fmt: skip
    with stream:
        chunks = list(stream)
    calls = [tc for c in chunks if c.choices for tc in (c.choices[0].delta.tool_calls or [])]
    assert len(calls) == 1 and calls[0].index == 0 and calls[0].id
    assert calls[0].function.name == "get_weather" and json.loads(calls[0].function.arguments) == {
        "city": "Bergen"
    }
    assert [
        c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason
    ] == ["tool_calls"]


def test_models_lists_the_chain(client: openai.OpenAI) -> None:
    models = client.models.list()
    assert [m.id for m in models.data] == ["assistant"]
    assert client.models.retrieve("assistant").owned_by == "taskengine"


def test_errors_reach_the_sdk_as_its_exceptions(
    server: LiveServer, fake_llm: FakeLLMServer
) -> None:
    with (
        openai.OpenAI(
            base_url=f"{server.url}/openai/missing/v1", api_key=TOKEN, max_retries=0
        ) as sdk,
        pytest.raises(openai.NotFoundError) as missing,
    ):
        sdk.chat.completions.create(model="missing", messages=[{"role": "user", "content": "hi"}])
    assert missing.value.body["code"] == "not_found"
    with (
        openai.OpenAI(
            base_url=f"{server.url}/openai/assistant/v1", api_key="wrong", max_retries=0
        ) as sdk,
        pytest.raises(openai.AuthenticationError),
    ):
        sdk.chat.completions.create(model="assistant", messages=[{"role": "user", "content": "hi"}])
    fake_llm.add_rule("down", status=503)
    with openai.OpenAI(
        base_url=f"{server.url}/openai/assistant/v1", api_key=TOKEN, max_retries=0
    ) as sdk:
        with pytest.raises(openai.APIStatusError) as failed:
            sdk.chat.completions.create(
                model="assistant", messages=[{"role": "user", "content": "down"}]
            )
        assert failed.value.status_code == 502
        with pytest.raises(openai.APIStatusError) as streamed:
            sdk.chat.completions.create(
                model="assistant", messages=[{"role": "user", "content": "down"}], stream=True
            )
        assert streamed.value.status_code == 502


def test_content_parts_are_read_as_text(client: openai.OpenAI, fake_llm: FakeLLMServer) -> None:
    fake_llm.add_rule("parts joined", reply="seen")
    completion = client.chat.completions.create(
        model="assistant",
        messages=[
            {
                "role": "user",
                "content": [{"type": "text", "text": "parts "}, {"type": "text", "text": "joined"}],
            }
        ],
    )
    assert completion.choices[0].message.content == "seen"
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(
            model="assistant",
            messages=[
                {
                    "role": "user",
                    "content": [{"type": "image_url", "image_url": {"url": "http://x/y.png"}}],
                }
            ],
        )


def test_failure_after_the_stream_started_arrives_as_an_error_event(
    client: openai.OpenAI, fake_llm: FakeLLMServer
) -> None:
    fake_llm.add_rule("cut", reply="one two three four five", drop_after_chunks=3)
    stream = client.chat.completions.create(
        model="assistant", messages=[{"role": "user", "content": "cut me off"}], stream=True
    )
    received = []
    with stream, pytest.raises(openai.APIError) as failed:
        for chunk in stream:
            received.append(chunk)
    assert received and received[0].choices[0].delta.role == "assistant"
    assert failed.value.body["type"] == "ProviderUnavailableError" and failed.value.body["run_id"]


def test_a_client_that_leaves_mid_stream_frees_its_run_slot(
    server: LiveServer, fake_llm: FakeLLMServer
) -> None:
    fake_llm.add_rule("long", reply="a b c d e f g h i j", chunk_delay=0.3)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    body = {
        "model": "assistant",
        "stream": True,
        "messages": [{"role": "user", "content": "long story"}],
    }
    with httpx.Client(base_url=server.url, headers=auth, timeout=10) as http:
        with http.stream("POST", "/openai/assistant/v1/chat/completions", json=body) as response:
            assert response.status_code == 200
            lines = response.iter_lines()  # kept alive: a dropped iterator closes the connection
            assert next(lines).startswith("data: ")
            assert http.get("/health").json()["runsInFlight"] == 1
        deadline = time.monotonic() + 10
        while http.get("/health").json()["runsInFlight"] != 0:
            assert time.monotonic() < deadline, "the run slot was not released"
            time.sleep(0.05)
        runs = http.get("/runs", params={"chainId": "assistant"}).json()["items"]
        assert runs[0]["status"] == "interrupted"
