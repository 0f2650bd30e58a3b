"""Provider presets: a default base URL, where its key and URL come from, and which wire client.

A preset is data, not code: every OpenAI-compatible vendor shares `OpenAICompatProvider`, and
Ollama's native API has `OllamaProvider`. `build_provider` turns a `ProviderConfig` into a client.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from taskengine.errors import ConfigError

if TYPE_CHECKING:
    from taskengine.providers.base import BaseProvider
    from taskengine.providers.config import ProviderConfig

__all__ = ["PRESETS", "Preset", "build_provider", "get_preset"]


@dataclass(frozen=True, slots=True)
class Preset:
    """How to reach one kind of server."""

    type: str
    wire: str  # "openai" (chat-completions API) or "ollama" (native /api)
    base_url: str | None = None
    base_url_env: str | None = None
    api_key_env: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    description: str = ""


PRESETS: dict[str, Preset] = {
    p.type: p
    for p in (
        Preset(
            "ollama",
            "ollama",
            "http://127.0.0.1:11434",
            base_url_env="OLLAMA_HOST",
            description="Ollama's native API (OLLAMA_HOST).",
        ),
        Preset(
            "openai",
            "openai",
            "https://api.openai.com/v1",
            base_url_env="OPENAI_BASE_URL",
            api_key_env="OPENAI_API_KEY",
            description="OpenAI (OPENAI_API_KEY, OPENAI_BASE_URL).",
        ),
        Preset(
            "vllm",
            "openai",
            "http://127.0.0.1:8000/v1",
            description="vLLM's OpenAI-compatible server.",
        ),
        Preset(
            "gemini",
            "openai",
            "https://generativelanguage.googleapis.com/v1beta/openai/",
            api_key_env="GEMINI_API_KEY",
            description="Gemini's OpenAI-compatible endpoint (GEMINI_API_KEY).",
        ),
        Preset(
            "openrouter",
            "openai",
            "https://openrouter.ai/api/v1",
            api_key_env="OPENROUTER_API_KEY",
            description="OpenRouter (OPENROUTER_API_KEY).",
        ),
        Preset("llamacpp", "openai", None, description="llama.cpp's server (needs base_url)."),
        Preset(
            "openai_compatible",
            "openai",
            None,
            description="Any OpenAI-compatible server (needs base_url).",
        ),
    )
}


def get_preset(type_name: str) -> Preset:
    """The preset for a provider type, or a `ConfigError` listing the known types."""
    preset = PRESETS.get(type_name.strip().lower().replace("-", "_"))
    if preset is None:
        raise ConfigError(
            f"unknown provider type {type_name!r}; expected one of: {', '.join(PRESETS)}"
        )
    return preset


def normalize_ollama_host(value: str) -> str:
    """Read OLLAMA_HOST the way Ollama does: a bare `host[:port]` means http on port 11434,
    a URL with a scheme keeps that scheme's default port; `0.0.0.0` (a bind address) means loopback."""
    value = value.strip().rstrip("/")
    if "://" not in value:
        host = value.split("/", 1)[0]
        has_port = ":" in host.rsplit("]", 1)[-1]
        value = f"http://{value}" if has_port else f"http://{host}:11434{value[len(host) :]}"
    return value.replace("://0.0.0.0", "://127.0.0.1")


def resolve_endpoint(
    config: ProviderConfig, environ: Mapping[str, str]
) -> tuple[Preset, str, str | None]:
    """The preset, base URL and API key for a config, filling gaps from the environment."""
    preset = get_preset(config.type)
    base_url = (
        config.base_url
        or (environ.get(preset.base_url_env) if preset.base_url_env else None)
        or preset.base_url
    )
    if not base_url:
        raise ConfigError(
            f"provider {config.name!r} of type {preset.type!r} needs a base_url",
            key_path=f"providers.{config.name}.base_url",
        )
    if preset.wire == "ollama":
        base_url = normalize_ollama_host(base_url)
    api_key = (
        config.api_key or (environ.get(preset.api_key_env) if preset.api_key_env else None) or None
    )
    return preset, base_url.rstrip("/"), api_key


def build_provider(
    config: ProviderConfig, environ: Mapping[str, str] | None = None
) -> BaseProvider:
    """A ready client for one provider config (no network I/O; pools open on first use)."""
    preset, base_url, api_key = resolve_endpoint(config, environ or {})
    headers = {**preset.headers, **config.headers}
    if preset.wire == "ollama":
        from taskengine.providers.ollama import OllamaProvider

        return OllamaProvider(
            config.name,
            base_url=base_url,
            api_key=api_key,
            headers=headers,
            timeout=config.timeout,
            max_connections=config.max_connections,
            models=config.models,
        )
    from taskengine.providers.openai_compat import OpenAICompatProvider

    return OpenAICompatProvider(
        config.name,
        type=preset.type,
        base_url=base_url,
        api_key=api_key,
        headers=headers,
        timeout=config.timeout,
        max_connections=config.max_connections,
        models=config.models,
    )
