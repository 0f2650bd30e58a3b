"""`taskengine serve` (a real subprocess) serving a chain as an OpenAI model, driven by the
official `openai` SDK, plain and streaming, with a real model behind it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
import yaml

from .conftest import LocalModel

pytestmark = pytest.mark.realmodel

TOKEN = "realmodel-test-token"
ASSISTANT = {
    "id": "assistant",
    "tasks": [{"id": "reply", "handler": "model_execution",
               "execute_config": {"max_tokens": 40}}],
}  # fmt: skip
#: The prompt renders the whole chain input, so a transport field in it would change the answer.
TEMPLATED = {
    "id": "templated",
    "tasks": [{"id": "reply", "handler": "raw_string",
               "execute_config": {"max_tokens": 24, "temperature": 0},
               "prompt_template": "Summarise this chat request in one line: {{ .input }}"}],
}  # fmt: skip


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def served(local_model: LocalModel, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`taskengine serve` on a free port with the local model as its only provider."""
    home = tmp_path_factory.mktemp("serve")
    settings = {
        "db": f"sqlite:///{home / 'runs.db'}",
        "kv": "memory://",
        "server": {"api_token": TOKEN},
        "providers": [local_model.provider_settings()],
        "default_provider": "local",
        "default_model": local_model.model,
    }
    config = home / "taskengine.yaml"
    config.write_text(yaml.safe_dump(settings))
    port = _free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("OPENAI_", "TASKENGINE_", "OLLAMA_"))
    }
    log = (home / "serve.log").open("wb")
    process = subprocess.Popen(
        [str(Path(sys.executable).with_name("taskengine")), "--config", str(config), "serve",
         "--host", "127.0.0.1", "--port", str(port)],
        stdout=log, stderr=subprocess.STDOUT, env=env, cwd=home,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None, (home / "serve.log").read_text()
            assert time.monotonic() < deadline, "taskengine serve did not start"
            time.sleep(0.1)
        for chain in (ASSISTANT, TEMPLATED):
            created = httpx.post(f"{url}/taskchains", json=chain,
                                 headers={"Authorization": f"Bearer {TOKEN}"})  # fmt: skip
            assert created.status_code == 201, created.text
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


@pytest.fixture(params=["assistant", "templated"])
def sdk(request: pytest.FixtureRequest, served: str) -> Iterator[openai.OpenAI]:
    """A client of one served chain: `model_execution` on the chat, or a prompt template
    rendering the whole request."""
    client = openai.OpenAI(base_url=f"{served}/openai/{request.param}/v1", api_key=TOKEN,
                           max_retries=0, timeout=60)  # fmt: skip
    client.chain_id = request.param  # type: ignore[attr-defined]
    yield client
    client.close()


MESSAGES = [{"role": "user", "content": "Say hello to the new team member."}]


def test_plain_completion_through_a_real_model(sdk: openai.OpenAI) -> None:
    completion = sdk.chat.completions.create(model=sdk.chain_id, messages=MESSAGES, temperature=0)
    assert completion.object == "chat.completion" and completion.model == sdk.chain_id
    choice = completion.choices[0]
    assert choice.message.role == "assistant"
    assert isinstance(choice.message.content, str) and choice.message.content.strip()
    assert choice.finish_reason in ("stop", "length")
    usage = completion.usage
    assert usage is not None and usage.prompt_tokens > 0 and usage.completion_tokens > 0


def test_streaming_through_a_real_model_matches_the_plain_answer(sdk: openai.OpenAI) -> None:
    plain = sdk.chat.completions.create(model=sdk.chain_id, messages=MESSAGES, temperature=0)
    stream = sdk.chat.completions.create(
        model=sdk.chain_id, messages=MESSAGES, temperature=0, stream=True,
        stream_options={"include_usage": True},
    )  # fmt: skip
    with stream:
        chunks = list(stream)
    deltas = [
        c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content
    ]
    assert len(deltas) > 3, "the answer streams token by token"
    finishes = [
        c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason
    ]
    assert finishes in (["stop"], ["length"])
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
    # Greedy decoding and the same chain input (no `stream` in it): the same answer both ways.
    assert "".join(deltas) == plain.choices[0].message.content
