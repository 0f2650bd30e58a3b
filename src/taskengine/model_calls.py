"""What every model call of a handler shares: its token limit, its finish reason, and its count.

A reply cut at `max_tokens` (`finish_reason: length`) is recorded in the step's meta so it is
visible; a call cut short by a timeout or cancellation still counts in the run's totals (with
the tokens known at that moment), so a timed-out run does not report empty totals.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from taskengine.engine.events import LLMCall
from taskengine.errors import LLMError, ProviderNotConfiguredError
from taskengine.providers.base import estimate_tokens

if TYPE_CHECKING:
    from taskengine.chain import TaskDefinition
    from taskengine.executor import ExecContext

__all__ = ["PARSE_MAX_TOKENS", "max_tokens_for", "metered", "note_finish", "truncation_hint"]

T = TypeVar("T")
DeltaSink = Callable[[str], Awaitable[None]]

#: Default `max_tokens` of handlers that read a short answer (a key, a number, a range): long
#: enough for a sentence around the answer, short enough that a model repeating itself under
#: greedy decoding stops within seconds instead of running into the task's timeout.
PARSE_MAX_TOKENS = 256
_PARSE_HANDLERS = frozenset({"condition_key", "parse_number", "parse_score", "parse_range"})


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
    input_tokens: int,
    sink: DeltaSink | None = None,
) -> T:
    """`await method(*args, **kwargs)` (a resolver call; `sink` becomes its `on_delta`). When it
    fails or is cancelled after it may have reached a server, it is still reported to the run's
    totals: input tokens estimated, output tokens = the text streamed so far."""
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
                input_tokens=input_tokens,
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
