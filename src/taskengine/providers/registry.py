"""Named providers built from settings and the environment, plus the default provider and models.

Configured providers come first (in their order), then implicit ones the environment implies:
`OLLAMA_HOST` → `ollama`, `OPENAI_API_KEY`/`OPENAI_BASE_URL` → `openai`, `GEMINI_API_KEY` →
`gemini`, `OPENROUTER_API_KEY` → `openrouter`. `TASKENGINE_PROVIDER`, `TASKENGINE_MODEL` and
`TASKENGINE_EMBED_MODEL` pick the defaults. The environment is read only when `from_settings`
is called, never at import time.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from taskengine.errors import ProviderNotConfiguredError
from taskengine.providers.presets import PRESETS, build_provider

if TYPE_CHECKING:
    from taskengine.providers.base import ModelProvider
    from taskengine.providers.config import ProviderConfig

__all__ = ["ENV_HINT", "ProviderRegistry"]

ENV_HINT = (
    "set OLLAMA_HOST, OPENAI_API_KEY (and OPENAI_BASE_URL for another server), GEMINI_API_KEY or "
    "OPENROUTER_API_KEY, or declare `providers:` in the config file; TASKENGINE_PROVIDER and "
    "TASKENGINE_MODEL choose the defaults"
)

#: (provider type, env vars that imply it) in the order implicit providers are added.
_IMPLICIT = (
    ("ollama", ("OLLAMA_HOST",)),
    ("openai", ("OPENAI_API_KEY", "OPENAI_BASE_URL")),
    ("gemini", ("GEMINI_API_KEY",)),
    ("openrouter", ("OPENROUTER_API_KEY",)),
)


class ProviderRegistry:
    """Providers by name, resolvable by name or by type; owns their connection pools."""

    def __init__(
        self,
        providers: Iterable[ModelProvider] = (),
        *,
        default_provider: str | None = None,
        default_model: str | None = None,
        default_embed_model: str | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self._providers: dict[str, ModelProvider] = {}
        self._environ: dict[str, str] = dict(environ or {})
        self.default_provider_name = default_provider or None
        self.default_model = default_model or None
        self.default_embed_model = default_embed_model or None
        for provider in providers:
            self.add(provider)

    @classmethod
    def from_settings(
        cls,
        provider_configs: Iterable[ProviderConfig] = (),
        environ: Mapping[str, str] | None = None,
        *,
        default_provider: str | None = None,
        default_model: str | None = None,
        default_embed_model: str | None = None,
    ) -> ProviderRegistry:
        """Build the configured providers plus the ones the environment implies.

        `environ` defaults to `os.environ` (read now). Explicit `default_*` arguments (e.g. from
        the settings file) win over the `TASKENGINE_*` variables. No network I/O happens here; pools open on first use.
        """
        import os

        from taskengine.providers.config import ProviderConfig

        env = dict(os.environ if environ is None else environ)
        registry = cls(
            default_provider=default_provider or env.get("TASKENGINE_PROVIDER"),
            default_model=default_model or env.get("TASKENGINE_MODEL"),
            default_embed_model=default_embed_model or env.get("TASKENGINE_EMBED_MODEL"),
            environ=env,
        )
        for config in provider_configs:
            registry.add(build_provider(config, env))
        for type_name, variables in _IMPLICIT:
            if type_name in registry or not any(env.get(v) for v in variables):
                continue
            registry.add(build_provider(ProviderConfig(name=type_name, type=type_name), env))
        return registry

    # --- membership ------------------------------------------------------------------------

    def add(self, provider: ModelProvider, *, default: bool = False) -> ModelProvider:
        """Register `provider` under its name (a second provider with that name is an error)."""
        if provider.name in self._providers:
            raise ProviderNotConfiguredError(
                f"provider {provider.name!r} is configured twice", provider=provider.name
            )
        self._providers[provider.name] = provider
        if default:
            self.default_provider_name = provider.name
        return provider

    def __contains__(self, name: object) -> bool:
        return name in self._providers

    def __iter__(self) -> Iterator[ModelProvider]:
        return iter(list(self._providers.values()))

    def __len__(self) -> int:
        return len(self._providers)

    @property
    def names(self) -> list[str]:
        return list(self._providers)

    # --- lookup ----------------------------------------------------------------------------

    def find(self, name_or_type: str) -> ModelProvider | None:
        """The provider named `name_or_type`, else the first one of that type, else None."""
        found = self._providers.get(name_or_type)
        if found is not None:
            return found
        wanted = name_or_type.strip().lower().replace("-", "_")
        return next((p for p in self._providers.values() if p.type == wanted), None)

    def get(self, name_or_type: str) -> ModelProvider:
        """Like `find`, but a known type usable without settings (e.g. `ollama` on localhost, or
        `openai` with OPENAI_API_KEY set) is created on demand; otherwise a clear error."""
        found = self.find(name_or_type)
        if found is not None:
            return found
        implicit = self._implicit(name_or_type)
        if implicit is not None:
            return self.add(implicit)
        known = ", ".join(self._providers) or "none"
        raise ProviderNotConfiguredError(
            f"provider {name_or_type!r} is not configured (configured: {known}); {ENV_HINT}",
            provider=name_or_type,
        )

    def _implicit(self, type_name: str) -> ModelProvider | None:
        from taskengine.providers.config import ProviderConfig

        preset = PRESETS.get(type_name.strip().lower().replace("-", "_"))
        if preset is None or preset.base_url is None:
            return None
        if preset.api_key_env and not self._environ.get(preset.api_key_env):
            return None  # would only fail with 401 later; say what is missing now instead
        return build_provider(ProviderConfig(name=preset.type, type=preset.type), self._environ)

    def default_provider(self) -> ModelProvider:
        """The provider used when a task names none."""
        if self.default_provider_name:
            return self.get(self.default_provider_name)
        for provider in self._providers.values():
            return provider
        raise ProviderNotConfiguredError(f"no model provider is configured; {ENV_HINT}")

    def model_for(self, provider: ModelProvider, *, embed: bool = False) -> str | None:
        """The default model for `provider`: TASKENGINE_(EMBED_)MODEL, else its first listed model."""
        model = (self.default_embed_model or self.default_model) if embed else self.default_model
        if model:
            return model
        models: Any = getattr(provider, "models", None)
        return models[0] if models else None

    # --- lifecycle -------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Close every provider's connection pool."""
        for provider in list(self._providers.values()):
            await provider.aclose()

    async def __aenter__(self) -> ProviderRegistry:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"ProviderRegistry({', '.join(f'{n}:{p.type}' for n, p in self._providers.items())})"
