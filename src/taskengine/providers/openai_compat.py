"""One client for every OpenAI-compatible server (OpenAI, vLLM, Gemini, OpenRouter, llama.cpp …).

Built on the official `openai` SDK with its retries off (the engine's retry policy is the only
one) and, by default, its aiohttp-backed HTTP client: httpx's pool spends time quadratic in the
number of open connections at hundreds of concurrent calls, aiohttp stays linear (see
`benchmarks/transport.py`). One SDK client, hence one connection pool, per provider.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

from taskengine.datatypes import FunctionCall, Message, Tool, ToolCall
from taskengine.errors import LLMError, ProviderUnavailableError
from taskengine.providers.base import (
    BaseProvider,
    ChatResult,
    EmbedResult,
    StreamState,
    error_for_status,
    estimate_tokens,
)
from taskengine.providers.toolnames import ToolNameMap

if TYPE_CHECKING:
    from openai import AsyncOpenAI

__all__ = ["OpenAICompatProvider", "to_openai_messages"]

#: Placeholder key for servers without auth (the SDK insists on some credential).
_NO_KEY = "EMPTY"


class OpenAICompatProvider(BaseProvider):
    """A named OpenAI-compatible endpoint with one shared SDK client (one connection pool).

    The pool belongs to the event loop that first uses it: build providers inside the loop that
    runs them and `await aclose()` before that loop ends. `http_client` injects an SDK-compatible
    client the caller owns (tests, proxies); `transport="httpx"` selects the SDK's default pool.
    """

    def __init__(
        self,
        name: str,
        *,
        base_url: str,
        api_key: str | None = None,
        type: str = "openai_compatible",
        headers: Mapping[str, str] | None = None,
        timeout: float = 120.0,
        max_connections: int = 1000,
        models: Sequence[str] = (),
        transport: str = "aiohttp",
        http_client: Any = None,
    ) -> None:
        super().__init__(name, timeout=timeout)
        if transport not in ("aiohttp", "httpx"):
            raise ValueError("transport must be 'aiohttp' or 'httpx'")
        self.type = type
        self.base_url = base_url.rstrip("/")
        self.models = list(models)
        self.transport = transport
        self._api_key = api_key
        self._headers = dict(headers or {})
        self._max_connections = max_connections
        self._http_client = http_client  # injected: the caller owns and closes it
        self._client: AsyncOpenAI | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # --- the SDK client ----------------------------------------------------------------------

    def client(self) -> AsyncOpenAI:
        """The shared SDK client, created on first use inside the running loop."""
        loop = asyncio.get_running_loop()
        if self._client is not None and self._loop is loop:
            return self._client
        try:
            import openai
        except ImportError as exc:  # pragma: no cover - a core dependency
            raise LLMError(
                "the 'openai' package is missing: pip install 'openai[aiohttp]'"
            ) from exc
        http_client = self._http_client
        if http_client is None:
            limits = _httpx().Limits(
                max_connections=self._max_connections,
                max_keepalive_connections=self._max_connections,
            )
            factory = (
                openai.DefaultAioHttpClient
                if self.transport == "aiohttp"
                else openai.DefaultAsyncHttpxClient
            )
            http_client = factory(limits=limits, timeout=self._sdk_timeout(self.timeout))
        headers: dict[str, Any] = dict(self._headers)
        if self.type != "openai":
            # The SDK reads OpenAI org/project ids from the environment; keep them at OpenAI.
            headers.setdefault("OpenAI-Organization", openai.Omit())
            headers.setdefault("OpenAI-Project", openai.Omit())
        self._client = openai.AsyncOpenAI(
            api_key=self._api_key or _NO_KEY,
            base_url=self.base_url,
            max_retries=0,
            timeout=self._sdk_timeout(self.timeout),
            default_headers=headers,
            http_client=http_client,
        )
        self._loop = loop
        return self._client

    @staticmethod
    def _sdk_timeout(seconds: float) -> Any:
        return _sdk_timeout(seconds)

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None and self._http_client is None:
            with contextlib.suppress(Exception):
                await client.close()

    # --- requests ----------------------------------------------------------------------------

    def _request(
        self,
        messages: list[Message],
        names: ToolNameMap,
        *,
        model: str,
        temperature: float | None,
        tools: list[Tool] | None,
        max_tokens: int | None,
    ) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"model": model, "messages": to_openai_messages(messages, names)}
        if temperature is not None:
            kwargs["temperature"] = temperature
        if tools:
            kwargs["tools"] = [t.dump() for t in names.wire_tools(tools)]
        if max_tokens:
            kwargs["max_completion_tokens" if self.type == "openai" else "max_tokens"] = max_tokens
        return kwargs

    async def _post(
        self, path: str, payload: dict[str, Any], model: str | None, timeout: float
    ) -> str:
        """POST through the SDK's raw-request path; returns the body text.

        The SDK's typed methods spend about a millisecond of CPU per call transforming typed
        parameters and building response models; at hundreds of concurrent calls that dominates,
        so non-streaming calls use its documented `client.post(..., cast_to=httpx.Response)`
        path (same auth, headers, transport and error types) and parse the JSON here.
        """
        with self._errors(model):
            response = await self.client().post(
                path,
                body=payload,
                cast_to=_httpx().Response,
                options={"timeout": self._sdk_timeout(timeout)},
            )
            return _reply_text(response)

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
        names = ToolNameMap.for_tools(tools)
        kwargs = self._request(
            messages,
            names,
            model=model,
            temperature=temperature,
            tools=tools,
            max_tokens=max_tokens,
        )
        body = await self._post("/chat/completions", kwargs, model, timeout)
        data = self._json(body, model)
        try:
            choice = data["choices"][0]
            wire = choice.get("message") or {}
            calls = [
                names.internal_call(
                    ToolCall(
                        id=c.get("id") or f"call_{i}",
                        function=FunctionCall(
                            name=c["function"]["name"],
                            arguments=_arguments(c["function"].get("arguments")),
                        ),
                    )
                )
                for i, c in enumerate(wire.get("tool_calls") or [])
            ]
            message = Message(
                role="assistant", content=wire.get("content") or "", call_tools=calls or None
            )
            finish = choice.get("finish_reason") or ("tool_calls" if calls else "stop")
        except (KeyError, IndexError, TypeError, AttributeError) as exc:
            raise ProviderUnavailableError(
                f"unexpected chat response shape ({type(exc).__name__}: {exc})",
                provider=self.name,
                model=model,
                body=body,
            ) from exc
        usage = data.get("usage") or {}
        reported = isinstance(usage.get("prompt_tokens"), int) and isinstance(
            usage.get("completion_tokens"), int
        )
        return ChatResult(
            message=message,
            input_tokens=usage["prompt_tokens"] if reported else estimate_tokens(messages),
            output_tokens=usage["completion_tokens"] if reported else estimate_tokens(message),
            provider=self.name,
            model=model,
            finish_reason=finish,
            usage_reported=reported,
        )

    async def _chat_stream(
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
        names = ToolNameMap.for_tools(tools)
        kwargs = self._request(
            messages,
            names,
            model=model,
            temperature=temperature,
            tools=tools,
            max_tokens=max_tokens,
        )
        with self._errors(model):
            stream = await self.client().chat.completions.create(
                **kwargs,
                stream=True,
                stream_options={"include_usage": True},
                timeout=self._sdk_timeout(timeout),
            )
            try:
                async for chunk in stream:
                    usage = getattr(chunk, "usage", None)
                    if usage is not None and usage.prompt_tokens is not None:
                        state.input_tokens = usage.prompt_tokens
                        state.output_tokens = usage.completion_tokens
                    for choice in chunk.choices or []:
                        delta = choice.delta
                        if choice.finish_reason:
                            state.finish_reason = choice.finish_reason
                        if delta is None:
                            continue
                        for call in delta.tool_calls or []:
                            fn = call.function
                            state.add_call(
                                call.index if call.index is not None else len(state.calls),
                                id=call.id,
                                name=fn.name if fn else None,
                                arguments=(fn.arguments or "") if fn else "",
                            )
                        if delta.content:
                            state.parts.append(delta.content)
                            yield delta.content
            finally:
                await stream.close()
        for slot in state.calls.values():
            slot[1] = names.to_internal(slot[1])

    async def _embed_once(self, text: str, *, model: str, timeout: float) -> EmbedResult:
        payload = {"model": model, "input": text, "encoding_format": "float"}
        body = await self._post("/embeddings", payload, model, timeout)
        data = self._json(body, model)
        try:
            vector = [float(x) for x in data["data"][0]["embedding"]]
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            raise ProviderUnavailableError(
                "unexpected embedding response shape", provider=self.name, model=model, body=body
            ) from exc
        usage = data.get("usage") or {}
        tokens = usage.get("prompt_tokens")
        return EmbedResult(
            vector=vector,
            provider=self.name,
            model=model,
            input_tokens=tokens if isinstance(tokens, int) else estimate_tokens(text),
        )

    async def _list_models(self, timeout: float) -> list[str]:
        with self._errors(None):
            response = await self.client().get(
                "/models",
                cast_to=_httpx().Response,
                options={"timeout": self._sdk_timeout(timeout)},
            )
            body = _reply_text(response)
        data = self._json(body, None)
        try:
            return [str(m["id"]) for m in data["data"]]
        except (KeyError, TypeError) as exc:
            raise ProviderUnavailableError(
                "unexpected model list shape", provider=self.name, body=body
            ) from exc

    # --- error translation -------------------------------------------------------------------

    def _errors(self, model: str | None) -> _ErrorTranslation:
        """`with self._errors(model):` raises SDK and transport exceptions as provider errors."""
        return _ErrorTranslation(self, model)

    def _translate(self, exc: BaseException, model: str | None) -> LLMError | None:
        """The engine's error for an SDK or transport exception (None: let it propagate as is)."""
        import openai

        if isinstance(exc, LLMError):
            return None
        if isinstance(exc, openai.APIStatusError):
            return error_for_status(
                exc.status_code,
                _status_message(exc),
                provider=self.name,
                model=model,
                body=_body_text(exc),
                headers=getattr(exc.response, "headers", None),
            )
        if isinstance(exc, openai.APIConnectionError):
            # The SDK's aiohttp bridge reports refused connections as timeouts: trust the root cause.
            root = _root_cause(exc)
            if isinstance(root, TimeoutError) or (
                root is exc and isinstance(exc, openai.APITimeoutError)
            ):
                message = f"timed out talking to {self.base_url}"
            else:
                message = f"connection to {self.base_url} failed ({type(root).__name__}: {root})"
            return ProviderUnavailableError(message, provider=self.name, model=model)
        if isinstance(exc, (openai.APIResponseValidationError, ValueError)):
            return ProviderUnavailableError(
                f"malformed response ({type(exc).__name__}: {exc})", provider=self.name, model=model
            )
        if isinstance(exc, openai.OpenAIError):
            return LLMError(f"{type(exc).__name__}: {exc}", provider=self.name, model=model)
        if isinstance(exc, (OSError, EOFError)):
            return ProviderUnavailableError(
                f"connection to {self.base_url} failed ({type(exc).__name__}: {exc})",
                provider=self.name,
                model=model,
            )
        return None


class _ErrorTranslation:
    """The context manager behind `_errors`: a plain slots object rather than a generator-based
    one, because every request enters it and a `contextlib.contextmanager` costs a generator,
    its frame and a helper object per call (garbage that adds up at hundreds of calls at once)."""

    __slots__ = ("_model", "_provider")

    def __init__(self, provider: OpenAICompatProvider, model: str | None) -> None:
        self._provider = provider
        self._model = model

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> Literal[False]:
        if exc is None:
            return False
        error = self._provider._translate(exc, self._model)
        if error is None:
            return False
        raise error from exc


def to_openai_messages(
    messages: Sequence[Message], names: ToolNameMap | None = None
) -> list[dict[str, Any]]:
    """Messages in chat-completions wire form (tool names mapped for sending)."""
    names = names or ToolNameMap()
    out: list[dict[str, Any]] = []
    for m in messages:
        item: dict[str, Any] = {"role": m.role, "content": m.content}
        if m.call_tools:
            item["tool_calls"] = [names.wire_call(c).dump() for c in m.call_tools]
            if not m.content:
                item["content"] = None
        if m.tool_call_id:
            item["tool_call_id"] = m.tool_call_id
        out.append(item)
    return out


@functools.lru_cache(maxsize=64)
def _sdk_timeout(seconds: float) -> Any:
    """The SDK timeout for `seconds`, built once per value (a value object neither the SDK nor
    httpx changes) instead of once per request."""
    import openai

    return openai.Timeout(seconds, connect=min(seconds, 10.0))


@functools.cache
def _httpx() -> Any:
    """The httpx flavour the installed SDK is built on (`httpx2` in newer releases)."""
    try:
        import httpx2

        return httpx2
    except ImportError:  # pragma: no cover - older SDKs
        import httpx

        return httpx


def _root_cause(exc: BaseException) -> BaseException:
    seen = {id(exc)}
    while exc.__cause__ is not None and id(exc.__cause__) not in seen:
        exc = exc.__cause__
        seen.add(id(exc))
    return exc


def _arguments(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value)


def _body_text(exc: Any) -> str | None:
    try:
        text = exc.response.text
    except Exception:
        text = None
    if not text and exc.body is not None:
        text = exc.body if isinstance(exc.body, str) else json.dumps(exc.body, default=str)
    return text or None


def _status_message(exc: Any) -> str:
    status = exc.status_code
    if status == 429:
        return "rate limited (429)"
    if status >= 500:
        return f"server error ({status})"
    return f"request rejected ({status})"


def _reply_text(response: Any) -> str:
    """A reply body as text. JSON is UTF-8 (RFC 8259), so a body that declares no other charset
    is decoded as that directly: `response.text` would parse the Content-Type header with the
    `email` package on every call (~6 µs a request on the server path)."""
    declared = response.headers.get("content-type", "").lower()
    if "charset=" in declared and "utf-8" not in declared and "utf8" not in declared:
        return response.text
    return response.content.decode("utf-8", errors="replace")
