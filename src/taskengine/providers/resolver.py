"""Pick (provider, model) candidates for a task and fall back along them.

`execute_config.provider/providers` and `model/models` are candidate lists; empty lists mean the
registry's defaults. Pairs are tried provider by provider, each with every candidate model the
provider may serve (a provider that lists its `models` is only paired with those). The next
pair is tried after `ProviderUnavailableError` (connection errors, timeouts, 5xx, 429), after a
404 (that model or endpoint does not exist there) and when a named provider is not configured
here; any other request error (400, 401, 422 …) is raised at once. When every pair fails, the
last error is raised again with a message listing each attempt. A provider that answered 429
(or 503) with `Retry-After` is asked again only after that wait (the task's timeout bounds it);
another provider is tried at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from taskengine.datatypes import Message
from taskengine.errors import (
    LLMError,
    ProviderNotConfiguredError,
    ProviderRequestError,
    ProviderUnavailableError,
)

if TYPE_CHECKING:
    from taskengine.chain import LLMExecutionConfig
    from taskengine.datatypes import Tool
    from taskengine.providers.base import ChatResult, DeltaCallback, EmbedResult, ModelProvider
    from taskengine.providers.registry import ProviderRegistry

__all__ = ["Candidate", "ModelResolver"]

T = TypeVar("T")
Candidate = tuple[
    "ModelProvider | None", str, str
]  # (provider or None if unknown, provider name, model)


class ModelResolver:
    """Runs chat, prompt and embed calls against the first candidate that answers."""

    def __init__(self, registry: ProviderRegistry) -> None:
        self.registry = registry

    # --- candidates ------------------------------------------------------------------------

    def candidates(
        self, config: LLMExecutionConfig | None, *, embed: bool = False
    ) -> list[Candidate]:
        """The (provider, name, model) pairs to try, in order."""
        wanted_providers = config.candidate_providers() if config is not None else []
        wanted_models = config.candidate_models() if config is not None else []
        providers: list[tuple[ModelProvider | None, str]] = []
        if wanted_providers:
            for name in wanted_providers:
                try:
                    providers.append((self.registry.get(name), name))
                except ProviderNotConfiguredError:
                    providers.append((None, name))
        else:
            default = self.registry.default_provider()  # raises with the env-var hint when empty
            providers.append((default, default.name))

        pairs: list[Candidate] = []
        for provider, name in providers:
            models = list(wanted_models)
            if not models and provider is not None:
                fallback = self.registry.model_for(provider, embed=embed)
                models = [fallback] if fallback else []
            if not models:
                if provider is None:
                    pairs.append((None, name, ""))
                    continue
                what = "TASKENGINE_EMBED_MODEL" if embed else "TASKENGINE_MODEL"
                raise ProviderNotConfiguredError(
                    f"no model given: set execute_config.model on the task, {what}, or `models:` on the provider",
                    provider=provider.name,
                )
            served: list[str] = list(getattr(provider, "models", None) or [])
            usable = [m for m in models if not served or m in served] or models
            pairs.extend((provider, name, m) for m in usable)
        return pairs

    # --- calls -----------------------------------------------------------------------------

    async def chat(
        self,
        config: LLMExecutionConfig | None,
        messages: list[Message],
        *,
        tools: list[Tool] | None = None,
        temperature: float | None = None,
        on_delta: DeltaCallback | None = None,
        timeout: float | None = None,
        max_tokens: int | None = None,
    ) -> ChatResult:
        """Chat with the first candidate that answers; the result names who answered."""
        # No closures here: at hundreds of concurrent calls, every object a waiting call keeps
        # alive (a closure keeps one cell per captured name) is garbage-collector work.
        sink: DeltaCallback | None = None
        streamed: Callable[[], bool] = _never
        if on_delta is not None:
            sink, streamed = _counting(on_delta)
        call = _ChatCall(
            messages, _temperature(config, temperature), tools, max_tokens, sink, timeout
        )
        return await self._first(config, call, "chat", streamed=streamed)

    async def prompt(
        self,
        config: LLMExecutionConfig | None,
        prompt: str,
        *,
        system_instruction: str = "",
        temperature: float | None = None,
        on_delta: DeltaCallback | None = None,
        timeout: float | None = None,
        max_tokens: int | None = None,
    ) -> ChatResult:
        """One user prompt (with an optional system instruction) through `chat`."""
        messages = (
            [Message(role="system", content=system_instruction)] if system_instruction else []
        )
        messages.append(Message(role="user", content=prompt))
        return await self.chat(
            config,
            messages,
            temperature=temperature,
            on_delta=on_delta,
            timeout=timeout,
            max_tokens=max_tokens,
        )

    async def embed(
        self, config: LLMExecutionConfig | None, text: str, *, timeout: float | None = None
    ) -> EmbedResult:
        """Embed `text` with the first candidate that answers (default model TASKENGINE_EMBED_MODEL)."""

        async def call(provider: ModelProvider, model: str) -> EmbedResult:
            return await provider.embed(text, model=model, timeout=timeout)

        return await self._first(config, call, "embed", embed=True)

    # --- fallback --------------------------------------------------------------------------

    async def _first(
        self,
        config: LLMExecutionConfig | None,
        call: Callable[[ModelProvider, str], Awaitable[T]],
        what: str,
        *,
        embed: bool = False,
        streamed: Callable[[], bool] = lambda: False,
    ) -> T:
        pairs = self.candidates(config, embed=embed)
        attempts: list[tuple[str, LLMError]] = []
        pause_for: dict[str, float] = {}  # provider name -> its Retry-After
        for provider, name, model in pairs:
            label = f"{name}/{model}" if model else name
            if name in pause_for:  # the same provider asked to be left alone a while
                await asyncio.sleep(pause_for.pop(name))
            if provider is None:
                try:
                    self.registry.get(name)
                except ProviderNotConfiguredError as missing:
                    attempts.append((label, missing))
                continue
            try:
                return await call(provider, model)
            except (ProviderUnavailableError, ProviderRequestError) as exc:
                attempts.append((label, exc))
                if not _worth_fallback(exc) or streamed():
                    raise
                if exc.retry_after:
                    pause_for[name] = exc.retry_after
            except LLMError as exc:
                attempts.append((label, exc))
                raise
        raise _all_failed(what, attempts)


class _ChatCall:
    """One chat request, ready to send to whichever candidate `_first` tries.

    A slots object rather than a closure: one object per waiting call instead of a function
    plus a cell per captured name. It returns the provider's coroutine unawaited, so no extra
    coroutine layer waits with it either.
    """

    __slots__ = ("max_tokens", "messages", "on_delta", "temperature", "timeout", "tools")

    def __init__(
        self,
        messages: list[Message],
        temperature: float | None,
        tools: list[Tool] | None,
        max_tokens: int | None,
        on_delta: DeltaCallback | None,
        timeout: float | None,
    ) -> None:
        self.messages = messages
        self.temperature = temperature
        self.tools = tools
        self.max_tokens = max_tokens
        self.on_delta = on_delta
        self.timeout = timeout

    def __call__(self, provider: ModelProvider, model: str) -> Awaitable[ChatResult]:
        return provider.chat(
            self.messages,
            model=model,
            temperature=self.temperature,
            tools=self.tools,
            max_tokens=self.max_tokens,
            on_delta=self.on_delta,
            timeout=self.timeout,
        )


def _counting(on_delta: DeltaCallback) -> tuple[DeltaCallback, Callable[[], bool]]:
    """`on_delta` wrapped to count the deltas it passes on, and a check whether it passed any
    (a call that already streamed text to the caller must not fall back to another model)."""
    emitted = 0

    async def counting(delta: str) -> None:
        nonlocal emitted
        emitted += 1
        await on_delta(delta)

    def any_emitted() -> bool:
        return emitted > 0

    return counting, any_emitted


def _never() -> bool:
    return False


def _worth_fallback(exc: LLMError) -> bool:
    return isinstance(exc, ProviderUnavailableError) or exc.status_code == 404


def _temperature(config: LLMExecutionConfig | None, explicit: float | None) -> float | None:
    """An explicit temperature wins, else the config's; 0 is sent as 0 (greedy), None is left out."""
    if explicit is not None:
        return explicit
    return config.temperature if config is not None else None


def _all_failed(what: str, attempts: list[tuple[str, LLMError]]) -> LLMError:
    if not attempts:  # pragma: no cover - candidates() never returns an empty list
        return ProviderNotConfiguredError(f"no candidate to {what} with")
    last = attempts[-1][1]
    if len(attempts) == 1:
        return last
    listing = "; ".join(f"{lbl}: {_short(err)}" for lbl, err in attempts)
    cls: type[LLMError] = type(last)
    if all(isinstance(err, ProviderNotConfiguredError) for _, err in attempts):
        cls = ProviderNotConfiguredError
    kwargs: dict[str, Any] = {
        "provider": last.provider,
        "model": last.model,
        "status_code": last.status_code,
    }
    error = cls(f"all {len(attempts)} candidates failed to {what}: {listing}", **kwargs)
    error.attempts = [(lbl, err) for lbl, err in attempts]  # type: ignore[attr-defined]
    error.__cause__ = last
    return error


def _short(error: LLMError) -> str:
    text = error.message
    return text if len(text) <= 240 else text[:239] + "…"
