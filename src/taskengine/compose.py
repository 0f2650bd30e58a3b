"""Compose strategies: merge a task's input with another variable before the task runs.

- `override`: the `with_var` value replaces the input; two JSON objects are merged with the
  `with_var` keys winning.
- `merge_chat_histories`: both are chat histories; the `with_var` messages are appended to the
  input's messages (token counts add up).
- `append_string_to_chat_history`: one side is a string, the other a chat history; the string is
  appended to the history as a user message.

Without a strategy: `merge_chat_histories` when both sides are chat histories, else `override`.
"""

from __future__ import annotations

from typing import Any

from taskengine.datatypes import ChatHistory, DataType, Message
from taskengine.errors import TaskExecutionError

__all__ = ["compose_values"]


def compose_values(
    value: Any,
    vtype: DataType,
    other: Any,
    otype: DataType,
    strategy: str,
    *,
    task_id: str | None = None,
) -> tuple[Any, DataType]:
    """Apply `strategy` to (input, with_var value); returns the composed value and its type."""
    if not strategy:
        strategy = (
            "merge_chat_histories"
            if isinstance(value, ChatHistory) and isinstance(other, ChatHistory)
            else "override"
        )
    if strategy == "override":
        if isinstance(value, dict) and isinstance(other, dict):
            return {**value, **other}, DataType.JSON
        return other, otype
    if strategy == "merge_chat_histories":
        if not (isinstance(value, ChatHistory) and isinstance(other, ChatHistory)):
            raise TaskExecutionError(
                f"merge_chat_histories needs two chat histories, got {vtype.type_name} and {otype.type_name}",
                task_id=task_id,
                field="compose.strategy",
            )
        merged = ChatHistory(
            messages=[*value.messages, *other.messages],
            model=value.model or other.model,
            input_tokens=value.input_tokens + other.input_tokens,
            output_tokens=value.output_tokens + other.output_tokens,
        )
        return merged, DataType.CHAT_HISTORY
    if strategy == "append_string_to_chat_history":
        if isinstance(value, ChatHistory) and isinstance(other, str):
            history, text = value, other
        elif isinstance(value, str) and isinstance(other, ChatHistory):
            history, text = other, value
        else:
            raise TaskExecutionError(
                "append_string_to_chat_history needs a string and a chat history, "
                f"got {vtype.type_name} and {otype.type_name}",
                task_id=task_id,
                field="compose.strategy",
            )
        return history.model_copy(
            update={"messages": [*history.messages, Message(role="user", content=text)]}
        ), DataType.CHAT_HISTORY
    raise TaskExecutionError(
        f"unknown compose strategy {strategy!r}", task_id=task_id, field="compose.strategy"
    )
