"""The `ModelProvider` protocol, its result types, and the shared base of every client.

A provider is one configured endpoint (a name, a wire client and one connection pool). The
base class builds `chat(on_delta=...)`, `stream()` and `prompt()` on two primitives each
client implements: `_chat_once` (one non-streaming call) and `_chat_stream` (yields text
deltas while filling a `StreamState`).
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

from taskengine.datatypes import FunctionCall, Message, Tool, ToolCall
from taskengine.errors import LLMError, ProviderRequestError, ProviderUnavailableError

__all__ = [
    "BaseProvider",
    "ChatResult",
    "DeltaCallback",
    "EmbedResult",
    "ModelProvider",
    "StreamState",
    "error_for_status",
    "estimate_tokens",
]

DeltaCallback = Callable[[str], Awaitable[None]]

_TOKEN_PIECES = re.compile(r"\w+|[^\w\s]", re.UNICODE)
#: Per-message overhead of chat formats (role markers, separators), as OpenAI documents it.
_MESSAGE_OVERHEAD = 4


def estimate_tokens(
    value: str | Message | Sequence[Message] | Sequence[dict[str, Any]] | None,
) -> int:
    """A local, deterministic token estimate (no tokenizer download).

    A word of n characters counts as about n / 4 tokens (at least one), each punctuation mark
    as one, and every chat message adds a small overhead: close to BPE tokenizers for English
    prose, and never zero for text.
    """
    if value is None:
        return 0
    if isinstance(value, str):
        return sum(
            max(1, (len(p) + 2) // 4) if (p[0].isalnum() or p[0] == "_") else 1
            for p in _TOKEN_PIECES.findall(value)
        )
    if isinstance(value, Message):
        return _MESSAGE_OVERHEAD + estimate_tokens(value.content) + _calls_tokens(value.call_tools)
    total = 0
    for item in value:
        if isinstance(item, Message):
            total += estimate_tokens(item)
        elif isinstance(item, dict):
            content = item.get("content")
            total += _MESSAGE_OVERHEAD + estimate_tokens(
                content if isinstance(content, str) else str(content or "")
            )
    return total


def _calls_tokens(calls: list[ToolCall] | None) -> int:
    return sum(
        estimate_tokens(c.function.name) + estimate_tokens(c.function.arguments)
        for c in calls or []
    )


def error_for_status(
    status: int,
    message: str,
    *,
    provider: str,
    model: str | None,
    body: str | None,
    headers: Any = None,
) -> LLMError:
    """The error for an HTTP failure: 408, 409, 425, 429 and 5xx are worth a fallback, other 4xx are not.

    A `Retry-After` header (seconds or an HTTP date) is kept as the error's `retry_after`, so
    the engine waits that long before it asks the same provider again.
    """
    retryable = status >= 500 or status in (408, 409, 425, 429)
    cls = ProviderUnavailableError if retryable else ProviderRequestError
    error = cls(message, provider=provider, model=model, status_code=status, body=body)
    if headers is not None:
        error.retry_after = parse_retry_after(headers.get("retry-after"))
    return error


#: the longest `Retry-After` honoured, in seconds (a task's timeout caps it further)
MAX_RETRY_AFTER = 60.0


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a `Retry-After` value (delta-seconds or HTTP date); None if absent/bad."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        from email.utils import parsedate_to_datetime

        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when is None:
            return None

        seconds = when.timestamp() - time.time()
    if seconds != seconds:  # NaN
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


@dataclass(slots=True)
class ChatResult:
    """One model answer: the assistant message plus who answered, how fast, and what it used."""

    message: Message
    input_tokens: int = 0
    output_tokens: int = 0
    provider: str = ""
    model: str = ""
    latency_ms: float = 0.0
    finish_reason: str = "stop"
    #: True when the token counts came from the server, False when they are local estimates.
    usage_reported: bool = False

    @property
    def content(self) -> str:
        return self.message.content

    @property
    def tool_calls(self) -> list[ToolCall]:
        return list(self.message.call_tools or [])


@dataclass(slots=True)
class EmbedResult:
    """One embedding vector and where it came from."""

    vector: list[float]
    provider: str = ""
    model: str = ""
    latency_ms: float = 0.0
    input_tokens: int = 0


@dataclass(slots=True)
class StreamState:
    """What a streaming call accumulates besides the text deltas it yields."""

    parts: list[str] = field(default_factory=list)
    #: tool calls by stream index: [id, name, argument fragments]
    calls: dict[int, list[Any]] = field(default_factory=dict)
    finish_reason: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None

    def add_call(
        self, index: int, *, id: str | None = None, name: str | None = None, arguments: str = ""
    ) -> None:
        slot = self.calls.setdefault(index, ["", "", []])
        if id:
            slot[0] = id
        if name:
            slot[1] = name
        if arguments:
            slot[2].append(arguments)

    def tool_calls(self) -> list[ToolCall]:
        out = []
        for index in sorted(self.calls):
            call_id, name, args = self.calls[index]
            out.append(
                ToolCall(
                    id=call_id or f"call_{index}",
                    function=FunctionCall(name=name, arguments="".join(args)),
                )
            )
        return out


@runtime_checkable
class ModelProvider(Protocol):
    """What the resolver and the engine need from a model endpoint."""

    name: str
    type: str

    async def chat(
        self,
        messages: list[Message],
        *,
        model: str,
        temperature: float | None = None,
        tools: list[Tool] | None = None,
        max_tokens: int | None = None,
        on_delta: DeltaCallback | None = None,
        timeout: float | None = None,
    ) -> ChatResult: ...

    async def prompt(
        self,
        prompt: str,
        *,
        model: str,
        system_instruction: str = "",
        temperature: float | None = None,
        on_delta: DeltaCallback | None = None,
        timeout: float | None = None,
    ) -> ChatResult: ...

    async def embed(
        self, text: str, *, model: str, timeout: float | None = None
    ) -> EmbedResult: ...

    def stream(
        self,
        messages: list[Message],
        *,
        model: str,
        temperature: float | None = None,
        tools: list[Tool] | None = None,
        max_tokens: int | None = None,
        timeout: float | None = None,
    ) -> AsyncIterator[str]: ...

    async def list_models(self, timeout: float | None = None) -> list[str]: ...

    def count_tokens(self, value: str | Message | Sequence[Message]) -> int: ...

    async def aclose(self) -> None: ...


class BaseProvider:
    """Shared behaviour: an overall deadline per call, latency, stream assembly, token fallbacks."""

    type: str = "openai_compatible"

    def __init__(self, name: str, *, timeout: float = 120.0) -> None:
        self.name = name
        self.timeout = timeout

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, type={self.type!r})"

    # --- what each wire client implements ----------------------------------------------------

    async def _chat_once(
        self,
        messages: list[Message],
        *,
        model: str,
        temperature: float | None,
        tools: list[Tool] | None,
        max_tokens: int | None,
        timeout: float,
    ) -> ChatResult:
        raise NotImplementedError

    def _chat_stream(
        self,
        messages: list[Message],
        state: StreamState,
        *,
        model: str,
        temperature: float | None,
        tools: list[Tool] | None,
        max_tokens: int | None,
        timeout: float,
    ) -> AsyncIterator[str]:
        raise NotImplementedError

    async def _embed_once(self, text: str, *, model: str, timeout: float) -> EmbedResult:
        raise NotImplementedError

    async def _list_models(self, timeout: float) -> list[str]:
        raise NotImplementedError

    def _json(self, body: str, model: str | None) -> dict[str, Any]:
        """A reply body as a JSON object; anything else is a malformed response (worth a fallback)."""
        try:
            data = json.loads(body)
        except ValueError as exc:
            raise ProviderUnavailableError(
                "malformed response (not JSON)",
                provider=self.name,
                model=model,
                body=body or "<empty>",
            ) from exc
        if not isinstance(data, dict):
            raise ProviderUnavailableError(
                "malformed response (not a JSON object)", provider=self.name, model=model, body=body
            )
        return data

    async def aclose(self) -> None:
        return None

    # --- the protocol ------------------------------------------------------------------------

    async def chat(
        self,
        messages: list[Message],
        *,
        model: str,
        temperature: float | None = None,
        tools: list[Tool] | None = None,
        max_tokens: int | None = None,
        on_delta: DeltaCallback | None = None,
        timeout: float | None = None,
    ) -> ChatResult:
        """Send a conversation; with `on_delta` the reply streams and each text delta is awaited."""
        limit = timeout or self.timeout
        started = time.perf_counter()
        async with _Deadline(self.name, model, limit):
            if on_delta is None:
                result = await self._chat_once(
                    messages,
                    model=model,
                    temperature=temperature,
                    tools=tools,
                    max_tokens=max_tokens,
                    timeout=limit,
                )
            else:
                state = StreamState()
                async for delta in self._chat_stream(
                    messages,
                    state,
                    model=model,
                    temperature=temperature,
                    tools=tools,
                    max_tokens=max_tokens,
                    timeout=limit,
                ):
                    await on_delta(delta)
                result = self._from_stream(state, messages, model)
        result.latency_ms = (time.perf_counter() - started) * 1000
        return result

    async def stream(
        self,
        messages: list[Message],
        *,
        model: str,
        temperature: float | None = None,
        tools: list[Tool] | None = None,
        max_tokens: int | None = None,
        timeout: float | None = None,
    ) -> AsyncIterator[str]:
        """Yield the reply's text deltas as they arrive (tool calls are not yielded).

        The wire client's read timeout bounds each wait; close the iterator (`aclosing`) when
        leaving it early so the connection goes back to the pool.
        """
        state = StreamState()
        async for delta in self._chat_stream(
            messages,
            state,
            model=model,
            temperature=temperature,
            tools=tools,
            max_tokens=max_tokens,
            timeout=timeout or self.timeout,
        ):
            yield delta

    async def prompt(
        self,
        prompt: str,
        *,
        model: str,
        system_instruction: str = "",
        temperature: float | None = None,
        on_delta: DeltaCallback | None = None,
        timeout: float | None = None,
    ) -> ChatResult:
        """One user prompt, with an optional system instruction in front."""
        messages = (
            [Message(role="system", content=system_instruction)] if system_instruction else []
        )
        messages.append(Message(role="user", content=prompt))
        return await self.chat(
            messages, model=model, temperature=temperature, on_delta=on_delta, timeout=timeout
        )

    async def embed(self, text: str, *, model: str, timeout: float | None = None) -> EmbedResult:
        """The embedding vector of `text`."""
        limit = timeout or self.timeout
        started = time.perf_counter()
        async with _Deadline(self.name, model, limit):
            result = await self._embed_once(text, model=model, timeout=limit)
        result.latency_ms = (time.perf_counter() - started) * 1000
        return result

    async def list_models(self, timeout: float | None = None) -> list[str]:
        """Names of the models the server offers."""
        limit = timeout or self.timeout
        async with _Deadline(self.name, None, limit):
            return await self._list_models(limit)

    def count_tokens(self, value: str | Message | Sequence[Message]) -> int:
        """A local token estimate (servers report real usage with each reply)."""
        return estimate_tokens(value)

    # --- helpers -----------------------------------------------------------------------------

    def _from_stream(self, state: StreamState, messages: list[Message], model: str) -> ChatResult:
        content = "".join(state.parts)
        calls = state.tool_calls()
        message = Message(role="assistant", content=content, call_tools=calls or None)
        reported = state.input_tokens is not None and state.output_tokens is not None
        return ChatResult(
            message=message,
            input_tokens=state.input_tokens if reported else estimate_tokens(messages),  # type: ignore[arg-type]
            output_tokens=state.output_tokens if reported else estimate_tokens(message),  # type: ignore[arg-type]
            provider=self.name,
            model=model,
            finish_reason=state.finish_reason or ("tool_calls" if calls else "stop"),
            usage_reported=reported,
        )


class _Deadline:
    """An overall time limit per call, so a server that trickles bytes cannot hang a run."""

    __slots__ = ("_cm", "limit", "model", "provider")

    def __init__(self, provider: str, model: str | None, limit: float) -> None:
        self.provider = provider
        self.model = model
        self.limit = limit
        self._cm = asyncio.timeout(limit)

    async def __aenter__(self) -> None:
        await self._cm.__aenter__()

    async def __aexit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> Literal[False]:
        try:
            await self._cm.__aexit__(exc_type, exc, tb)
        except TimeoutError as timed_out:
            raise ProviderUnavailableError(
                f"no answer within {self.limit:g} s (timeout)",
                provider=self.provider,
                model=self.model,
            ) from timed_out
        return False
