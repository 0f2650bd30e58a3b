"""Model providers: the `ModelProvider` protocol, OpenAI-compatible and Ollama clients, presets,
the registry of named providers, and the resolver that falls back along candidates.

Names load lazily so `import taskengine` does not pay for aiohttp or the openai SDK.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from taskengine._lazy import lazy_exports

if TYPE_CHECKING:
    from taskengine.providers.base import (
        BaseProvider,
        ChatResult,
        EmbedResult,
        ModelProvider,
        estimate_tokens,
    )
    from taskengine.providers.config import PROVIDER_TYPES, ProviderConfig
    from taskengine.providers.ollama import OllamaProvider
    from taskengine.providers.openai_compat import OpenAICompatProvider
    from taskengine.providers.presets import PRESETS, Preset, build_provider
    from taskengine.providers.registry import ProviderRegistry
    from taskengine.providers.resolver import ModelResolver
    from taskengine.providers.toolnames import ToolNameMap

__all__ = [
    "PRESETS",
    "PROVIDER_TYPES",
    "BaseProvider",
    "ChatResult",
    "EmbedResult",
    "ModelProvider",
    "ModelResolver",
    "OllamaProvider",
    "OpenAICompatProvider",
    "Preset",
    "ProviderConfig",
    "ProviderRegistry",
    "ToolNameMap",
    "build_provider",
    "estimate_tokens",
]

_WHERE = {
    "BaseProvider": ".base",
    "ChatResult": ".base",
    "EmbedResult": ".base",
    "ModelProvider": ".base",
    "estimate_tokens": ".base",
    "PROVIDER_TYPES": ".config",
    "ProviderConfig": ".config",
    "OllamaProvider": ".ollama",
    "OpenAICompatProvider": ".openai_compat",
    "PRESETS": ".presets",
    "Preset": ".presets",
    "build_provider": ".presets",
    "ProviderRegistry": ".registry",
    "ModelResolver": ".resolver",
    "ToolNameMap": ".toolnames",
}

__getattr__, __dir__ = lazy_exports(__name__, _WHERE)
