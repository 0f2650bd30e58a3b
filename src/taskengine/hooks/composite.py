"""One registry over many hook providers, and the tool list a model task is offered.

`HookRegistry` is itself a `HookRepo`: the engine holds one and never needs to know whether a
hook is a local function, a remote OpenAPI service or a built-in. Two providers claiming the
same hook name is a configuration error, raised as soon as it is seen.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from taskengine.errors import HookError
from taskengine.hooks.base import (
    HookContext,
    HookRepo,
    did_you_mean,
    resolve_task_tools,
    tools_for_task,
)
from taskengine.observability.tracing import tool_span

if TYPE_CHECKING:
    from taskengine.chain import HookCall
    from taskengine.datatypes import DataType, Tool

__all__ = ["HookRegistry", "resolve_task_tools", "tools_for_task"]


class HookRegistry:
    """Merges hook providers and routes each hook name to the one that serves it.

    Providers with a sync `hook_names()` (local, remote, built-in) are indexed eagerly, so a
    duplicate name fails at construction; others are asked through `supports()` on first miss.
    """

    def __init__(self, *providers: HookRepo) -> None:
        self._providers: list[HookRepo] = []
        self._async_names: dict[int, list[str]] = {}
        self._index: dict[str, HookRepo] = {}
        self._index_key: tuple[Any, ...] | None = None
        for provider in providers:
            self.add(provider)

    @property
    def providers(self) -> list[HookRepo]:
        return list(self._providers)

    def add(self, provider: HookRepo) -> None:
        """Add a provider; raises HookError (and leaves the registry unchanged) on a name clash."""
        self._providers.append(provider)
        try:
            self._reindex()
        except HookError:
            self._providers.pop()
            self._reindex()
            raise

    # --- indexing -------------------------------------------------------------------------

    def _key(self) -> tuple[Any, ...]:
        return tuple((id(p), getattr(p, "version", 0)) for p in self._providers)

    def _names_of(self, provider: HookRepo) -> list[str]:
        names = getattr(provider, "hook_names", None)
        if callable(names):
            return list(names())
        return self._async_names.get(id(provider), [])

    def _reindex(self) -> None:
        index: dict[str, HookRepo] = {}
        for provider in self._providers:
            for name in self._names_of(provider):
                other = index.get(name)
                if other is not None and other is not provider:
                    raise HookError(
                        f"hook {name!r} is provided twice ({_label(other)} and {_label(provider)}); "
                        "hook names must be unique across local, remote and built-in hooks",
                        hook=name,
                    )
                index[name] = provider
        self._index = index
        self._index_key = self._key()

    async def refresh(self) -> None:
        """Ask providers without a sync `hook_names()` for their hooks, then re-index."""
        for provider in self._providers:
            if not callable(getattr(provider, "hook_names", None)):
                self._async_names[id(provider)] = list(await provider.supports())
        self._reindex()

    async def provider_for(self, name: str) -> HookRepo:
        """The provider serving hook `name`; unknown → HookError listing the known hooks."""
        if self._index_key != self._key():
            self._reindex()
        provider = self._index.get(name)
        if provider is None and any(
            not callable(getattr(p, "hook_names", None)) for p in self._providers
        ):
            await self.refresh()
            provider = self._index.get(name)
        if provider is None:
            raise HookError(f"unknown hook {name!r}{did_you_mean(name, self._index)}", hook=name)
        return provider

    # --- HookRepo -------------------------------------------------------------------------

    async def exec(
        self,
        call: HookCall,
        *,
        input: Any,
        input_type: DataType,
        context: HookContext,
        args: dict[str, Any] | None = None,
    ) -> tuple[Any, DataType]:
        provider = await self.provider_for(call.name)
        name = f"{call.name}.{call.tool_name}" if call.tool_name else call.name
        async with tool_span(name, context.tool_call_id):
            return await provider.exec(
                call, input=input, input_type=input_type, context=context, args=args
            )

    async def supports(self) -> list[str]:
        await self.refresh()
        return sorted(self._index)

    async def get_schemas_for_supported_hooks(self) -> dict[str, Any]:
        await self.refresh()
        out: dict[str, Any] = {}
        for provider in self._providers:
            out.update(await provider.get_schemas_for_supported_hooks())
        return out

    async def get_tools_for_hook_by_name(self, name: str) -> list[Tool]:
        provider = await self.provider_for(name)
        return await provider.get_tools_for_hook_by_name(name)

    # --- lifecycle ------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Close providers that hold connections (remote hooks, the http built-in)."""
        for provider in self._providers:
            close = getattr(provider, "aclose", None)
            if callable(close):
                await close()

    async def __aenter__(self) -> HookRegistry:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"HookRegistry({', '.join(_label(p) for p in self._providers)})"


def _label(provider: object) -> str:
    return type(provider).__name__
