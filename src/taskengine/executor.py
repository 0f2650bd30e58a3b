"""Task executors: `TaskExecutor` runs one task; `SimpleExec` dispatches on the task's handler.

Each handler is one small coroutine `(ctx, task, input, input_type) -> (output, type, eval)`,
where `eval` is the string the task's transition branches are compared with.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import sys
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from taskengine.datatypes import (
    ChatHistory,
    DataType,
    Message,
    OpenAIChatRequest,
    Tool,
    convert_chat_history_to_openai,
    convert_openai_to_chat_history,
    to_display,
)
from taskengine.engine.events import LLMCall, RunInfo
from taskengine.errors import (
    HookError,
    ParseError,
    ProviderNotConfiguredError,
    RaisedError,
    TaskEngineError,
    TaskExecutionError,
    TokenLimitError,
    UnknownHookError,
    UnsupportedTaskTypeError,
)
from taskengine.model_calls import max_tokens_for, metered, note_finish, truncation_hint
from taskengine.parsing import (
    parse_condition,
    parse_key_value,
    parse_number,
    parse_range,
    parse_score,
    parse_transition,
)
from taskengine.sanitize import sanitize_text
from taskengine.templates import render

if TYPE_CHECKING:
    from taskengine.chain import LLMExecutionConfig, TaskChainDefinition, TaskDefinition

__all__ = [
    "ChainContext",
    "ExecContext",
    "Handler",
    "SimpleExec",
    "TaskExecutorProtocol",
    "estimate_tokens",
    "get_prompt",
]


@dataclass(slots=True)
class ChainContext:
    """What a run offers models (Go: `ChainContext`): hook tools by name and the client's tools."""

    tools: dict[str, Any] = field(default_factory=dict)
    client_tools: list[Tool] = field(default_factory=list)


@dataclass(slots=True)
class ExecContext:
    """What a handler may know about the run it is part of (one object per run, reused)."""

    run: RunInfo
    chain: TaskChainDefinition
    variables: dict[str, Any]
    types: dict[str, DataType]
    attempt: int = 1
    #: the step's number in the run (stable across retries and resume of the same step)
    seq: int = 0
    timeout: float | None = None
    client_tools: list[Tool] | None = None
    #: the OpenAI request a run was started with (for pass_clients_tools), if any
    emit_delta: Callable[[str, str], Awaitable[None]] | None = None
    emit_llm_call: Callable[[str, LLMCall], Awaitable[None]] | None = None
    #: facts the current step wants recorded (provider/model that answered, tokens …)
    step_meta: dict[str, Any] | None = None
    tool_cache: dict[str, list[Tool]] = field(default_factory=dict)
    #: every hook tool the chain offers, by the name the model sees (resolved at run start)
    chain_tools: dict[str, Any] | None = None

    @property
    def token_limit(self) -> int:
        return self.chain.token_limit

    @property
    def chain_context(self) -> ChainContext:
        """The seed's view of this run's tools."""
        return ChainContext(
            tools=dict(self.chain_tools or {}), client_tools=list(self.client_tools or [])
        )

    def note(self, **facts: Any) -> None:
        if self.step_meta is None:
            self.step_meta = {}
        self.step_meta.update(facts)


class TaskExecutorProtocol(Protocol):
    """Executes one task: returns (output, output type, transition value)."""

    async def task_exec(
        self, ctx: ExecContext, task: TaskDefinition, input: Any, input_type: DataType
    ) -> tuple[Any, DataType, str]: ...


Handler = Callable[
    [ExecContext, "TaskDefinition", Any, DataType], Awaitable[tuple[Any, DataType, str]]
]


def estimate_tokens(text: str) -> int:
    """A provider-free token estimate (about four characters a token)."""
    return max(1, (len(text) + 3) // 4) if text else 0


def get_prompt(input: Any, input_type: DataType) -> str:
    """The prompt text of a task input: strings and numbers as text, chats by their last message."""
    if isinstance(input, str):
        return input
    if isinstance(input, ChatHistory):
        last = input.last_message()
        return last.content if last else ""
    if isinstance(input, OpenAIChatRequest):
        return (input.messages[-1].content or "") if input.messages else ""
    if isinstance(input, (int, float, bool)):
        return to_display(input)
    if input is None:
        return ""
    return to_display(input)


def _as_history(
    value: Any, input_type: DataType, task_id: str
) -> tuple[ChatHistory, list[Tool], Any, int]:
    """A chat history, the client's tools, its settings and max_tokens (0: none) from the input."""
    if isinstance(value, ChatHistory):
        return value, [], None, 0
    if isinstance(value, OpenAIChatRequest):
        history, max_tokens, tools, config = convert_openai_to_chat_history(value)
        return history, tools, config, max_tokens
    if isinstance(value, str):
        return ChatHistory(messages=[Message(role="user", content=value)]), [], None, 0
    raise TaskExecutionError(
        f"expects chat_history or openai_chat input, got {input_type.type_name}",
        task_id=task_id,
        field="input_var",
    )


class SimpleExec:
    """The default executor: a dispatch table of one coroutine per handler.

    Args:
        resolver: a `ModelResolver` for the LLM handlers (None: they fail with a clear error).
        hooks: a `HookRepo` for `hook` and `execute_tool_calls` tasks.
        handlers: extra handlers by name (step-style `handle_<id>` methods end up here).
    """

    def __init__(
        self, *, resolver: Any = None, hooks: Any = None, handlers: dict[str, Handler] | None = None
    ) -> None:
        self.resolver = resolver
        self.hooks = hooks
        self._table: dict[str, Handler] = {
            "noop": self._noop,
            "raise_error": self._raise_error,
            "parse_transition": self._parse_transition,
            "parse_key_value": self._parse_key_value,
            "convert_to_openai_chat_response": self._to_openai_response,
            "hook": self._hook,
            "condition_key": self._condition_key,
            "parse_number": self._parse_number,
            "parse_score": self._parse_score,
            "parse_range": self._parse_range,
            "raw_string": self._raw_string,
            "embedding": self._embedding,
            "model_execution": self._model_execution,
            "execute_tool_calls": self._execute_tool_calls,
        }
        if handlers:
            self._table.update(handlers)

    @property
    def handler_names(self) -> list[str]:
        return list(self._table)

    def register(self, name: str, handler: Handler) -> None:
        self._table[name] = handler

    # --- the Go engine's SimpleExec.Prompt / SimpleExec.Embed ----------------------------------

    async def prompt(
        self, system_instruction: str, llm_call: LLMExecutionConfig | None, prompt: str
    ) -> str:
        """Send one prompt to the model `llm_call` resolves to; the trimmed reply (Go: `Prompt`)."""
        if not prompt:
            raise TaskExecutionError("unprocessable empty prompt", field="prompt")
        resolver = self._need_resolver_for("prompt")
        result = await resolver.prompt(
            llm_call,
            sanitize_text(prompt),
            system_instruction=sanitize_text(system_instruction),
            temperature=llm_call.temperature if llm_call and llm_call.temperature else None,
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

    async def task_exec(
        self, ctx: ExecContext, task: TaskDefinition, input: Any, input_type: DataType
    ) -> tuple[Any, DataType, str]:
        fn = self._table.get(task.handler)
        if fn is None:
            raise UnsupportedTaskTypeError(
                f"executor does not support handler {task.handler!r}", task_id=task.id
            )
        try:
            return await fn(ctx, task, input, input_type)
        except TaskEngineError as exc:
            failed = _FAILED_TRANSITIONS.get(task.handler)
            if failed is not None:
                exc.transition = failed  # recorded in the failed step, as the Go engine records it
            raise

    # --- handlers without a model ------------------------------------------------------------

    async def _noop(self, ctx: ExecContext, task: TaskDefinition, input: Any, input_type: DataType):
        return input, input_type, "noop"

    async def _raise_error(
        self, ctx: ExecContext, task: TaskDefinition, input: Any, input_type: DataType
    ):
        message = get_prompt(input, input_type) or f"task {task.id!r} raised an error"
        raise RaisedError(message, task_id=task.id)

    async def _parse_transition(
        self, ctx: ExecContext, task: TaskDefinition, input: Any, input_type: DataType
    ):
        # Go: the command is the transition value; the output is the input, unchanged.
        command = self._parse(ctx, get_prompt(input, input_type), task, parse_transition)
        return input, input_type, command

    async def _parse_key_value(
        self, ctx: ExecContext, task: TaskDefinition, input: Any, input_type: DataType
    ):
        if input_type == DataType.JSON or isinstance(input, dict):
            return input, DataType.JSON, "already_json"
        pairs = self._parse(ctx, get_prompt(input, input_type), task, parse_key_value)
        return pairs, DataType.JSON, "parsed"

    async def _to_openai_response(
        self, ctx: ExecContext, task: TaskDefinition, input: Any, input_type: DataType
    ):
        history, _tools, _cfg, _max = _as_history(input, input_type, task.id)
        response = convert_chat_history_to_openai(
            f"chatcmpl-{ctx.run.run_id or uuid.uuid4().hex}", history
        )
        return response, DataType.OPENAI_CHAT_RESPONSE, "converted"

    async def _hook(self, ctx: ExecContext, task: TaskDefinition, input: Any, input_type: DataType):
        if self.hooks is None:
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
        output, output_type = await self.hooks.exec(
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

    # --- handlers that ask a model ---------------------------------------------------------

    def _need_resolver(self, task: TaskDefinition) -> Any:
        if self.resolver is None:
            raise ProviderNotConfiguredError(
                f"handler {task.handler!r} needs a model, but no model provider is configured "
                "(set OLLAMA_HOST, OPENAI_API_KEY/OPENAI_BASE_URL or GEMINI_API_KEY, or add providers "
                "to taskengine.yaml)",
                task_id=task.id,
            )
        return self.resolver

    def _system_instruction(self, ctx: ExecContext, task: TaskDefinition) -> str:
        if not task.system_instruction:
            return ""
        return render(
            task.system_instruction, ctx.variables, task_id=task.id, field="system_instruction"
        )

    def _check_tokens(self, ctx: ExecContext, task: TaskDefinition, count: int) -> None:
        limit = ctx.chain.token_limit
        if limit and count > limit:
            raise TokenLimitError(
                f"input is about {count} tokens, over the chain's token_limit of {limit}",
                task_id=task.id,
                field="token_limit",
            )

    async def _report(self, ctx: ExecContext, task: TaskDefinition, result: Any) -> None:
        ctx.note(provider=result.provider, model=result.model)
        if ctx.emit_llm_call is not None:
            call = LLMCall(
                provider=result.provider,
                model=result.model,
                latency_ms=result.latency_ms,
                input_tokens=getattr(result, "input_tokens", 0),
                output_tokens=getattr(result, "output_tokens", 0),
            )
            await ctx.emit_llm_call(task.id, call)

    def _delta_sink(
        self, ctx: ExecContext, task: TaskDefinition
    ) -> Callable[[str], Awaitable[None]] | None:
        emit = ctx.emit_delta
        if emit is None:
            return None
        task_id = task.id

        async def on_delta(delta: str) -> None:
            await emit(task_id, delta)

        return on_delta

    async def _ask(
        self, ctx: ExecContext, task: TaskDefinition, input: Any, input_type: DataType
    ) -> str:
        resolver = self._need_resolver(task)
        prompt = sanitize_text(get_prompt(input, input_type))
        system = sanitize_text(self._system_instruction(ctx, task))
        sent = estimate_tokens(prompt) + estimate_tokens(system)
        self._check_tokens(ctx, task, sent)
        config = task.execute_config
        max_tokens = max_tokens_for(task)
        result = await metered(
            ctx,
            task,
            resolver,
            resolver.prompt,
            (config, prompt),
            {
                "system_instruction": system,
                "temperature": config.temperature if config else None,
                "timeout": ctx.timeout,
                "max_tokens": max_tokens,
            },
            sink=self._delta_sink(ctx, task),
            input_tokens=sent,
        )
        note_finish(ctx, result, max_tokens)
        await self._report(ctx, task, result)
        return (result.message.content or "").strip()

    def _parse(
        self, ctx: ExecContext, reply: str, task: TaskDefinition, fn: Callable[[str], Any]
    ) -> Any:
        try:
            return fn(reply)
        except ParseError as exc:
            meta = ctx.step_meta or {}
            if meta.get("model"):
                exc.message += (
                    f" (from provider {meta.get('provider')!r}, model {meta.get('model')!r})"
                )
            exc.message += truncation_hint(ctx)
            raise exc.with_context(task_id=task.id) from None

    async def _condition_key(
        self, ctx: ExecContext, task: TaskDefinition, input: Any, input_type: DataType
    ):
        reply = await self._ask(ctx, task, input, input_type)
        _key, value = self._parse(
            ctx, reply, task, lambda r: parse_condition(r, task.valid_conditions or {})
        )
        # Go: the transition is the condition's boolean ("true"/"false"), not the matched key
        return value, DataType.BOOL, "true" if value else "false"

    async def _parse_number(
        self, ctx: ExecContext, task: TaskDefinition, input: Any, input_type: DataType
    ):
        number = self._parse(ctx, await self._ask(ctx, task, input, input_type), task, parse_number)
        return number, DataType.INT, str(number)

    async def _parse_score(
        self, ctx: ExecContext, task: TaskDefinition, input: Any, input_type: DataType
    ):
        score = self._parse(ctx, await self._ask(ctx, task, input, input_type), task, parse_score)
        return score, DataType.FLOAT, f"{score:.2f}"

    async def _parse_range(
        self, ctx: ExecContext, task: TaskDefinition, input: Any, input_type: DataType
    ):
        value = self._parse(ctx, await self._ask(ctx, task, input, input_type), task, parse_range)
        return value, DataType.STRING, value

    async def _raw_string(
        self, ctx: ExecContext, task: TaskDefinition, input: Any, input_type: DataType
    ):
        reply = await self._ask(ctx, task, input, input_type)
        return reply, DataType.STRING, reply

    async def _embedding(
        self, ctx: ExecContext, task: TaskDefinition, input: Any, input_type: DataType
    ):
        resolver = self._need_resolver(task)
        text = sanitize_text(get_prompt(input, input_type))
        self._check_tokens(ctx, task, estimate_tokens(text))
        result = await metered(
            ctx,
            task,
            resolver,
            resolver.embed,
            (task.execute_config, text),
            {"timeout": ctx.timeout},
            input_tokens=estimate_tokens(text),
        )
        await self._report(ctx, task, result)
        return list(result.vector), DataType.VECTOR, "ok"

    async def prepare_run(self, ctx: ExecContext) -> None:
        """Check hook names, warm the model client, resolve every offered tool: once per run, before any step."""
        if (
            self.resolver is not None
            and "openai" not in sys.modules
            and _uses_models(ctx.chain)
            and _may_use_openai_sdk(self.resolver, ctx.chain)
        ):
            # The SDK import takes ~0.5-1 s; do it off the loop and outside the first step's timeout.
            await asyncio.to_thread(importlib.import_module, "openai")
        hook_tasks = [t for t in ctx.chain.tasks if t.handler == "hook" and t.hook is not None]
        if hook_tasks:
            known = set(await self.hooks.supports()) if self.hooks is not None else set()
            for t in hook_tasks:
                if t.hook.name not in known:  # type: ignore[union-attr]
                    from taskengine.hooks.base import did_you_mean

                    name = t.hook.name  # type: ignore[union-attr]
                    raise UnknownHookError(
                        f"unknown hook {name!r}{did_you_mean(name, known)} "
                        "(register it with @hook, --hooks or remote_hooks)",
                        hook=name,
                        task_id=t.id,
                        field="hook.name",
                    )
        if self.hooks is None:
            return
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
                resolved = await resolve_task_tools(self.hooks, config, None)
            except HookError as exc:
                raise exc.with_context(task_id=task_id, field="execute_config.hooks") from None
            ctx.tool_cache[task_id] = [entry.tool for entry in resolved.values()]
            chain_tools.update(resolved)
        ctx.chain_tools = chain_tools

    async def tools_for(
        self, ctx: ExecContext, task: TaskDefinition, client_tools: list[Tool] | None
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

    async def _model_execution(
        self, ctx: ExecContext, task: TaskDefinition, input: Any, input_type: DataType
    ):
        resolver = self._need_resolver(task)
        history, client_tools, request_config, max_tokens = _as_history(input, input_type, task.id)
        config = _merge_config(task.execute_config, request_config)
        tools = await self.tools_for(ctx, task, client_tools or ctx.client_tools)
        messages = [_clean(m) for m in history.messages]
        system = sanitize_text(self._system_instruction(ctx, task))
        if system and not any(m.role == "system" and m.content == system for m in messages):
            messages.insert(0, Message(role="system", content=system))
        count = sum(estimate_tokens(m.content) for m in messages)
        self._check_tokens(ctx, task, count)
        limit = max_tokens_for(task, max_tokens)
        result = await metered(
            ctx,
            task,
            resolver,
            resolver.chat,
            (config, messages),
            {
                "tools": tools or None,
                "temperature": config.temperature if config else None,
                "timeout": ctx.timeout,
                "max_tokens": limit,
            },
            sink=self._delta_sink(ctx, task),
            input_tokens=count,
        )
        note_finish(ctx, result, limit)
        await self._report(ctx, task, result)
        reply = result.message
        if reply.timestamp is None:
            reply = reply.model_copy(update={"timestamp": _now()})
        input_tokens = result.input_tokens if result.input_tokens else count
        self._check_tokens(ctx, task, input_tokens)
        out = ChatHistory(
            messages=[*messages, reply],
            model=result.model,
            input_tokens=history.input_tokens + input_tokens,
            output_tokens=history.output_tokens
            + (result.output_tokens or estimate_tokens(reply.content)),
        )
        return out, DataType.CHAT_HISTORY, ("tool-call" if reply.call_tools else "executed")

    async def _execute_tool_calls(
        self, ctx: ExecContext, task: TaskDefinition, input: Any, input_type: DataType
    ):
        if not isinstance(input, (ChatHistory, OpenAIChatRequest)):
            return input, input_type, "no_op"  # Go: input that is not a chat passes through
        history, _tools, _cfg, _max = _as_history(input, input_type, task.id)
        last = history.messages[-1] if history.messages else None
        if last is None or not last.call_tools:
            return history, DataType.CHAT_HISTORY, "no_calls_found"
        messages = list(history.messages)
        for call in last.call_tools:
            name = call.function.name
            try:
                args = (
                    json.loads(call.function.arguments) if call.function.arguments.strip() else {}
                )
            except json.JSONDecodeError as exc:
                raise ParseError(
                    f"tool call {name!r} has malformed JSON arguments: {call.function.arguments[:200]!r} ({exc.msg})",
                    task_id=task.id,
                ) from exc
            if not isinstance(args, dict):
                raise ParseError(
                    f"tool call {name!r} arguments must be a JSON object", task_id=task.id
                )
            content = await self._run_tool(ctx, task, name, args, call.id)
            messages.append(
                Message(role="tool", content=content, tool_call_id=call.id, timestamp=_now())
            )
        out = history.model_copy(update={"messages": messages})
        return out, DataType.CHAT_HISTORY, "tools_executed"

    async def _run_tool(
        self, ctx: ExecContext, task: TaskDefinition, name: str, args: dict[str, Any], call_id: str
    ) -> str:
        """Run one tool call; problems the model can fix come back as text for its next turn."""
        offered = ctx.chain_tools or {}
        entry = offered.get(name)
        if entry is None:
            names = ", ".join(sorted(offered)) or "none"
            return f"error: unknown tool {name!r}; available tools: {names}"
        if entry.is_client_tool or self.hooks is None:
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
            output, _type = await self.hooks.exec(
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


#: The transition value the Go engine records when a handler fails (others record "").
_FAILED_TRANSITIONS = {
    "condition_key": "false",
    "parse_number": "0",
    "parse_score": "0.00",
    "embedding": "ok",
    "hook": "failed",
}


def _clean(message: Message) -> Message:
    """The message with control characters stripped from its text (a copy only when needed)."""
    cleaned = sanitize_text(message.content)
    return (
        message if cleaned == message.content else message.model_copy(update={"content": cleaned})
    )


def _uses_models(chain: TaskChainDefinition) -> bool:
    from taskengine.lint import LLM_HANDLERS

    return any(t.handler in LLM_HANDLERS for t in chain.tasks)


def _may_use_openai_sdk(resolver: Any, chain: TaskChainDefinition) -> bool:
    """False only when every model task resolves to Ollama providers (their native client needs
    no SDK, so a CLI run against Ollama skips its ~1 s import); True whenever unsure."""
    from taskengine.lint import LLM_HANDLERS

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


def _merge_config(
    task_config: LLMExecutionConfig | None, request_config: LLMExecutionConfig | None
):
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


def _now():
    from datetime import datetime

    return datetime.now().astimezone()
