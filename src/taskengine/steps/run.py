"""Running one step of a step-style `TaskExecutor`: its `handle_<id>` method, or the model with
the step's instruction, and checking the result against `response_model` / `output_schema`.

A rejected reply is remembered per (run, step) so the retry tells the model what was wrong.
"""

from __future__ import annotations

import inspect
import json
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from taskengine.errors import StepValidationError, TaskExecutionError
from taskengine.step_defs import TaskStep, parse_reply, validate_result

if TYPE_CHECKING:
    from taskengine.steps.task_executor import TaskExecutor

__all__ = ["handler_method", "run_step", "validated"]


async def run_step(
    executor: TaskExecutor, step: TaskStep, step_input: dict[str, Any], run_id: str
) -> dict[str, Any]:
    """The step's result as a dict (a handler-less step's reply under its id)."""
    method = handler_method(executor, step.id)
    if method is None:
        reply = await _default_step(executor, step, step_input, run_id)
        return {step.id: reply}
    result = method(step_input)
    if inspect.isawaitable(result):
        result = await result
    if result is None:
        result = {}
    if not isinstance(result, Mapping):
        raise TaskExecutionError(
            f"{method.__name__} must return a dict, got {type(result).__name__}",
            task_id=step.id,
            run_id=run_id,
        )
    return dict(validated(executor, step, dict(result), run_id))


async def _default_step(
    executor: TaskExecutor, step: TaskStep, step_input: dict[str, Any], run_id: str
) -> Any:
    """A step without `handle_<id>`: ask the model with the step's instruction and input."""
    context = {k: v for k, v in step_input.items() if k != "instruction"}
    instruction = step.instruction
    wants_json = step.response_model is not None or step.output_schema is not None
    if wants_json:
        instruction += "\n\nReply with JSON only."
        if step.output_schema is not None:
            instruction += " It must match this JSON Schema:\n" + json.dumps(step.output_schema)
        elif step.response_model is not None:
            instruction += " It must match this JSON Schema:\n" + json.dumps(
                step.response_model.model_json_schema()
            )
    previous = executor._last_invalid.get((run_id, step.id))
    if previous:
        instruction += f"\n\nYour previous reply was rejected: {previous}"
    reply = await executor.llm_call(instruction=instruction, context=executor.preprocess(context))
    value = executor.postprocess(reply)
    return validated(executor, step, value, run_id) if wants_json else value


def validated(executor: TaskExecutor, step: TaskStep, value: Any, run_id: str) -> Any:
    """`value` parsed (a JSON reply) and checked; a rejection is remembered for the retry."""
    try:
        if isinstance(value, str) and (
            step.response_model is not None or step.output_schema is not None
        ):
            value = parse_reply(value, step)
        return validate_result(step, value)
    except StepValidationError as exc:
        executor._last_invalid[(run_id, step.id)] = exc.message
        raise exc.with_context(run_id=run_id) from exc.__cause__


def handler_method(executor: Any, step_id: str) -> Any:
    """The executor's `handle_<step_id>` method (non-word characters as `_`), else None."""
    for name in (f"handle_{step_id}", "handle_" + re.sub(r"\W", "_", step_id)):
        method = getattr(executor, name, None)
        if callable(method):
            return method
    return None
