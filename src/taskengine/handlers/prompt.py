"""Prompt and parse handlers: ask the model one prompt and read a key, number, score or range
from the reply (`condition_key`, `parse_number`, `parse_score`, `parse_range`, `raw_string`),
or parse the input itself (`parse_transition`, `parse_key_value`).

Each takes the executor first (for its `resolver`), then the handler arguments.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from taskengine.datatypes import DataType
from taskengine.errors import ParseError
from taskengine.handlers.context import ExecContext, get_prompt
from taskengine.model_calls import (
    delta_sink,
    max_tokens_for,
    metered,
    need_resolver,
    note_finish,
    report_call,
    system_instruction,
    tokens_to_send,
    truncation_hint,
)
from taskengine.parsing import (
    parse_condition,
    parse_key_value,
    parse_number,
    parse_range,
    parse_score,
    parse_transition,
)
from taskengine.sanitize import sanitize_text

if TYPE_CHECKING:
    from taskengine.chain import TaskDefinition

__all__ = [
    "ask",
    "condition_key_handler",
    "parse_key_value_handler",
    "parse_number_handler",
    "parse_range_handler",
    "parse_score_handler",
    "parse_transition_handler",
    "parsed",
    "raw_string_handler",
]


async def ask(
    exe: Any, ctx: ExecContext, task: TaskDefinition, input: Any, input_type: DataType
) -> str:
    """Send the input as a prompt (with the task's system instruction); the trimmed reply."""
    resolver = need_resolver(exe.resolver, task)
    prompt = sanitize_text(get_prompt(input, input_type))
    system = sanitize_text(system_instruction(ctx, task))
    sent = tokens_to_send(ctx, task, prompt, system)
    max_tokens = max_tokens_for(task)
    result = await metered(
        ctx,
        task,
        resolver,
        resolver.prompt,
        (task.execute_config, prompt),
        {"system_instruction": system, "timeout": ctx.timeout, "max_tokens": max_tokens},
        sink=delta_sink(ctx, task.id),
        input_tokens=sent,
    )
    note_finish(ctx, result, max_tokens)
    await report_call(ctx, task, result)
    return (result.message.content or "").strip()


def parsed(ctx: ExecContext, reply: str, task: TaskDefinition, fn: Callable[[str], Any]) -> Any:
    """`fn(reply)`; a `ParseError` names the model that answered and a cut-off reply."""
    try:
        return fn(reply)
    except ParseError as exc:
        meta = ctx.step_meta or {}
        if meta.get("model"):
            exc.message += f" (from provider {meta.get('provider')!r}, model {meta.get('model')!r})"
        exc.message += truncation_hint(ctx)
        raise exc.with_context(task_id=task.id) from None


async def condition_key_handler(
    exe: Any, ctx: ExecContext, task: TaskDefinition, input: Any, input_type: DataType
):
    reply = await ask(exe, ctx, task, input, input_type)
    _key, value = parsed(
        ctx, reply, task, lambda r: parse_condition(r, task.valid_conditions or {})
    )
    # Go: the transition is the condition's boolean ("true"/"false"), not the matched key
    return value, DataType.BOOL, "true" if value else "false"


async def parse_number_handler(
    exe: Any, ctx: ExecContext, task: TaskDefinition, input: Any, input_type: DataType
):
    number = parsed(ctx, await ask(exe, ctx, task, input, input_type), task, parse_number)
    return number, DataType.INT, str(number)


async def parse_score_handler(
    exe: Any, ctx: ExecContext, task: TaskDefinition, input: Any, input_type: DataType
):
    score = parsed(ctx, await ask(exe, ctx, task, input, input_type), task, parse_score)
    return score, DataType.FLOAT, f"{score:.2f}"


async def parse_range_handler(
    exe: Any, ctx: ExecContext, task: TaskDefinition, input: Any, input_type: DataType
):
    value = parsed(ctx, await ask(exe, ctx, task, input, input_type), task, parse_range)
    return value, DataType.STRING, value


async def raw_string_handler(
    exe: Any, ctx: ExecContext, task: TaskDefinition, input: Any, input_type: DataType
):
    reply = await ask(exe, ctx, task, input, input_type)
    return reply, DataType.STRING, reply


async def parse_transition_handler(
    exe: Any, ctx: ExecContext, task: TaskDefinition, input: Any, input_type: DataType
):
    # Go: the command is the transition value; the output is the input, unchanged.
    command = parsed(ctx, get_prompt(input, input_type), task, parse_transition)
    return input, input_type, command


async def parse_key_value_handler(
    exe: Any, ctx: ExecContext, task: TaskDefinition, input: Any, input_type: DataType
):
    if input_type == DataType.JSON or isinstance(input, dict):
        return input, DataType.JSON, "already_json"
    pairs = parsed(ctx, get_prompt(input, input_type), task, parse_key_value)
    return pairs, DataType.JSON, "parsed"
