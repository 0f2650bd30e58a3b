"""What a chain sees as its input when it is served at `/openai/{chain}/v1`: the request without
its transport fields, so streaming changes how the answer travels, never what the chain sees."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import httpx
import openai

from taskengine.testing.fake_llm import FakeLLMServer

from .conftest import TOKEN, LiveServer, make_settings

#: The prompt is the whole input rendered as text, so any transport field would show in it.
ECHO_INPUT = {
    "id": "echo-input",
    "tasks": [{"id": "answer", "handler": "raw_string", "prompt_template": "{{ .input }}"}],
}


def _client(tmp_path: Path, fake_llm: FakeLLMServer, live_server: Callable[..., LiveServer]):
    live = live_server(make_settings(tmp_path, fake_llm, api_token=TOKEN))
    created = httpx.post(
        f"{live.url}/taskchains", json=ECHO_INPUT, headers={"Authorization": f"Bearer {TOKEN}"}
    )
    assert created.status_code == 201, created.text
    return openai.OpenAI(base_url=f"{live.url}/openai/echo-input/v1", api_key=TOKEN, max_retries=0)


def test_streaming_and_plain_requests_give_the_chain_the_same_input(
    tmp_path: Path, fake_llm: FakeLLMServer, live_server: Callable[..., LiveServer]
) -> None:
    fake_llm.default_reply = FakeLLMServer.echo  # the model repeats the prompt it was sent
    messages = [{"role": "user", "content": "ping"}]
    with _client(tmp_path, fake_llm, live_server) as sdk:
        plain = sdk.chat.completions.create(model="echo-input", messages=messages, temperature=0)
        chunks = sdk.chat.completions.create(
            model="echo-input", messages=messages, temperature=0, stream=True,
            stream_options={"include_usage": True},
        )  # fmt: skip
        with chunks:
            streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    prompts = [r.text for r in fake_llm.requests_for("/v1/chat/completions")]
    assert len(prompts) == 2 and prompts[0] == prompts[1]
    assert plain.choices[0].message.content == streamed == prompts[0]
    seen = json.loads(prompts[0])
    assert "stream" not in seen and "stream_options" not in seen
    # what stays: the conversation and the sampling settings the client chose
    assert seen["messages"] == messages and seen["temperature"] == 0
