"""Compose strategies: merge a task's output with another variable after the task succeeds.

As in the Go engine, the merged value becomes the task's output (and `<id>_composed`):

- `override`: both sides are JSON objects; merged with the `with_var` keys winning (anything
  else is an error).
- `merge_chat_histories`: both sides are chat histories; the `with_var` messages come first,
  then the output's; token counts are summed; the model is kept only when both agree.
- `append_string_to_chat_history`: one side is a string, the other a chat history (either
  way round); the string becomes a `system` message before the history's messages.

Without a strategy: `merge_chat_histories` when both sides are chat histories, else `override`.
The composed type is the output's type when both sides share it, else `any`.
"""

from __future__ import annotations

from datetime import datetime
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
    """Apply `strategy` to (task output, with_var value); returns the composed value and type."""
    if not strategy:
        both_chats = isinstance(value, ChatHistory) and isinstance(other, ChatHistory)
        strategy = "merge_chat_histories" if both_chats else "override"
    merge = _STRATEGIES.get(strategy)
    if merge is None:
        raise TaskExecutionError(
            f"unknown compose strategy {strategy!r}; supported: {', '.join(_STRATEGIES)}",
            task_id=task_id,
            field="compose.strategy",
        )
    merged = merge(value, vtype, other, otype, task_id)
    return merged, vtype if vtype == otype else DataType.ANY


def _override(value: Any, vtype: DataType, other: Any, otype: DataType, task_id: str | None):
    if not (isinstance(value, dict) and isinstance(other, dict)):
        raise TaskExecutionError(
            f"compose strategy 'override' needs two JSON objects, got {vtype.type_name} "
            f"output and {otype.type_name} with_var",
            task_id=task_id,
            field="compose.strategy",
        )
    return {**value, **other}


def _merge_chats(value: Any, vtype: DataType, other: Any, otype: DataType, task_id: str | None):
    if not (isinstance(value, ChatHistory) and isinstance(other, ChatHistory)):
        raise TaskExecutionError(
            f"compose strategy 'merge_chat_histories' needs two chat histories, got "
            f"{vtype.type_name} output and {otype.type_name} with_var",
            task_id=task_id,
            field="compose.strategy",
        )
    return ChatHistory(
        messages=[*other.messages, *value.messages],
        model=value.model if value.model == other.model else "",
        input_tokens=value.input_tokens + other.input_tokens,
        output_tokens=value.output_tokens + other.output_tokens,
    )


def _append_string(value: Any, vtype: DataType, other: Any, otype: DataType, task_id: str | None):
    if isinstance(value, str) and isinstance(other, ChatHistory):
        text, history = value, other
    elif isinstance(other, str) and isinstance(value, ChatHistory):
        text, history = other, value
    else:
        raise TaskExecutionError(
            "compose strategy 'append_string_to_chat_history' needs a string and a chat "
            f"history, got {vtype.type_name} output and {otype.type_name} with_var",
            task_id=task_id,
            field="compose.strategy",
        )
    system = Message(role="system", content=text, timestamp=datetime.now().astimezone())
    # Go resets the token counts: they describe the history before the new message
    return ChatHistory(messages=[system, *history.messages], model=history.model)


_STRATEGIES = {
    "override": _override,
    "merge_chat_histories": _merge_chats,
    "append_string_to_chat_history": _append_string,
}
