"""What the fake LLM server is scripted with (`FakeRule`) and what it records (`RecordedRequest`)."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from multidict import CIMultiDict

from taskengine.testing import _fake_wire as wire

__all__ = ["FakeRule", "RecordedRequest", "Reply", "read_request"]

Reply = str | Callable[[dict[str, Any]], str]


@dataclass(slots=True)
class FakeRule:
    """One scripted answer: when it applies, what it replies, and which fault it injects."""

    match: str | None = None
    regex: re.Pattern[str] | None = None
    model: str | None = None
    kind: str | None = None  # "chat", "embed" or None for both
    reply: Reply | None = None
    tool_calls: list[dict[str, Any]] | None = None
    status: int | None = None
    body: str | dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    chunk_delay: float = 0.0
    malformed: bool = False
    drop: bool = False
    drop_after_chunks: int | None = None
    times: int | None = None
    hits: int = 0

    def applies(self, kind: str, text: str, model: str) -> bool:
        if self.times is not None and self.hits >= self.times:
            return False
        if self.kind is not None and self.kind != kind:
            return False
        if self.model is not None and self.model != model:
            return False
        if self.match is not None and self.match not in text:
            return False
        return self.regex is None or self.regex.search(text) is not None


@dataclass(slots=True)
class RecordedRequest:
    """What a client sent: enough to assert on messages, tools, temperature and model."""

    method: str
    path: str
    api: str  # "openai" or "ollama"
    json: Any
    headers: CIMultiDict[str]  # case-insensitive, as HTTP headers are
    model: str = ""
    messages: list[dict[str, Any]] = field(default_factory=list)
    tools: list[dict[str, Any]] | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    stream: bool = False
    text: str = ""
    at: float = 0.0


async def read_request(request: web.Request, api: str) -> tuple[Any, RecordedRequest]:
    """The JSON body of `request` (None when it is not JSON) and its record."""
    raw = await request.read()
    try:
        body = json.loads(raw) if raw else {}
    except ValueError:
        body = None
    record = RecordedRequest(
        method=request.method,
        path=request.path,
        api=api,
        json=body,
        headers=CIMultiDict(request.headers),
        at=time.time(),
    )
    if isinstance(body, dict):
        messages = body.get("messages")
        options = body.get("options")
        record.model = str(body.get("model") or "")
        record.messages = list(messages) if isinstance(messages, list) else []
        record.tools = body.get("tools")
        # Ollama streams unless told otherwise; OpenAI only when asked.
        record.stream = bool(body.get("stream", api == "ollama" and isinstance(messages, list)))
        if isinstance(options, dict):
            record.temperature = options.get("temperature")
            record.max_tokens = options.get("num_predict")
        else:
            record.temperature = body.get("temperature")
            record.max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
        record.text = (
            wire.last_user_text(record.messages) if messages else "\n".join(wire.embed_inputs(body))
        )
    return body, record
