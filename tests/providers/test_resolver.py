"""ModelResolver: candidates from execute_config, fallback order, and what is (not) worth a fallback."""

from __future__ import annotations

import pytest

from taskengine.chain import LLMExecutionConfig
from taskengine.datatypes import Message
from taskengine.errors import (
    ProviderNotConfiguredError,
    ProviderRequestError,
    ProviderUnavailableError,
)
from taskengine.providers.config import ProviderConfig
from taskengine.providers.registry import ProviderRegistry
from taskengine.providers.resolver import ModelResolver


@pytest.fixture
async def registry(fake, fake2):
    configs = [
        ProviderConfig(name="first", type="vllm", base_url=fake.openai_base_url, timeout=5),
        ProviderConfig(name="second", type="ollama", base_url=fake2.url, timeout=5),
    ]
    reg = ProviderRegistry.from_settings(
        configs, {"TASKENGINE_MODEL": "m1", "TASKENGINE_EMBED_MODEL": "embed-1"}
    )
    yield reg
    await reg.aclose()


@pytest.fixture
def resolver(registry):
    return ModelResolver(registry)


def both(**extra) -> LLMExecutionConfig:
    return LLMExecutionConfig(provider="first", providers=["second"], **extra)


USER = [Message(role="user", content="hello")]


async def test_defaults_when_config_is_empty(fake, resolver):
    result = await resolver.chat(None, USER)
    assert (result.provider, result.model, result.content) == ("first", "m1", "hello from fake")
    assert fake.last_request().model == "m1"


async def test_first_candidate_answers_when_healthy(fake, fake2, resolver):
    result = await resolver.chat(both(model="m2"), USER)
    assert (result.provider, result.model) == ("first", "m2")
    assert fake2.requests == []


@pytest.mark.parametrize(
    "fault",
    [
        {"status": 500},
        {"status": 503},
        {"status": 429},
        {"drop": True},
        {"delay": 2.0},
        {"malformed": True},
    ],
    ids=["500", "503", "429", "dropped", "timeout", "malformed"],
)
async def test_falls_back_to_the_next_provider(fake, fake2, resolver, fault):
    fake.add_rule(**fault)

    result = await resolver.chat(both(), USER, timeout=0.3)

    assert (result.provider, result.model, result.content) == ("second", "m1", "hello from second")
    assert len(fake.requests) == 1
    assert len(fake2.requests) == 1


async def test_refused_connection_falls_back(fake2, dead_url):
    configs = [
        ProviderConfig(name="down", type="vllm", base_url=dead_url + "/v1", timeout=2),
        ProviderConfig(name="up", type="ollama", base_url=fake2.url),
    ]
    async with ProviderRegistry.from_settings(configs, {}) as reg:
        result = await ModelResolver(reg).chat(
            LLMExecutionConfig(providers=["down", "up"], model="m1"), USER
        )
    assert result.provider == "up"


async def test_falls_back_along_models_of_one_provider(fake, resolver):
    fake.add_rule(model="big", status=503)
    result = await resolver.chat(
        LLMExecutionConfig(provider="first", model="big", models=["small"]), USER
    )
    assert (result.provider, result.model) == ("first", "small")
    assert [r.model for r in fake.requests] == ["big", "small"]


async def test_missing_model_404_tries_the_next_candidate(fake, fake2, resolver):
    fake.add_rule(model="m1", status=404, body={"error": {"message": "model not found"}})
    result = await resolver.chat(both(), USER)
    assert result.provider == "second"


@pytest.mark.parametrize("status", [400, 401, 422])
async def test_request_errors_do_not_fall_back(fake, fake2, resolver, status):
    fake.add_rule(status=status, body={"error": {"message": "context too long"}})

    with pytest.raises(ProviderRequestError) as info:
        await resolver.chat(both(), USER)

    assert info.value.status_code == status
    assert "context too long" in str(info.value)
    assert fake2.requests == []


async def test_all_candidates_failing_lists_every_attempt(fake, fake2, resolver):
    fake.add_rule(status=500)
    fake2.add_rule(status=429)

    with pytest.raises(ProviderUnavailableError) as info:
        await resolver.chat(both(), USER)

    message = str(info.value)
    assert "all 2 candidates failed" in message
    assert "first/m1" in message and "HTTP 500" in message
    assert "second/m1" in message and "HTTP 429" in message
    assert [label for label, _ in info.value.attempts] == ["first/m1", "second/m1"]


async def test_unconfigured_candidates_are_skipped(fake2, resolver):
    result = await resolver.chat(LLMExecutionConfig(providers=["openrouter", "second"]), USER)
    assert result.provider == "second"


async def test_no_provider_at_all_names_the_env_vars():
    async with ProviderRegistry.from_settings([], {}) as reg:
        with pytest.raises(ProviderNotConfiguredError, match="OLLAMA_HOST"):
            await ModelResolver(reg).chat(None, USER)


async def test_no_model_anywhere_is_a_clear_error(fake):
    configs = [ProviderConfig(name="p", type="vllm", base_url=fake.openai_base_url)]
    async with ProviderRegistry.from_settings(configs, {}) as reg:
        with pytest.raises(ProviderNotConfiguredError, match="TASKENGINE_MODEL"):
            await ModelResolver(reg).chat(None, USER)


async def test_provider_model_list_filters_pairs(fake, fake2):
    configs = [
        ProviderConfig(name="cloud", type="vllm", base_url=fake.openai_base_url, models=["gpt-x"]),
        ProviderConfig(name="local", type="ollama", base_url=fake2.url, models=["llama"]),
    ]
    async with ProviderRegistry.from_settings(configs, {}) as reg:
        resolver = ModelResolver(reg)
        config = LLMExecutionConfig(providers=["cloud", "local"], models=["gpt-x", "llama"])
        assert [(name, model) for _, name, model in resolver.candidates(config)] == [
            ("cloud", "gpt-x"),
            ("local", "llama"),
        ]
        fake.add_rule(status=502)
        result = await resolver.chat(config, USER)
    assert (result.provider, result.model) == ("local", "llama")


async def test_temperature_and_system_instruction_reach_the_server(fake, resolver):
    await resolver.prompt(LLMExecutionConfig(temperature=0.7), "q", system_instruction="Be brief.")
    sent = fake.last_request()
    assert sent.temperature == 0.7
    assert sent.messages[0] == {"role": "system", "content": "Be brief."}

    await resolver.chat(LLMExecutionConfig(temperature=0.0), USER)  # 0 is greedy: sent as 0
    assert fake.last_request().json["temperature"] == 0

    await resolver.chat(LLMExecutionConfig(), USER)  # unset: the provider's default
    assert "temperature" not in fake.last_request().json

    await resolver.chat(LLMExecutionConfig(temperature=0.7), USER, temperature=0.0)  # explicit wins
    assert fake.last_request().temperature == 0.0


async def test_streaming_falls_back_before_the_first_delta(fake, fake2, resolver):
    fake.add_rule(status=500)
    deltas: list[str] = []

    async def on_delta(text: str) -> None:
        deltas.append(text)

    result = await resolver.chat(both(), USER, on_delta=on_delta)
    assert result.provider == "second"
    assert "".join(deltas) == "hello from second"


async def test_no_fallback_once_deltas_were_delivered(fake, fake2, resolver):
    fake.add_rule(reply="one two three", drop_after_chunks=2)

    async def on_delta(_: str) -> None:
        return None

    with pytest.raises(ProviderUnavailableError):
        await resolver.chat(both(), USER, on_delta=on_delta)
    assert fake2.requests == []


async def test_embed_uses_the_embed_model_and_falls_back(fake, fake2, resolver):
    fake.add_rule(kind="embed", status=500)
    result = await resolver.embed(both(), "text to embed")
    assert (result.provider, result.model) == ("second", "embed-1")
    assert result.vector == pytest.approx(fake2.embedding_for("text to embed"))


async def test_tool_calls_come_back_with_internal_names(fake, resolver):
    from taskengine.datatypes import FunctionTool, Tool

    tool = Tool(function=FunctionTool(name="crm.find_customer", parameters={"type": "object"}))
    fake.add_rule(tool_calls=[{"name": "crm__find_customer", "arguments": {"q": "ACME"}}])
    result = await resolver.chat(None, USER, tools=[tool])
    assert [c.function.name for c in result.tool_calls] == ["crm.find_customer"]
