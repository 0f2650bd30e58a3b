"""The chat handler `model_execution`: send a chat history (with tools) and append the reply.

The input is a chat history, an OpenAI chat request (its tools, model and temperature are
used) or a string (one user message); the output is the history plus the model's reply, and
the transition value is "tool-call" when the reply asks for tools, else "executed".
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from taskengine.datatypes import ChatHistory, DataType, Message
from taskengine.handlers.context import ExecContext, as_history
from taskengine.handlers.tools import now, tools_for
from taskengine.model_calls import (
    check_tokens,
    delta_sink,
    estimate_tokens,
    max_tokens_for,
    metered,
    need_resolver,
    note_finish,
    report_call,
    system_instruction,
)
from taskengine.sanitize import sanitize_text

if TYPE_CHECKING:
    from taskengine.chain import LLMExecutionConfig, TaskDefinition

__all__ = ["merge_config", "model_execution_handler"]


async def model_execution_handler(
    exe: Any, ctx: ExecContext, task: TaskDefinition, input: Any, input_type: DataType
):
    resolver = need_resolver(exe.resolver, task)
    history, client_tools, request_config, max_tokens = as_history(input, input_type, task.id)
    config = merge_config(task.execute_config, request_config)
    tools = await tools_for(ctx, task, client_tools or ctx.client_tools)
    messages = _with_system(ctx, task, [_clean(m) for m in history.messages])
    count = sum(estimate_tokens(m.content) for m in messages)
    check_tokens(ctx, task, count)
    limit = max_tokens_for(task, max_tokens)
    result = await metered(
        ctx,
        task,
        resolver,
        resolver.chat,
        (config, messages),
        {"tools": tools or None, "timeout": ctx.timeout, "max_tokens": limit},
        sink=delta_sink(ctx, task.id),
        input_tokens=count,
    )
    note_finish(ctx, result, limit)
    await report_call(ctx, task, result)
    reply = result.message
    if reply.timestamp is None:
        reply = reply.model_copy(update={"timestamp": now()})
    input_tokens = result.input_tokens if result.input_tokens else count
    check_tokens(ctx, task, input_tokens)
    out = ChatHistory(
        messages=[*messages, reply],
        model=result.model,
        input_tokens=history.input_tokens + input_tokens,
        output_tokens=history.output_tokens
        + (result.output_tokens or estimate_tokens(reply.content)),
    )
    return out, DataType.CHAT_HISTORY, ("tool-call" if reply.call_tools else "executed")


def _with_system(ctx: ExecContext, task: TaskDefinition, messages: list[Message]) -> list[Message]:
    """`messages` with the task's system instruction first, unless it is already there."""
    system = sanitize_text(system_instruction(ctx, task))
    if system and not any(m.role == "system" and m.content == system for m in messages):
        messages.insert(0, Message(role="system", content=system))
    return messages


def _clean(message: Message) -> Message:
    """The message with control characters stripped from its text (a copy only when needed)."""
    cleaned = sanitize_text(message.content)
    return (
        message if cleaned == message.content else message.model_copy(update={"content": cleaned})
    )


def merge_config(task_config: LLMExecutionConfig | None, request_config: LLMExecutionConfig | None):
    """The task's execute_config wins; an OpenAI request fills in model and temperature it leaves open."""
    if request_config is None:
        return task_config
    if task_config is None:
        return request_config
    update: dict[str, Any] = {}
    if not task_config.candidate_models() and request_config.model:
        update["model"] = request_config.model
    if task_config.temperature is None and request_config.temperature is not None:
        update["temperature"] = request_config.temperature
    return task_config.model_copy(update=update) if update else task_config
