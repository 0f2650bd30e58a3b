"""Data handlers: pass the input on (`noop`), fail on purpose (`raise_error`), turn a chat into
an OpenAI response (`convert_to_openai_chat_response`) and embed text (`embedding`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from taskengine.datatypes import DataType, convert_chat_history_to_openai
from taskengine.errors import RaisedError
from taskengine.handlers.context import ExecContext, as_history, get_prompt
from taskengine.ids import new_id
from taskengine.model_calls import metered, need_resolver, report_call, tokens_to_send
from taskengine.sanitize import sanitize_text

if TYPE_CHECKING:
    from taskengine.chain import TaskDefinition

__all__ = [
    "embedding_handler",
    "noop_handler",
    "raise_error_handler",
    "to_openai_response_handler",
]


async def noop_handler(
    exe: Any, ctx: ExecContext, task: TaskDefinition, input: Any, input_type: DataType
):
    return input, input_type, "noop"


async def raise_error_handler(
    exe: Any, ctx: ExecContext, task: TaskDefinition, input: Any, input_type: DataType
):
    message = get_prompt(input, input_type) or f"task {task.id!r} raised an error"
    raise RaisedError(message, task_id=task.id)


async def to_openai_response_handler(
    exe: Any, ctx: ExecContext, task: TaskDefinition, input: Any, input_type: DataType
):
    history, _tools, _cfg, _max = as_history(input, input_type, task.id)
    response = convert_chat_history_to_openai(f"chatcmpl-{ctx.run.run_id or new_id()}", history)
    return response, DataType.OPENAI_CHAT_RESPONSE, "converted"


async def embedding_handler(
    exe: Any, ctx: ExecContext, task: TaskDefinition, input: Any, input_type: DataType
):
    resolver = need_resolver(exe.resolver, task)
    text = sanitize_text(get_prompt(input, input_type))
    count = tokens_to_send(ctx, task, text)
    result = await metered(
        ctx,
        task,
        resolver,
        resolver.embed,
        (task.execute_config, text),
        {"timeout": ctx.timeout},
        input_tokens=count,
    )
    await report_call(ctx, task, result)
    return list(result.vector), DataType.VECTOR, "ok"
