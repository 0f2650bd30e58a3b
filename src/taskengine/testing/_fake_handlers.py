"""The fake LLM server's HTTP handlers: chat, embeddings and model listing, with injected faults.

`FakeHandlers` answers for one `FakeLLMServer`: it reads the server's settings (default reply,
context size, usage reporting) and asks it to record each request and pick the matching rule.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, NoReturn

from aiohttp import web

from taskengine.testing import _fake_wire as wire
from taskengine.testing._fake_records import FakeRule

if TYPE_CHECKING:
    from taskengine.testing.fake_llm import FakeLLMServer

__all__ = ["FakeHandlers"]


class FakeHandlers:
    """The route handlers of one `FakeLLMServer` (`chat`, `embed`, `models`)."""

    def __init__(self, server: FakeLLMServer) -> None:
        self.server = server

    async def _fault(
        self, request: web.Request, rule: FakeRule | None, api: str, stream: bool
    ) -> web.StreamResponse | None:
        """Apply a rule's delay and faults; returns the response to send instead, if any."""
        if rule is None:
            return None
        if rule.delay:
            await asyncio.sleep(rule.delay)
        if rule.drop:
            _drop(request)
        if rule.status is not None and rule.status >= 400:
            body = rule.body if rule.body is not None else wire.error_body(api, rule.status)
            if isinstance(body, str):
                return web.Response(
                    status=rule.status, text=body, content_type="text/plain", headers=rule.headers
                )
            return _json(rule.status, body, headers=rule.headers)
        if rule.malformed and not stream:
            return web.Response(
                status=200, text=wire.MALFORMED_JSON, content_type="application/json"
            )
        return None

    def _reply_text(self, rule: FakeRule | None, body: dict[str, Any]) -> str:
        reply = (
            rule.reply if rule is not None and rule.reply is not None else self.server.default_reply
        )
        return str(reply(body)) if callable(reply) else str(reply)

    async def chat(self, request: web.Request, api: str) -> web.StreamResponse:
        body, record = await self.server.receive(request, api)
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
            return _json(
                400, wire.error_body(api, 400, "body must be a JSON object with 'messages'")
            )
        if api == "openai" and self.server.strict_tool_names:
            for tool in body.get("tools") or []:
                name = str(((tool or {}).get("function") or {}).get("name", ""))
                if not wire.OPENAI_TOOL_NAME.match(name):
                    msg = f"Invalid 'tools[].function.name': {name!r} does not match '^[a-zA-Z0-9_-]{{1,64}}$'"
                    return _json(400, wire.error_body(api, 400, msg))
        if api == "openai" and self.server.context_size is not None:
            prompt = wire.usage(record.messages, "", [])["prompt_tokens"]
            if prompt > self.server.context_size:
                return _json(400, wire.context_error(prompt, self.server.context_size))
        rule = self.server.pick_rule("chat", record.text, record.model)
        faulty = await self._fault(request, rule, api, record.stream)
        if faulty is not None:
            return faulty
        calls = wire.normalise_calls(rule.tool_calls if rule is not None else None)
        content = "" if calls else self._reply_text(rule, body)
        # Like a real server, stop at max_tokens (the fake's tokens are words) and say so.
        content, finish = wire.cut(content, record.max_tokens, "tool_calls" if calls else "stop")
        used = wire.usage(record.messages, content, calls) if self.server.report_usage else None
        if api == "openai":
            if not record.stream:
                return _json(
                    200, wire.openai_completion(record.model, content, calls, used, finish)
                )
            options = body.get("stream_options")
            include_usage = isinstance(options, dict) and bool(options.get("include_usage"))
            lines = wire.openai_stream(record.model, content, calls, used, include_usage, finish)
            return await self._stream(request, rule, lines, "text/event-stream", wire.MALFORMED_SSE)
        if not record.stream:
            return _json(200, wire.ollama_chat(record.model, content, calls, used, finish))
        lines = wire.ollama_stream(record.model, content, calls, used, finish)
        return await self._stream(
            request, rule, lines, "application/x-ndjson", wire.MALFORMED_NDJSON
        )

    async def embed(self, request: web.Request, api: str) -> web.StreamResponse:
        body, record = await self.server.receive(request, api)
        if not isinstance(body, dict) or "input" not in body:
            return _json(400, wire.error_body(api, 400, "body must be a JSON object with 'input'"))
        rule = self.server.pick_rule("embed", record.text, record.model)
        faulty = await self._fault(request, rule, api, False)
        if faulty is not None:
            return faulty
        inputs = wire.embed_inputs(body)
        vectors = [self.server.embedding_for(text) for text in inputs]
        tokens = sum(wire.count_tokens(text) for text in inputs)
        if api == "openai":
            b64 = body.get("encoding_format") == "base64"
            return _json(200, wire.openai_embeddings(record.model, vectors, tokens, b64))
        return _json(200, wire.ollama_embed(record.model, vectors, tokens))

    async def models(self, request: web.Request, api: str) -> web.StreamResponse:
        await self.server.receive(request, api)
        return _json(
            200,
            wire.openai_models(self.server.models)
            if api == "openai"
            else wire.ollama_tags(self.server.models),
        )

    async def _stream(
        self, request: web.Request, rule: FakeRule | None, lines: list[str], ctype: str, broken: str
    ) -> web.StreamResponse:
        response = web.StreamResponse(
            status=200, headers={"Content-Type": ctype, "Cache-Control": "no-cache"}
        )
        await response.prepare(request)
        if rule is not None and rule.malformed:
            await response.write(broken.encode())
            await response.write_eof()
            return response
        drop_at = rule.drop_after_chunks if rule is not None else None
        for index, line in enumerate(lines):
            if drop_at is not None and index >= drop_at:
                _drop(request)
            if rule is not None and rule.chunk_delay and index:
                await asyncio.sleep(rule.chunk_delay)
            await response.write(line.encode())
        await response.write_eof()
        return response


def _json(status: int, payload: Any, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.Response(
        status=status, text=json.dumps(payload), content_type="application/json", headers=headers
    )


def _drop(request: web.Request) -> NoReturn:
    """Close the connection mid-request; the handler then ends without a response."""
    if request.transport is not None:
        request.transport.close()
    raise asyncio.CancelledError
