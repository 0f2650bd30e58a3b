"""Tools: what a run offers models (`prepare_run`, `tools_for`) and the `execute_tool_calls`
handler that runs the tool calls of the last chat message through the hook registry.

A tool call the model got wrong (unknown tool, a hook error) becomes a `tool` message the
model can read on its next turn; malformed JSON arguments fail the step.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import sys
from datetime import datetime
from typing import TYPE_CHECKING, Any

from taskengine.datatypes import ChatHistory, DataType, Message, OpenAIChatRequest, Tool, to_display
from taskengine.errors import HookError, ParseError, ProviderNotConfiguredError, UnknownHookError
from taskengine.handlers.context import ExecContext, as_history

if TYPE_CHECKING:
    from taskengine.chain import TaskChainDefinition, TaskDefinition

__all__ = ["execute_tool_calls_handler", "now", "prepare_run", "tools_for"]


async def prepare_run(exe: Any, ctx: ExecContext) -> None:
    """Check hook names, warm the model client, resolve every offered tool: once per run, before any step."""
    if (
        exe.resolver is not None
        and "openai" not in sys.modules
        and _uses_models(ctx.chain)
        and _may_use_openai_sdk(exe.resolver, ctx.chain)
    ):
        # The SDK import takes ~0.5-1 s; do it off the loop and outside the first step's timeout.
        await asyncio.to_thread(importlib.import_module, "openai")
    await _check_hook_names(exe.hooks, ctx.chain)
    if exe.hooks is not None:
        await _resolve_tools(exe.hooks, ctx)


async def _check_hook_names(hooks: Any, chain: TaskChainDefinition) -> None:
    hook_tasks = [t for t in chain.tasks if t.handler == "hook" and t.hook is not None]
    if not hook_tasks:
        return
    known = set(await hooks.supports()) if hooks is not None else set()
    for t in hook_tasks:
        name = t.hook.name  # type: ignore[union-attr]
        if name not in known:
            from taskengine.hooks.base import did_you_mean

            raise UnknownHookError(
                f"unknown hook {name!r}{did_you_mean(name, known)} "
                "(register it with @hook, --hooks or remote_hooks)",
                hook=name,
                task_id=t.id,
                field="hook.name",
            )


async def _resolve_tools(hooks: Any, ctx: ExecContext) -> None:
    configs = [
        (t.id, t.execute_config)
        for t in ctx.chain.tasks
        if t.execute_config and t.execute_config.hooks
    ]
    if not configs:
        return
    from taskengine.hooks.base import resolve_task_tools

    chain_tools: dict[str, Any] = {}
    for task_id, config in configs:
        try:
            resolved = await resolve_task_tools(hooks, config, None)
        except HookError as exc:
            raise exc.with_context(task_id=task_id, field="execute_config.hooks") from None
        ctx.tool_cache[task_id] = [entry.tool for entry in resolved.values()]
        chain_tools.update(resolved)
    ctx.chain_tools = chain_tools


async def tools_for(
    ctx: ExecContext, task: TaskDefinition, client_tools: list[Tool] | None
) -> list[Tool]:
    """Tools offered to the model for a task: its hooks' tools (resolved at run start) plus client tools."""
    config = task.execute_config
    if config is None:
        return []
    tools = list(ctx.tool_cache.get(task.id, ()))
    if config.pass_clients_tools and client_tools:
        taken = {t.function.name for t in tools}
        for tool in client_tools:
            if tool.function.name in taken:
                raise HookError(
                    f"client tool {tool.function.name!r} collides with a hook tool of the same name",
                    task_id=task.id,
                    field="execute_config.pass_clients_tools",
                )
            tools.append(tool)
    return tools


async def execute_tool_calls_handler(
    exe: Any, ctx: ExecContext, task: TaskDefinition, input: Any, input_type: DataType
):
    if not isinstance(input, (ChatHistory, OpenAIChatRequest)):
        return input, input_type, "no_op"  # Go: input that is not a chat passes through
    history, _tools, _cfg, _max = as_history(input, input_type, task.id)
    last = history.messages[-1] if history.messages else None
    if last is None or not last.call_tools:
        return history, DataType.CHAT_HISTORY, "no_calls_found"
    messages = list(history.messages)
    for call in last.call_tools:
        args = _arguments(call.function.name, call.function.arguments, task.id)
        content = await _run_tool(exe.hooks, ctx, task, call.function.name, args, call.id)
        messages.append(
            Message(role="tool", content=content, tool_call_id=call.id, timestamp=now())
        )
    out = history.model_copy(update={"messages": messages})
    return out, DataType.CHAT_HISTORY, "tools_executed"


def _arguments(name: str, text: str, task_id: str) -> dict[str, Any]:
    """A tool call's JSON arguments as a dict (empty text: no arguments)."""
    try:
        args = json.loads(text) if text.strip() else {}
    except json.JSONDecodeError as exc:
        raise ParseError(
            f"tool call {name!r} has malformed JSON arguments: {text[:200]!r} ({exc.msg})",
            task_id=task_id,
        ) from exc
    if not isinstance(args, dict):
        raise ParseError(f"tool call {name!r} arguments must be a JSON object", task_id=task_id)
    return args


async def _run_tool(
    hooks: Any,
    ctx: ExecContext,
    task: TaskDefinition,
    name: str,
    args: dict[str, Any],
    call_id: str,
) -> str:
    """Run one tool call; problems the model can fix come back as text for its next turn."""
    offered = ctx.chain_tools or {}
    entry = offered.get(name)
    if entry is None:
        names = ", ".join(sorted(offered)) or "none"
        return f"error: unknown tool {name!r}; available tools: {names}"
    if entry.is_client_tool or hooks is None:
        return f"error: tool {name!r} is provided by the client and cannot run inside the chain"
    from taskengine.chain import HookCall
    from taskengine.hooks.base import HookContext

    hctx = HookContext(
        run_id=ctx.run.run_id,
        chain_id=ctx.run.chain_id,
        task_id=task.id,
        attempt=ctx.attempt,
        timeout=ctx.timeout,
        tool_call_id=call_id or "",
        step=ctx.seq,
    )
    try:
        output, _type = await hooks.exec(
            HookCall(name=entry.hook_name, tool_name=entry.tool_name),
            input=None,
            input_type=DataType.NIL,
            context=hctx,
            args=args,
        )
    except HookError as exc:
        # The model can recover from a bad call; tell it what went wrong.
        return f"error: {exc.message}"
    return to_display(output)


def _uses_models(chain: TaskChainDefinition) -> bool:
    from taskengine.chain.lint import LLM_HANDLERS

    return any(t.handler in LLM_HANDLERS for t in chain.tasks)


def _may_use_openai_sdk(resolver: Any, chain: TaskChainDefinition) -> bool:
    """False only when every model task resolves to Ollama providers (their native client needs
    no SDK, so a CLI run against Ollama skips its ~1 s import); True whenever unsure."""
    from taskengine.chain.lint import LLM_HANDLERS

    registry = getattr(resolver, "registry", None)
    if registry is None:
        return True
    try:
        for task in chain.tasks:
            if task.handler not in LLM_HANDLERS:
                continue
            config = task.execute_config
            names = config.candidate_providers() if config is not None else []
            providers = [registry.find(n) for n in names] or [registry.default_provider()]
            if any(p is None or p.type != "ollama" for p in providers):
                return True
    except ProviderNotConfiguredError:
        return True
    return False


def now() -> datetime:
    """The local time, timezone-aware (a message's timestamp)."""
    return datetime.now().astimezone()
