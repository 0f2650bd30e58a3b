"""Run events: the fixed verb grammar every subscriber (tracking, metrics, streaming) speaks.

Subclass `RunObserver` and override only what you need; the engine calls just the methods a
subscriber overrides, so an unused event costs nothing on the hot path.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from taskengine.datatypes import DataType
    from taskengine.engine.record import CapturedStateUnit

__all__ = ["EVENT_NAMES", "LLMCall", "RunInfo", "RunObserver", "overridden"]

EVENT_NAMES = (
    "on_run_start",
    "on_step_start",
    "on_step_end",
    "on_run_end",
    "on_error",
    "on_llm_delta",
    "on_llm_call",
    "on_retry",
)


@dataclass(slots=True)
class RunInfo:
    """Identity of a run, shared by every event of that run."""

    run_id: str
    chain_id: str
    request_id: str = ""
    started_at: float = 0.0
    #: per-run totals maintained by the engine (tokens, cost, llm time)
    totals: dict[str, float] = field(default_factory=dict)
    #: the root spans of the run's earlier traced attempts, oldest first, as the run record
    #: keeps them (`{"traceId", "spanId", "traceFlags"}`); empty for a run's first attempt
    earlier_spans: tuple[dict[str, Any], ...] = ()
    #: this attempt's root span in the same form, set by a tracing subscriber at
    #: `on_run_start`; the engine adds it to the run record, so a later attempt in any
    #: process can link to it
    root_span: dict[str, Any] | None = None


@dataclass(slots=True)
class LLMCall:
    """One call to a model: who answered, how long it took, what it used."""

    provider: str
    model: str
    latency_ms: float
    input_tokens: int = 0
    output_tokens: int = 0
    cost: float | None = None
    error: str | None = None


class RunObserver:
    """Base subscriber: every method is a no-op; all arguments are keyword-only."""

    async def on_run_start(self, *, run: RunInfo, input: Any, input_type: DataType) -> None:
        return None

    async def on_step_start(
        self, *, run: RunInfo, task_id: str, handler: str, attempt: int
    ) -> None:
        return None

    async def on_step_end(self, *, run: RunInfo, step: CapturedStateUnit) -> None:
        return None

    async def on_retry(
        self, *, run: RunInfo, task_id: str, attempt: int, error: BaseException, delay_s: float
    ) -> None:
        return None

    async def on_llm_delta(self, *, run: RunInfo, task_id: str, delta: str) -> None:
        return None

    async def on_llm_call(self, *, run: RunInfo, task_id: str, call: LLMCall) -> None:
        return None

    async def on_error(self, *, run: RunInfo, task_id: str | None, error: BaseException) -> None:
        return None

    async def on_run_end(
        self,
        *,
        run: RunInfo,
        status: str,
        output: Any,
        output_type: DataType,
        error: BaseException | None,
    ) -> None:
        return None


def overridden(observer: object, name: str) -> bool:
    """True when `observer` really implements event `name` (not the base no-op)."""
    method = getattr(type(observer), name, None)
    return method is not None and method is not getattr(RunObserver, name)
