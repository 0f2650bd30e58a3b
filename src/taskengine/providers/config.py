"""Settings of one named model provider (shared by `config.py` and the provider layer)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from taskengine.empty import empty_dict, empty_list

__all__ = ["PROVIDER_TYPES", "ProviderConfig"]

PROVIDER_TYPES = (
    "ollama",
    "openai",
    "vllm",
    "gemini",
    "openrouter",
    "llamacpp",
    "openai_compatible",
)


class ProviderConfig(BaseModel):
    """A model provider: a preset type plus where it lives and how to authenticate."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    name: str = Field(..., description="Name chains use in execute_config.provider(s).")
    type: str = Field("openai_compatible", description=f"One of: {', '.join(PROVIDER_TYPES)}.")
    base_url: str | None = Field(None, description="Server URL; the preset's default when empty.")
    api_key: str | None = Field(
        None, description="API key; may be '${ENV}' or '${secret:name}' in YAML."
    )
    headers: dict[str, str] = Field(
        default_factory=empty_dict, description="Extra headers for every call."
    )
    models: list[str] = Field(
        default_factory=empty_list, description="Models this provider serves (optional)."
    )
    timeout: float = Field(120.0, gt=0, description="Seconds per request.")
    max_connections: int = Field(1000, ge=1, description="Connection pool size.")
