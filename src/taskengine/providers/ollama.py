"""Ollama's native API (`/api/chat`, `/api/embed`, `/api/tags`) over one aiohttp session.

The native API reports token counts on every reply and takes sampling settings under
`options`; tool-call arguments are JSON objects rather than strings.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from taskengine.datatypes import FunctionCall, Message, Tool, ToolCall
from taskengine.errors import LLMError, ProviderUnavailableError
from taskengine.ids import new_id
from taskengine.providers.base import (
    BaseProvider,
    ChatResult,
    EmbedResult,
    StreamState,
    error_for_status,
    estimate_tokens,
)

if TYPE_CHECKING:
    import aiohttp

__all__ = ["OllamaProvider", "to_ollama_messages"]


class OllamaProvider(BaseProvider):
    """A named Ollama server; one `aiohttp.ClientSession` (one pool), opened lazily in the loop."""

    type = "ollama"

    def __init__(
        self,
        name: str,
        *,
        base_url: str = "http://127.0.0.1:11434",
        api_key: str | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float = 120.0,
        max_connections: int = 1000,
        models: Sequence[str] = (),
        keep_alive: str | None = None,
    ) -> None:
        super().__init__(name, timeout=timeout)
        self.base_url = base_url.rstrip("/")
        self.models = list(models)
        self.keep_alive = keep_alive
        self._headers = dict(headers or {})
        if api_key:
            self._headers.setdefault("Authorization", f"Bearer {api_key}")
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def session(self) -> aiohttp.ClientSession:
        """The shared session, created on first use inside the running loop."""
        import aiohttp

        loop = asyncio.get_running_loop()
        if self._session is None or self._session.closed or self._loop is not loop:
            connector = aiohttp.TCPConnector(limit=self._max_connections)
            self._session = aiohttp.ClientSession(connector=connector, headers=self._headers)
            self._loop = loop
        return self._session

    async def aclose(self) -> None:
        session, self._session = self._session, None
        if session is not None and not session.closed:
            await session.close()

    # --- requests ----------------------------------------------------------------------------

    def _body(
        self,
        messages: list[Message],
        *,
        model: str,
        temperature: float | None,
        tools: list[Tool] | None,
        max_tokens: int | None,
        stream: bool,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": model,
            "messages": to_ollama_messages(messages),
            "stream": stream,
        }
        options: dict[str, Any] = {}
        if temperature is not None:
            options["temperature"] = temperature
        if max_tokens:
            options["num_predict"] = max_tokens
        if options:
            body["options"] = options
        if tools:
            body["tools"] = [t.dump() for t in tools]
        if self.keep_alive is not None:
            body["keep_alive"] = self.keep_alive
        return body

    def _timeout(self, seconds: float) -> aiohttp.ClientTimeout:
        import aiohttp

        return aiohttp.ClientTimeout(total=None, sock_connect=min(seconds, 10.0), sock_read=seconds)

    async def _post(
        self, path: str, body: dict[str, Any], model: str | None, timeout: float
    ) -> dict[str, Any]:
        with self._errors(model):
            async with self.session().post(
                self.base_url + path, json=body, timeout=self._timeout(timeout)
            ) as resp:
                text = await resp.text()
                if resp.status >= 400:
                    raise error_for_status(
                        resp.status,
                        _message(resp.status, text),
                        provider=self.name,
                        model=model,
                        body=text,
                        headers=resp.headers,
                    )
        return self._json(text, model)

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
        body = self._body(
            messages,
            model=model,
            temperature=temperature,
            tools=tools,
            max_tokens=max_tokens,
            stream=False,
        )
        data = await self._post("/api/chat", body, model, timeout)
        if "error" in data:
            raise ProviderUnavailableError(
                "server reported an error", provider=self.name, model=model, body=str(data["error"])
            )
        wire = data.get("message")
        if not isinstance(wire, dict):
            raise ProviderUnavailableError(
                "unexpected chat response shape (no message)",
                provider=self.name,
                model=model,
                body=json.dumps(data),
            )
        calls = _calls(wire.get("tool_calls"))
        message = Message(
            role="assistant", content=str(wire.get("content") or ""), call_tools=calls or None
        )
        prompt_n, output_n = data.get("prompt_eval_count"), data.get("eval_count")
        reported = isinstance(prompt_n, int) and isinstance(output_n, int)
        return ChatResult(
            message=message,
            input_tokens=prompt_n if reported else estimate_tokens(messages),  # type: ignore[arg-type]
            output_tokens=output_n if reported else estimate_tokens(message),  # type: ignore[arg-type]
            provider=self.name,
            model=model,
            finish_reason="tool_calls" if calls else str(data.get("done_reason") or "stop"),
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
        body = self._body(
            messages,
            model=model,
            temperature=temperature,
            tools=tools,
            max_tokens=max_tokens,
            stream=True,
        )
        with self._errors(model):
            async with self.session().post(
                self.base_url + "/api/chat", json=body, timeout=self._timeout(timeout)
            ) as resp:
                if resp.status >= 400:
                    text = await resp.text()
                    raise error_for_status(
                        resp.status,
                        _message(resp.status, text),
                        provider=self.name,
                        model=model,
                        body=text,
                        headers=resp.headers,
                    )
                done = False
                async for raw in resp.content:
                    line = raw.strip()
                    if not line:
                        continue
                    data = self._json(line.decode(errors="replace"), model)
                    if "error" in data:
                        raise ProviderUnavailableError(
                            "server reported an error mid-stream",
                            provider=self.name,
                            model=model,
                            body=str(data["error"]),
                        )
                    wire = data.get("message") or {}
                    for call in _calls(wire.get("tool_calls")):
                        state.add_call(
                            len(state.calls),
                            id=call.id,
                            name=call.function.name,
                            arguments=call.function.arguments,
                        )
                    piece = wire.get("content")
                    if piece:
                        state.parts.append(piece)
                        yield piece
                    if data.get("done"):
                        done = True
                        if isinstance(data.get("prompt_eval_count"), int) and isinstance(
                            data.get("eval_count"), int
                        ):
                            state.input_tokens = data["prompt_eval_count"]
                            state.output_tokens = data["eval_count"]
                        state.finish_reason = (
                            "tool_calls" if state.calls else str(data.get("done_reason") or "stop")
                        )
                        break
                if not done:
                    raise ProviderUnavailableError(
                        "stream ended before 'done'", provider=self.name, model=model
                    )

    async def _embed_once(self, text: str, *, model: str, timeout: float) -> EmbedResult:
        data = await self._post("/api/embed", {"model": model, "input": text}, model, timeout)
        try:
            vector = [float(x) for x in data["embeddings"][0]]
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            raise ProviderUnavailableError(
                "unexpected embedding response shape",
                provider=self.name,
                model=model,
                body=json.dumps(data),
            ) from exc
        tokens = data.get("prompt_eval_count")
        return EmbedResult(
            vector=vector,
            provider=self.name,
            model=model,
            input_tokens=tokens if isinstance(tokens, int) else estimate_tokens(text),
        )

    async def _list_models(self, timeout: float) -> list[str]:
        with self._errors(None):
            async with self.session().get(
                self.base_url + "/api/tags", timeout=self._timeout(timeout)
            ) as resp:
                text = await resp.text()
                if resp.status >= 400:
                    raise error_for_status(
                        resp.status,
                        _message(resp.status, text),
                        provider=self.name,
                        model=None,
                        body=text,
                    )
        data = self._json(text, None)
        try:
            return [str(m.get("name") or m["model"]) for m in data["models"]]
        except (KeyError, TypeError, AttributeError) as exc:
            raise ProviderUnavailableError(
                "unexpected model list shape", provider=self.name, body=text
            ) from exc

    # --- error translation -------------------------------------------------------------------

    @contextlib.contextmanager
    def _errors(self, model: str | None) -> Iterator[None]:
        """Translate aiohttp and socket exceptions into the engine's provider errors."""
        import aiohttp

        try:
            yield
        except LLMError:
            raise
        except TimeoutError as exc:  # aiohttp's sock_read / sock_connect timeouts
            raise ProviderUnavailableError(
                f"timed out talking to {self.base_url}", provider=self.name, model=model
            ) from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise ProviderUnavailableError(
                f"connection to {self.base_url} failed ({type(exc).__name__}: {exc})",
                provider=self.name,
                model=model,
            ) from exc


def to_ollama_messages(messages: Sequence[Message]) -> list[dict[str, Any]]:
    """Messages in Ollama's wire form: tool-call arguments as objects, tool results named."""
    names_by_id: dict[str, str] = {}
    out: list[dict[str, Any]] = []
    for m in messages:
        item: dict[str, Any] = {"role": m.role, "content": m.content}
        if m.call_tools:
            calls = []
            for c in m.call_tools:
                names_by_id[c.id] = c.function.name
                calls.append(
                    {
                        "function": {
                            "name": c.function.name,
                            "arguments": _args_object(c.function.arguments),
                        }
                    }
                )
            item["tool_calls"] = calls
        if m.role == "tool" and m.tool_call_id and m.tool_call_id in names_by_id:
            item["tool_name"] = names_by_id[m.tool_call_id]
        out.append(item)
    return out


def _args_object(arguments: str) -> Any:
    if not arguments:
        return {}
    try:
        return json.loads(arguments)
    except ValueError:
        return {}


def _calls(raw: Any) -> list[ToolCall]:
    out = []
    for call in raw or []:
        fn = (call or {}).get("function") or {}
        args = fn.get("arguments")
        text = args if isinstance(args, str) else json.dumps(args if args is not None else {})
        out.append(
            ToolCall(
                # Ollama sends no ids; make each unique so tool results and idempotency keys differ.
                id=call.get("id") or f"call_{new_id()[:12]}",
                function=FunctionCall(name=str(fn.get("name", "")), arguments=text),
            )
        )
    return out


def _message(status: int, text: str) -> str:
    try:
        detail = json.loads(text).get("error")
    except (ValueError, AttributeError):
        detail = None
    if status == 429:
        return "rate limited (429)"
    if status >= 500:
        return f"server error ({status})" + (f": {detail}" if detail else "")
    return f"request rejected ({status})" + (f": {detail}" if detail else "")
