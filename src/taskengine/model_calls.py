"""What every model call of a handler shares: its resolver, token checks, finish reason, and count.

A reply cut at `max_tokens` (`finish_reason: length`) is recorded in the step's meta so it is
visible; a call cut short by a timeout or cancellation still counts in the run's totals (with
the tokens known at that moment), so a timed-out run does not report empty totals.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

from taskengine.engine.events import LLMCall
from taskengine.errors import LLMError, ProviderNotConfiguredError, TokenLimitError
from taskengine.providers.base import estimate_tokens
from taskengine.templates import render

if TYPE_CHECKING:
    from taskengine.chain import TaskDefinition
    from taskengine.handlers.context import ExecContext

__all__ = [
    "PARSE_MAX_TOKENS",
    "check_tokens",
    "delta_sink",
    "estimate_tokens",
    "max_tokens_for",
    "metered",
    "need_resolver",
    "note_finish",
    "report_call",
    "system_instruction",
    "tokens_to_send",
    "truncation_hint",
]

T = TypeVar("T")
DeltaSink = Callable[[str], Awaitable[None]]

#: Default `max_tokens` of handlers that read a short answer (a key, a number, a range): long
#: enough for a sentence around the answer, short enough that a model repeating itself under
#: greedy decoding stops within seconds instead of running into the task's timeout.
PARSE_MAX_TOKENS = 256
_PARSE_HANDLERS = frozenset({"condition_key", "parse_number", "parse_score", "parse_range"})


def need_resolver(resolver: Any, task: TaskDefinition) -> Any:
    """`resolver`, or a clear error when no model provider is configured."""
    if resolver is None:
        raise ProviderNotConfiguredError(
            f"handler {task.handler!r} needs a model, but no model provider is configured "
            "(set OLLAMA_HOST, OPENAI_API_KEY/OPENAI_BASE_URL or GEMINI_API_KEY, or add providers "
            "to taskengine.yaml)",
            task_id=task.id,
        )
    return resolver


def system_instruction(ctx: ExecContext, task: TaskDefinition) -> str:
    """The task's system instruction rendered with the run's variables ("" when it has none)."""
    if not task.system_instruction:
        return ""
    return render(
        task.system_instruction, ctx.variables, task_id=task.id, field="system_instruction"
    )


def check_tokens(ctx: ExecContext, task: TaskDefinition, count: int) -> None:
    """Raise `TokenLimitError` when `count` tokens are over the chain's `token_limit`."""
    limit = ctx.chain.token_limit
    if limit and count > limit:
        raise TokenLimitError(
            f"input is about {count} tokens, over the chain's token_limit of {limit}",
            task_id=task.id,
            field="token_limit",
        )


def tokens_to_send(ctx: ExecContext, task: TaskDefinition, *texts: str) -> int | Callable[[], int]:
    """The tokens a call will send, checked against the chain's `token_limit`.

    Counting is a regex pass over the text, so without a limit it is deferred: `metered` calls
    the returned function only if the call fails (a reply carries the server's own count).
    """
    if not ctx.chain.token_limit:
        return partial(_count_tokens, texts)
    count = _count_tokens(texts)
    check_tokens(ctx, task, count)
    return count


def _count_tokens(texts: tuple[str, ...]) -> int:
    return sum(estimate_tokens(text) for text in texts)


async def report_call(ctx: ExecContext, task: TaskDefinition, result: Any) -> None:
    """Note who answered and what it used in the step's meta; report the call to the run.

    A step that calls the model more than once (tool rounds, retries) sums its tokens and cost.
    """
    call = LLMCall(
        provider=result.provider,
        model=result.model,
        latency_ms=result.latency_ms,
        input_tokens=getattr(result, "input_tokens", 0),
        output_tokens=getattr(result, "output_tokens", 0),
    )
    if ctx.emit_llm_call is not None:
        await ctx.emit_llm_call(task.id, call)  # observers may price it (call.cost)
    used = ctx.step_meta or {}
    ctx.note(
        provider=result.provider,
        model=result.model,
        input_tokens=used.get("input_tokens", 0) + call.input_tokens,
        output_tokens=used.get("output_tokens", 0) + call.output_tokens,
    )
    if call.cost is not None:
        ctx.note(cost=used.get("cost", 0.0) + call.cost)


def delta_sink(ctx: ExecContext, task_id: str) -> DeltaSink | None:
    """Where streamed text of the step `task_id` goes (None when nobody listens)."""
    emit = ctx.emit_delta
    if emit is None:
        return None

    async def on_delta(delta: str) -> None:
        await emit(task_id, delta)

    return on_delta


def max_tokens_for(task: TaskDefinition, requested: int | None = None) -> int | None:
    """The task's `execute_config.max_tokens`, else `requested` (an OpenAI request's), else the
    parse handlers' default; None leaves the limit to the provider."""
    config = task.execute_config
    if config is not None and config.max_tokens:
        return config.max_tokens
    if requested:
        return requested
    return PARSE_MAX_TOKENS if task.handler in _PARSE_HANDLERS else None


def note_finish(ctx: ExecContext, result: Any, max_tokens: int | None) -> None:
    """Record an unusual finish (anything but `stop` / `tool_calls`) in the step's meta."""
    reason = getattr(result, "finish_reason", None) or "stop"
    if reason in ("stop", "tool_calls"):
        return
    ctx.note(finish_reason=reason)
    if reason == "length" and max_tokens:
        ctx.note(max_tokens=max_tokens)


def truncation_hint(ctx: ExecContext) -> str:
    """Text for a parse error when the reply was cut at the token limit ('' otherwise)."""
    meta = ctx.step_meta or {}
    if meta.get("finish_reason") != "length":
        return ""
    limit = meta.get("max_tokens")
    where = f"max_tokens={limit}" if limit else "the model's token limit"
    return (
        f"; the reply was cut at {where} (finish_reason: length): raise "
        "execute_config.max_tokens or ask for a shorter answer"
    )


async def metered(
    ctx: ExecContext,
    task: TaskDefinition,
    resolver: Any,
    method: Callable[..., Awaitable[T]],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    *,
    input_tokens: int | Callable[[], int],
    sink: DeltaSink | None = None,
) -> T:
    """`await method(*args, **kwargs)` (a resolver call; `sink` becomes its `on_delta`). When it
    fails or is cancelled after it may have reached a server, it is still reported to the run's
    totals: input tokens estimated (`input_tokens` may be a function, called only then), output
    tokens = the text streamed so far."""
    streamed: list[str] | None = None
    if sink is not None:
        streamed = []
        kwargs["on_delta"] = _recording(sink, streamed)
    started = time.perf_counter()
    try:
        return await method(*args, **kwargs)
    except ProviderNotConfiguredError:
        raise  # nothing was sent
    except (asyncio.CancelledError, LLMError) as exc:
        if ctx.emit_llm_call is not None:
            provider, model = _first_candidate(resolver, task)
            reason = "cancelled (timeout)" if isinstance(exc, asyncio.CancelledError) else str(exc)
            record = LLMCall(
                provider=getattr(exc, "provider", None) or provider,
                model=getattr(exc, "model", None) or model,
                latency_ms=(time.perf_counter() - started) * 1000,
                input_tokens=input_tokens if isinstance(input_tokens, int) else input_tokens(),
                output_tokens=estimate_tokens("".join(streamed or ())),
                error=reason[:200],
            )
            await ctx.emit_llm_call(task.id, record)
        raise


def _recording(sink: DeltaSink, streamed: list[str]) -> DeltaSink:
    """`sink`, keeping a copy of every delta (the text of a stream that may be cut short)."""

    async def on_delta(delta: str) -> None:
        streamed.append(delta)
        await sink(delta)

    return on_delta


def _first_candidate(resolver: Any, task: TaskDefinition) -> tuple[str, str]:
    """Who the call went to first (best effort: only used to label an interrupted call)."""
    try:
        pairs = resolver.candidates(task.execute_config, embed=task.handler == "embedding")
    except Exception:
        return "", ""
    if not pairs:
        return "", ""
    _provider, name, model = pairs[0]
    return name, model
