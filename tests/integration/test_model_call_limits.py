"""Sampling settings and limits of model calls, end to end against a real HTTP FakeLLMServer:
temperature 0 is greedy (sent), max_tokens for every LLM handler, replies cut at the limit are
reported, and calls cut short by a timeout still count in the run's totals."""

from __future__ import annotations

import pytest

from taskengine.chain import load_chain
from taskengine.engine import SimpleEnv
from taskengine.errors import ParseError, TaskTimeoutError
from taskengine.model_calls import PARSE_MAX_TOKENS
from taskengine.providers.config import ProviderConfig
from taskengine.providers.registry import ProviderRegistry
from taskengine.providers.resolver import ModelResolver
from taskengine.testing.fake_llm import FakeLLMServer


@pytest.fixture
def server():
    with FakeLLMServer(default_reply="OK") as srv:
        yield srv


@pytest.fixture(params=["openai_compatible", "ollama"])
async def env(request, server):
    kind = request.param
    url = server.url if kind == "ollama" else server.openai_base_url
    registry = ProviderRegistry.from_settings(
        [ProviderConfig(name="fake", type=kind, base_url=url)], {},
        default_provider="fake", default_model="fake-model",
    )  # fmt: skip
    yield SimpleEnv(resolver=ModelResolver(registry), retry_base=0.001)
    await registry.aclose()


def one_task(**task):
    return load_chain({"id": "limits", "tasks": [{"id": "t", **task}]})


async def test_temperature_zero_is_sent_and_unset_is_left_out(server, env):
    await env.exec_env(one_task(handler="raw_string", execute_config={"temperature": 0}), "hi")
    assert server.last_request().temperature == 0
    await env.exec_env(one_task(handler="raw_string"), "hi")
    assert server.last_request().temperature is None  # the provider's default


async def test_every_llm_handler_sends_max_tokens(server, env):
    server.default_reply = "7"
    await env.exec_env(one_task(handler="parse_number"), "how many?")
    assert server.last_request().max_tokens == PARSE_MAX_TOKENS  # parse handlers: a default
    await env.exec_env(one_task(handler="raw_string"), "write")
    assert server.last_request().max_tokens is None  # others: the provider's limit
    for handler in ("raw_string", "parse_number", "model_execution"):
        chain = one_task(handler=handler, execute_config={"max_tokens": 12})
        await env.exec_env(chain, "go")
        assert server.last_request().max_tokens == 12, handler


async def test_a_reply_cut_at_max_tokens_is_visible_in_the_step(server, env):
    server.default_reply = "one two three four five six"
    chain = one_task(handler="raw_string", execute_config={"max_tokens": 3})
    result = await env.exec_env(chain, "count")
    assert result.output == "one two three"
    assert result.state[0].meta["finish_reason"] == "length"
    assert result.state[0].meta["max_tokens"] == 3
    full = await env.exec_env(one_task(handler="raw_string"), "count")
    assert "finish_reason" not in (full.state[0].meta or {})


async def test_a_parse_error_says_the_reply_was_cut(server, env):
    server.default_reply = "let me think about this number carefully 42"
    chain = one_task(handler="parse_number", execute_config={"max_tokens": 4})
    with pytest.raises(ParseError) as caught:
        await env.exec_env(chain, "how many?")
    assert "cut at max_tokens=4 (finish_reason: length)" in str(caught.value)


async def test_a_timed_out_call_counts_in_the_totals(server, env):
    server.add_rule(delay=5)
    chain = one_task(handler="raw_string", timeout="300ms")
    with pytest.raises(TaskTimeoutError) as caught:
        await env.exec_env(chain, "a prompt of several words")
    totals = caught.value.run_result.totals
    assert totals["llm_calls"] == 1 and totals["failed_calls"] == 1
    assert totals["input_tokens"] > 0 and totals["output_tokens"] == 0


async def test_a_timed_out_stream_counts_what_arrived(server, env):
    # 16 chunks 0.1 s apart cannot finish in 1.2 s, yet the first ones arrive even on a busy machine
    server.add_rule(reply="a b c d e f g h i j k l m n o p", chunk_delay=0.1)
    chain = one_task(handler="raw_string", timeout="1200ms")
    seen: list[str] = []

    def on_event(event):
        if event["type"] == "delta":
            seen.append(event["delta"])

    with pytest.raises(TaskTimeoutError) as caught:
        await env.exec_env(chain, "spell", on_event=on_event)
    totals = caught.value.run_result.totals
    assert seen and totals["llm_calls"] == 1 and totals["failed_calls"] == 1
    assert totals["output_tokens"] >= 1
