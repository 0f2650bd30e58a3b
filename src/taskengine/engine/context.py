"""The `ExecContext` of one run: what its handlers see, and the run totals their model calls add to."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from taskengine.executor import ExecContext

if TYPE_CHECKING:
    from taskengine.chain import TaskChainDefinition
    from taskengine.datatypes import DataType, Tool
    from taskengine.engine.events import LLMCall, RunInfo
    from taskengine.engine.observers import Observers

__all__ = ["run_context"]


def run_context(
    run: RunInfo,
    chain: TaskChainDefinition,
    variables: dict[str, Any],
    types: dict[str, DataType],
    client_tools: list[Tool] | None,
    obs: Observers,
) -> ExecContext:
    """The context the handlers of one run share (one object per run, reused by every step)."""
    ctx = ExecContext(
        run=run, chain=chain, variables=variables, types=types, client_tools=client_tools
    )
    if obs.on_llm_delta:
        ctx.emit_delta = _delta_emitter(run, obs)
    ctx.emit_llm_call = _llm_call_emitter(run, obs)
    return ctx


def _delta_emitter(run: RunInfo, obs: Observers) -> Callable[[str, str], Awaitable[None]]:
    async def emit(task_id: str, delta: str) -> None:
        for fn in obs.on_llm_delta:
            await fn(run=run, task_id=task_id, delta=delta)

    return emit


def _llm_call_emitter(run: RunInfo, obs: Observers) -> Callable[[str, LLMCall], Awaitable[None]]:
    async def emit(task_id: str, call: LLMCall) -> None:
        totals = run.totals
        totals["llm_calls"] = totals.get("llm_calls", 0) + 1
        totals["input_tokens"] = totals.get("input_tokens", 0) + call.input_tokens
        totals["output_tokens"] = totals.get("output_tokens", 0) + call.output_tokens
        totals["total_tokens"] = totals["input_tokens"] + totals["output_tokens"]
        totals["llm_ms"] = round(totals.get("llm_ms", 0.0) + call.latency_ms, 3)
        if call.error is not None:  # cut short (timeout, cancel) or failed after sending
            totals["failed_calls"] = totals.get("failed_calls", 0) + 1
        for fn in obs.on_llm_call:
            await fn(run=run, task_id=task_id, call=call)
        if call.cost is not None:
            totals["cost"] = totals.get("cost", 0.0) + call.cost

    return emit
