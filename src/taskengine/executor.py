"""Task executors: `TaskExecutorProtocol` runs one task; `SimpleExec` dispatches on its handler.

Each handler is one small coroutine `(ctx, task, input, input_type) -> (output, type, eval)`,
where `eval` is the string the task's transition branches are compared with. The built-in
handlers live in `taskengine.handlers` (one module per family); users add their own with
`taskengine.handlers.register_handler` or `SimpleExec(handlers=...)`, no subclass needed.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from typing import TYPE_CHECKING, Any, Protocol

from taskengine.datatypes import DataType, Tool
from taskengine.errors import (
    ProviderNotConfiguredError,
    TaskEngineError,
    TaskExecutionError,
    UnsupportedTaskTypeError,
)
from taskengine.handlers.builtin import BUILTIN_HANDLERS, FAILED_TRANSITIONS
from taskengine.handlers.context import ChainContext, ExecContext, get_prompt
from taskengine.handlers.registry import Handler, default_registry
from taskengine.handlers.tools import prepare_run, tools_for
from taskengine.providers.base import estimate_tokens
from taskengine.sanitize import sanitize_text

if TYPE_CHECKING:
    from taskengine.chain import LLMExecutionConfig, TaskDefinition

__all__ = [
    "ChainContext",
    "ExecContext",
    "Executor",
    "Handler",
    "SimpleExec",
    "TaskExecutorProtocol",
    "estimate_tokens",
    "get_prompt",
]


class TaskExecutorProtocol(Protocol):
    """Executes one task: returns (output, output type, transition value)."""

    async def task_exec(
        self, ctx: ExecContext, task: TaskDefinition, input: Any, input_type: DataType
    ) -> tuple[Any, DataType, str]: ...


class Executor:
    """The default executor: a dispatch table of one coroutine per handler.

    `SimpleExec` (the Go engine's name) is this class; `task_exec` is `execute`.

    Handlers are looked up in this order: `handlers` given here (or `register`ed on this
    executor), the built-in ones, then `taskengine.handlers.default_registry` (what
    `register_handler` adds; a built-in it replaces counts from the next `SimpleExec`).

    Args:
        resolver: a `ModelResolver` for the LLM handlers (None: they fail with a clear error).
        hooks: a `HookRepo` for `hook` and `execute_tool_calls` tasks.
        handlers: extra handlers by name: a dict or a `taskengine.handlers.HandlerRegistry`
            (copied: handlers it gets later are not seen).
    """

    def __init__(
        self,
        *,
        resolver: Any = None,
        hooks: Any = None,
        handlers: Mapping[str, Handler] | None = None,
    ) -> None:
        self.resolver = resolver
        self.hooks = hooks
        self._table: dict[str, Handler] = {
            name: partial(fn, self) for name, fn in BUILTIN_HANDLERS.items()
        }
        self._table.update(default_registry)
        if handlers:
            self._table.update(handlers)

    @property
    def handler_names(self) -> list[str]:
        """Every handler this executor runs (the process-wide registry's included)."""
        return [*self._table, *(n for n in default_registry if n not in self._table)]

    def register(self, name: str, handler: Handler) -> None:
        """Add or replace one handler of this executor only (unchecked; see `HandlerRegistry`)."""
        self._table[name] = handler

    async def execute(
        self, ctx: ExecContext, task: TaskDefinition, input: Any, input_type: DataType
    ) -> tuple[Any, DataType, str]:
        """Run `task` on `input`: (output, output type, the value its branches compare)."""
        fn = self._table.get(task.handler) or default_registry.get(task.handler)
        if fn is None:
            raise UnsupportedTaskTypeError(
                f"executor does not support handler {task.handler!r}", task_id=task.id
            )
        try:
            return await fn(ctx, task, input, input_type)
        except TaskEngineError as exc:
            failed = FAILED_TRANSITIONS.get(task.handler)
            if failed is not None:
                exc.transition = failed  # recorded in the failed step, as the Go engine records it
            raise

    #: the Go name, and what the engine calls (`TaskExecutorProtocol`)
    task_exec = execute

    async def prepare_run(self, ctx: ExecContext) -> None:
        """Check hook names, warm the model client, resolve every offered tool: once per run, before any step."""
        await prepare_run(self, ctx)

    async def tools_for(
        self, ctx: ExecContext, task: TaskDefinition, client_tools: list[Tool] | None
    ) -> list[Tool]:
        """Tools offered to the model for a task: its hooks' tools (resolved at run start) plus client tools."""
        return await tools_for(ctx, task, client_tools)

    # --- the Go engine's SimpleExec.Prompt / SimpleExec.Embed ----------------------------------

    async def prompt(
        self, system_instruction: str, llm_call: LLMExecutionConfig | None, prompt: str
    ) -> str:
        """Send one prompt to the model `llm_call` resolves to; the trimmed reply (Go: `Prompt`).

        The temperature is `llm_call`'s, applied by the resolver."""
        if not prompt:
            raise TaskExecutionError("unprocessable empty prompt", field="prompt")
        resolver = self._need_resolver_for("prompt")
        result = await resolver.prompt(
            llm_call, sanitize_text(prompt), system_instruction=sanitize_text(system_instruction)
        )
        return (result.message.content or "").strip()

    async def embed(self, llm_call: LLMExecutionConfig | None, prompt: str) -> list[float]:
        """The embedding vector of `prompt` (Go: `Embed`; one model and provider at most)."""
        if not prompt:
            raise TaskExecutionError("unprocessable empty prompt", field="prompt")
        if llm_call is not None:
            if len(llm_call.candidate_models()) > 1:
                raise TaskExecutionError("multiple models specified", field="models")
            providers = [p for p in (llm_call.provider, *(llm_call.providers or ())) if p]
            if len(providers) > 1:
                raise TaskExecutionError("multiple providers specified", field="providers")
        result = await self._need_resolver_for("embed").embed(llm_call, sanitize_text(prompt))
        return list(result.vector)

    def _need_resolver_for(self, what: str) -> Any:
        if self.resolver is None:
            raise ProviderNotConfiguredError(
                f"{what} needs a model, but no model provider is configured", field="execute_config"
            )
        return self.resolver


SimpleExec = Executor
"""The Go engine's name for `Executor`."""
