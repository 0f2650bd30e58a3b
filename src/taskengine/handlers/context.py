"""What a handler is given besides its input: the run's `ExecContext`, and input helpers.

`ExecContext` is one object per run (reused for every step); `get_prompt` and `as_history`
turn a task's input into the prompt text or the chat history a model handler sends.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from taskengine.datatypes import (
    ChatHistory,
    DataType,
    Message,
    OpenAIChatRequest,
    Tool,
    convert_openai_to_chat_history,
    to_display,
)
from taskengine.engine.events import LLMCall, RunInfo
from taskengine.errors import TaskExecutionError

if TYPE_CHECKING:
    from taskengine.chain import TaskChainDefinition

__all__ = ["ChainContext", "ExecContext", "as_history", "get_prompt"]


@dataclass(slots=True)
class ChainContext:
    """What a run offers models (Go: `ChainContext`): hook tools by name and the client's tools."""

    tools: dict[str, Any] = field(default_factory=dict)
    client_tools: list[Tool] = field(default_factory=list)


@dataclass(slots=True)
class ExecContext:
    """What a handler may know about the run it is part of (one object per run, reused)."""

    run: RunInfo
    chain: TaskChainDefinition
    variables: dict[str, Any]
    types: dict[str, DataType]
    attempt: int = 1
    #: the step's number in the run (stable across retries and resume of the same step)
    seq: int = 0
    timeout: float | None = None
    client_tools: list[Tool] | None = None
    #: the OpenAI request a run was started with (for pass_clients_tools), if any
    emit_delta: Callable[[str, str], Awaitable[None]] | None = None
    emit_llm_call: Callable[[str, LLMCall], Awaitable[None]] | None = None
    #: facts the current step wants recorded (provider/model that answered, tokens …)
    step_meta: dict[str, Any] | None = None
    tool_cache: dict[str, list[Tool]] = field(default_factory=dict)
    #: every hook tool the chain offers, by the name the model sees (resolved at run start)
    chain_tools: dict[str, Any] | None = None

    @property
    def token_limit(self) -> int:
        return self.chain.token_limit

    @property
    def chain_context(self) -> ChainContext:
        """The seed's view of this run's tools."""
        return ChainContext(
            tools=dict(self.chain_tools or {}), client_tools=list(self.client_tools or [])
        )

    def note(self, **facts: Any) -> None:
        if self.step_meta is None:
            self.step_meta = {}
        self.step_meta.update(facts)


def get_prompt(input: Any, input_type: DataType) -> str:
    """The prompt text of a task input: strings and numbers as text, chats by their last message."""
    if isinstance(input, str):
        return input
    if isinstance(input, ChatHistory):
        last = input.last_message()
        return last.content if last else ""
    if isinstance(input, OpenAIChatRequest):
        return (input.messages[-1].content or "") if input.messages else ""
    if isinstance(input, (int, float, bool)):
        return to_display(input)
    if input is None:
        return ""
    return to_display(input)


def as_history(
    value: Any, input_type: DataType, task_id: str
) -> tuple[ChatHistory, list[Tool], Any, int]:
    """A chat history, the client's tools, its settings and max_tokens (0: none) from the input."""
    if isinstance(value, ChatHistory):
        return value, [], None, 0
    if isinstance(value, OpenAIChatRequest):
        history, max_tokens, tools, config = convert_openai_to_chat_history(value)
        return history, tools, config, max_tokens
    if isinstance(value, str):
        return ChatHistory(messages=[Message(role="user", content=value)]), [], None, 0
    raise TaskExecutionError(
        f"expects chat_history or openai_chat input, got {input_type.type_name}",
        task_id=task_id,
        field="input_var",
    )
