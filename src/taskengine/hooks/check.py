"""Check a chain's hook names and tools against a hook registry without running it.

`taskengine validate --hooks …` uses this so an unknown hook or tool is found before a run,
with every problem reported at once (a run stops at the first one).
"""

from __future__ import annotations

from typing import Any

from taskengine.chain import TaskChainDefinition, TaskDefinition
from taskengine.errors import HookError, LintProblem
from taskengine.hooks.base import did_you_mean, resolve_task_tools

__all__ = ["check_chain_hooks"]


async def check_chain_hooks(chain: TaskChainDefinition, hooks: Any) -> list[LintProblem]:
    """Every `hook` task naming an unknown hook or tool, and every unknown `execute_config.hooks`."""
    known = set(await hooks.supports())
    problems: list[LintProblem] = []

    def add(message: str, task: TaskDefinition, path: str) -> None:
        problems.append(LintProblem(message, chain_id=chain.id, task_id=task.id, path=path))

    for task in chain.tasks:
        if task.handler == "hook" and task.hook is not None:
            name = task.hook.name
            if name not in known:
                add(f"unknown hook {name!r}{did_you_mean(name, known)}", task, "hook.name")
            elif task.hook.tool_name:
                missing = await _missing_tool(hooks, name, task.hook.tool_name)
                if missing:
                    add(missing, task, "hook.tool_name")
        config = task.execute_config
        if config is None or not config.hooks:
            continue
        unknown = [(i, h) for i, h in enumerate(config.hooks) if h not in known]
        for i, name in unknown:
            add(
                f"unknown hook {name!r}{did_you_mean(name, known)}",
                task,
                f"execute_config.hooks[{i}]",
            )
        if not unknown:
            try:
                await resolve_task_tools(hooks, config, None)
            except HookError as exc:
                add(exc.message, task, "execute_config.hooks")
    return problems


async def _missing_tool(hooks: Any, hook_name: str, tool_name: str) -> str | None:
    """Why `hook_name` cannot run `tool_name`, or None when it can (or lists no tools)."""
    tools = await hooks.get_tools_for_hook_by_name(hook_name)
    prefix = f"{hook_name}."
    names = {t.function.name.removeprefix(prefix) for t in tools}
    if not names or tool_name in names or tool_name.removeprefix(prefix) in names:
        return None
    return f"hook {hook_name!r} has no tool {tool_name!r}{did_you_mean(tool_name, names)}"
