"""A chain's output as OpenAI `chat.completion` objects and `chat.completion.chunk` SSE events.

The `model` field of every completion and chunk is the `model` the client asked for (the chain
id when it sent none), as the Go API echoes it; the model that actually answered is recorded
in the run's steps. `usage` counts every LLM call of the run
when the engine saw any (a chain may call several models), else the output's own counts.
"""

from __future__ import annotations

import json
import time
from typing import Any

from taskengine.datatypes import (
    ChatHistory,
    OpenAIChatResponse,
    OpenAIChatResponseChoice,
    OpenAIChatResponseMessage,
    OpenAITokenUsage,
    convert_chat_history_to_openai,
    to_display,
)

__all__ = ["completion_from_output", "sse", "stream_chunk", "tool_call_deltas"]


def completion_from_output(
    output: Any, *, completion_id: str, model: str, totals: dict[str, Any] | None = None
) -> OpenAIChatResponse:
    """The `chat.completion` for a run's final output (response, chat history, or any value)."""
    if isinstance(output, OpenAIChatResponse):
        response = output.model_copy(deep=True)
        response.id = response.id or completion_id
    elif isinstance(output, ChatHistory):
        response = convert_chat_history_to_openai(completion_id, output)
    else:
        text = output if isinstance(output, str) else to_display(output)
        response = OpenAIChatResponse(
            id=completion_id,
            choices=[OpenAIChatResponseChoice(message=OpenAIChatResponseMessage(content=text))],
        )
    response.model = model
    response.object = "chat.completion"
    if not response.created:
        response.created = int(time.time())
    if not response.choices:
        response.choices = [OpenAIChatResponseChoice(message=OpenAIChatResponseMessage(content=""))]
    totals = totals or {}
    if totals.get("llm_calls"):
        prompt = int(totals.get("input_tokens", 0))
        completion = int(totals.get("output_tokens", 0))
        response.usage = OpenAITokenUsage(
            prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion
        )
    return response


def stream_chunk(
    completion_id: str,
    created: int,
    model: str,
    delta: dict[str, Any] | None,
    finish_reason: str | None = None,
    usage: dict[str, int] | None = None,
) -> dict[str, Any]:
    """One `chat.completion.chunk`; with `usage` and no delta it is the trailing usage chunk."""
    chunk: dict[str, Any] = {
        "id": completion_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": []
        if delta is None
        else [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
    }
    if usage is not None:
        chunk["usage"] = usage
    return chunk


def tool_call_deltas(response: OpenAIChatResponse) -> list[dict[str, Any]]:
    """The final message's tool calls in the streamed form (each with its `index`)."""
    message = response.choices[0].message if response.choices else None
    calls = (message.tool_calls if message is not None else None) or []
    return [
        {
            "index": i,
            "id": call.id or f"call_{i}",
            "type": call.type or "function",
            "function": {"name": call.function.name, "arguments": call.function.arguments},
        }
        for i, call in enumerate(calls)
    ]


def sse(data: dict[str, Any] | str) -> bytes:
    """One server-sent event line pair."""
    text = (
        data
        if isinstance(data, str)
        else json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    )
    return f"data: {text}\n\n".encode()
