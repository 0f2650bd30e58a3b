"""The `hook` handler: call the task's hook (its args rendered with the run's variables) and
optionally render `output_template` over the result."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from taskengine.datatypes import DataType
from taskengine.errors import HookError
from taskengine.handlers.context import ExecContext
from taskengine.templates import render

if TYPE_CHECKING:
    from taskengine.chain import TaskDefinition

__all__ = ["hook_handler"]


async def hook_handler(
    exe: Any, ctx: ExecContext, task: TaskDefinition, input: Any, input_type: DataType
):
    if exe.hooks is None:
        raise HookError("no hook registry configured", task_id=task.id, field="hook")
    from taskengine.hooks.base import HookContext

    assert task.hook is not None  # guaranteed by lint
    call = task.hook
    if call.args:
        rendered = {
            k: render(v, ctx.variables, task_id=task.id, field=f"hook.args.{k}")
            for k, v in call.args.items()
        }
        call = call.model_copy(update={"args": rendered})
    hctx = HookContext(
        run_id=ctx.run.run_id,
        chain_id=ctx.run.chain_id,
        task_id=task.id,
        attempt=ctx.attempt,
        timeout=ctx.timeout,
        step=ctx.seq,
    )
    output, output_type = await exe.hooks.exec(
        call, input=input, input_type=input_type, context=hctx
    )
    if not task.output_template:
        return output, output_type, "ok"
    data = dict(ctx.variables)
    if isinstance(output, dict):
        data.update(output)
    data["output"] = output
    output = render(task.output_template, data, task_id=task.id, field="output_template")
    return output, DataType.STRING, output
