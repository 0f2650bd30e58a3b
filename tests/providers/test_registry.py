"""Presets and ProviderRegistry: configured and implicit providers, defaults, lookups."""

from __future__ import annotations

import pytest

from taskengine.errors import ConfigError, ProviderNotConfiguredError
from taskengine.providers.config import PROVIDER_TYPES, ProviderConfig
from taskengine.providers.ollama import OllamaProvider
from taskengine.providers.openai_compat import OpenAICompatProvider
from taskengine.providers.presets import PRESETS, build_provider
from taskengine.providers.registry import ProviderRegistry


def test_every_provider_type_has_a_preset():
    assert set(PROVIDER_TYPES) == set(PRESETS)


@pytest.mark.parametrize(
    ("type_name", "cls", "base_url"),
    [
        ("ollama", OllamaProvider, "http://127.0.0.1:11434"),
        ("openai", OpenAICompatProvider, "https://api.openai.com/v1"),
        ("vllm", OpenAICompatProvider, "http://127.0.0.1:8000/v1"),
        ("gemini", OpenAICompatProvider, "https://generativelanguage.googleapis.com/v1beta/openai"),
        ("openrouter", OpenAICompatProvider, "https://openrouter.ai/api/v1"),
    ],
)
def test_presets_pick_wire_client_and_default_url(type_name, cls, base_url):
    provider = build_provider(ProviderConfig(name="p", type=type_name), {})
    assert isinstance(provider, cls)
    assert provider.base_url == base_url
    assert provider.type == type_name


def test_preset_reads_its_own_env_vars():
    env = {
        "OLLAMA_HOST": "gpu:9999",
        "GEMINI_API_KEY": "g-key",
        "OPENAI_BASE_URL": "http://proxy/v1",
    }
    assert (
        build_provider(ProviderConfig(name="o", type="ollama"), env).base_url == "http://gpu:9999"
    )
    gemini = build_provider(ProviderConfig(name="g", type="gemini"), env)
    assert gemini._api_key == "g-key"
    assert (
        build_provider(ProviderConfig(name="x", type="openai"), env).base_url == "http://proxy/v1"
    )


def test_servers_without_default_url_need_one():
    with pytest.raises(ConfigError, match="needs a base_url"):
        build_provider(ProviderConfig(name="cpp", type="llamacpp"), {})
    provider = build_provider(
        ProviderConfig(name="cpp", type="llamacpp", base_url="http://h:8080/v1"), {}
    )
    assert provider.base_url == "http://h:8080/v1"


def test_unknown_type_lists_the_known_ones():
    with pytest.raises(ConfigError, match=r"unknown provider type 'bedrock'.*ollama"):
        build_provider(ProviderConfig(name="b", type="bedrock"), {})


async def test_from_settings_combines_config_and_environment():
    configs = [
        ProviderConfig(name="local", type="vllm", base_url="http://box:8000/v1", models=["qwen"])
    ]
    env = {
        "OLLAMA_HOST": "127.0.0.1:11434",
        "OPENAI_API_KEY": "sk-x",
        "GEMINI_API_KEY": "g",
        "TASKENGINE_MODEL": "llama3",
        "TASKENGINE_EMBED_MODEL": "nomic-embed-text",
    }
    async with ProviderRegistry.from_settings(configs, env) as registry:
        assert registry.names == ["local", "ollama", "openai", "gemini"]
        assert registry.default_provider().name == "local"  # first configured
        assert registry.default_model == "llama3"
        assert registry.model_for(registry.get("ollama"), embed=True) == "nomic-embed-text"


async def test_taskengine_provider_picks_the_default_by_name_or_type():
    configs = [
        ProviderConfig(name="a", type="vllm", base_url="http://a/v1"),
        ProviderConfig(name="b", type="ollama"),
    ]
    async with ProviderRegistry.from_settings(
        configs, {"TASKENGINE_PROVIDER": "ollama"}
    ) as registry:
        assert registry.default_provider().name == "b"  # resolved by type
        assert registry.get("vllm").name == "a"
        assert registry.get("b").name == "b"


async def test_nothing_configured_says_which_env_vars_to_set():
    async with ProviderRegistry.from_settings([], {}) as registry:
        assert len(registry) == 0
        with pytest.raises(ProviderNotConfiguredError) as info:
            registry.default_provider()
    message = str(info.value)
    for var in ("OLLAMA_HOST", "OPENAI_API_KEY", "GEMINI_API_KEY", "TASKENGINE_MODEL"):
        assert var in message


async def test_keyless_local_types_are_created_on_demand_but_keyed_ones_are_not():
    async with ProviderRegistry.from_settings([], {}) as registry:
        assert registry.get("ollama").base_url == "http://127.0.0.1:11434"
        assert "ollama" in registry
        with pytest.raises(ProviderNotConfiguredError, match="'openai' is not configured"):
            registry.get("openai")
        with pytest.raises(ProviderNotConfiguredError, match="'nonsense'"):
            registry.get("nonsense")


def test_duplicate_names_are_rejected():
    configs = [ProviderConfig(name="x", type="ollama"), ProviderConfig(name="x", type="vllm")]
    with pytest.raises(ProviderNotConfiguredError, match="configured twice"):
        ProviderRegistry.from_settings(configs, {})


def test_environment_is_not_read_at_import_or_without_from_settings(monkeypatch):
    monkeypatch.setenv("OLLAMA_HOST", "somewhere:1")
    registry = ProviderRegistry()
    assert len(registry) == 0
    assert ProviderRegistry.from_settings().get("ollama").base_url == "http://somewhere:1"


async def test_aclose_closes_every_pool(fake):
    configs = [
        ProviderConfig(name="o", type="ollama", base_url=fake.url),
        ProviderConfig(name="v", type="vllm", base_url=fake.openai_base_url),
    ]
    registry = ProviderRegistry.from_settings(configs, {}, default_model="m1")
    ollama, vllm = registry.get("o"), registry.get("v")
    await ollama.list_models()
    await vllm.list_models()
    session = ollama._session
    assert session is not None and not session.closed
    await registry.aclose()
    assert session.closed
    assert vllm._client is None
