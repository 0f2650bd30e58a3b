"""OpenAI chat-completions wire models, and conversions to and from a `ChatHistory`."""

from __future__ import annotations

import time
from datetime import datetime
from typing import TYPE_CHECKING, Any

from pydantic import Field

from taskengine.datatypes.messages import ChatHistory, Message, Tool, ToolCall, WireModel
from taskengine.ids import new_id

if TYPE_CHECKING:
    from taskengine.chain import LLMExecutionConfig

__all__ = [
    "OpenAIChatRequest",
    "OpenAIChatRequestMessage",
    "OpenAIChatResponse",
    "OpenAIChatResponseChoice",
    "OpenAIChatResponseMessage",
    "OpenAITokenUsage",
    "convert_chat_history_to_openai",
    "convert_chat_history_to_openai_request",
    "convert_openai_to_chat_history",
]


class OpenAIChatRequestMessage(WireModel):
    role: str
    content: str | None = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None


class OpenAIChatRequest(WireModel):
    """A request in OpenAI's chat-completions format."""

    model: str = ""
    messages: list[OpenAIChatRequestMessage] = Field(default_factory=list)
    tools: list[Tool] | None = None
    tool_choice: Any = None
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    stop: list[str] | str | None = None
    n: int | None = None
    stream: bool | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    user: str | None = None


class OpenAIChatResponseMessage(WireModel):
    role: str = "assistant"
    content: str | None = None
    tool_calls: list[ToolCall] | None = None


class OpenAIChatResponseChoice(WireModel):
    index: int = 0
    message: OpenAIChatResponseMessage
    finish_reason: str = "stop"


class OpenAITokenUsage(WireModel):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0


class OpenAIChatResponse(WireModel):
    """A `chat.completion` object."""

    id: str = ""
    object: str = "chat.completion"
    created: int = 0
    model: str = ""
    choices: list[OpenAIChatResponseChoice] = Field(default_factory=list)
    usage: OpenAITokenUsage = Field(default_factory=OpenAITokenUsage)
    system_fingerprint: str | None = None


def convert_openai_to_chat_history(
    request: OpenAIChatRequest,
) -> tuple[ChatHistory, int, list[Tool], LLMExecutionConfig]:
    """Split an OpenAI request into a ChatHistory, its max_tokens, its tools and an exec config."""
    from taskengine.chain import LLMExecutionConfig

    now = datetime.now().astimezone()
    messages = [
        Message(
            role=m.role,
            content=m.content or "",
            tool_call_id=m.tool_call_id,
            call_tools=list(m.tool_calls) if m.tool_calls else None,
            timestamp=now,
        )
        for m in request.messages
    ]
    history = ChatHistory(messages=messages, model=request.model)
    config = LLMExecutionConfig(
        model=request.model or "",
        temperature=request.temperature,
    )
    return history, int(request.max_tokens or 0), list(request.tools or []), config


def convert_chat_history_to_openai_request(
    history: ChatHistory,
) -> tuple[OpenAIChatRequest, int, int]:
    """Turn a ChatHistory into an OpenAI request; also returns its input and output token counts."""
    messages = [
        OpenAIChatRequestMessage(
            role=m.role,
            content=m.content if m.content or not m.call_tools else None,
            tool_calls=list(m.call_tools) if m.call_tools else None,
            tool_call_id=m.tool_call_id or None,
        )
        for m in history.messages
    ]
    request = OpenAIChatRequest(model=history.model, messages=messages)
    return request, history.input_tokens, history.output_tokens


def convert_chat_history_to_openai(response_id: str, history: ChatHistory) -> OpenAIChatResponse:
    """Render the last assistant message of a history as a `chat.completion` response."""
    last = next((m for m in reversed(history.messages) if m.role == "assistant"), None)
    if last is None:
        last = history.messages[-1] if history.messages else Message(role="assistant", content="")
    tool_calls = list(last.call_tools) if last.call_tools else None
    message = OpenAIChatResponseMessage(
        role="assistant",
        content=last.content if (last.content or not tool_calls) else None,
        tool_calls=tool_calls,
    )
    return OpenAIChatResponse(
        id=response_id or f"chatcmpl-{new_id()}",
        created=int(time.time()),
        model=history.model,
        choices=[
            OpenAIChatResponseChoice(
                index=0, message=message, finish_reason="tool_calls" if tool_calls else "stop"
            )
        ],
        usage=OpenAITokenUsage(
            prompt_tokens=history.input_tokens,
            completion_tokens=history.output_tokens,
            total_tokens=history.input_tokens + history.output_tokens,
        ),
    )
