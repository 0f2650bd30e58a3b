"""Run events as small dicts for a plain callback (`exec_env(on_event=...)`), e.g. for streaming."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from taskengine.engine.events import RunInfo, RunObserver

if TYPE_CHECKING:
    from taskengine.datatypes import DataType
    from taskengine.engine.record import CapturedStateUnit

__all__ = ["CallbackObserver", "EventCallback"]

#: what `exec_env(on_event=...)` takes: called with each event dict, awaited when it returns one
EventCallback = Callable[[dict[str, Any]], Awaitable[None] | None]


class CallbackObserver(RunObserver):
    """Feeds run events to a plain callback (`exec_env(on_event=…)`), e.g. for streaming."""

    def __init__(self, callback: EventCallback) -> None:
        self.callback = callback

    async def _send(self, event: dict[str, Any]) -> None:
        result = self.callback(event)
        if result is not None:
            await result

    async def on_step_start(
        self, *, run: RunInfo, task_id: str, handler: str, attempt: int
    ) -> None:
        await self._send(
            {
                "type": "step_start",
                "runId": run.run_id,
                "taskID": task_id,
                "handler": handler,
                "attempt": attempt,
            }
        )

    async def on_step_end(self, *, run: RunInfo, step: CapturedStateUnit) -> None:
        await self._send({"type": "step_end", "runId": run.run_id, "step": step.to_dict()})

    async def on_llm_delta(self, *, run: RunInfo, task_id: str, delta: str) -> None:
        await self._send({"type": "delta", "runId": run.run_id, "taskID": task_id, "delta": delta})

    async def on_run_end(
        self,
        *,
        run: RunInfo,
        status: str,
        output: Any,
        output_type: DataType,
        error: BaseException | None,
    ) -> None:
        await self._send({"type": "run_end", "runId": run.run_id, "status": status})
