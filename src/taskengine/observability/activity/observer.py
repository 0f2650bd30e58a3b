"""`ActivityObserver`: run events turned into activity (one `exec_chain` event per run)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from taskengine.datatypes import to_display
from taskengine.engine.events import RunInfo, RunObserver
from taskengine.engine.record import CapturedStateUnit
from taskengine.observability.activity.kv_sink import KVActivitySink
from taskengine.observability.activity.tracker import ActivitySpan

if TYPE_CHECKING:
    from taskengine.datatypes import DataType

__all__ = ["ActivityObserver"]


class ActivityObserver(RunObserver):
    """Subscribes a sink to run events: one `exec_chain` event per run, a state per step."""

    def __init__(
        self, sink: KVActivitySink, *, operation: str = "exec_chain", max_output_chars: int = 2000
    ):
        self.sink = sink
        self.operation = operation
        self.max_output_chars = max_output_chars
        self._spans: dict[str, ActivitySpan] = {}

    @staticmethod
    def _request_id(run: RunInfo) -> str:
        return run.request_id or run.run_id

    def _span(self, run: RunInfo) -> ActivitySpan:
        span = self._spans.get(run.run_id)
        if span is None:
            span = self._spans[run.run_id] = self.sink.start(
                self.operation, run.chain_id, request_id=self._request_id(run), run_id=run.run_id
            )
        return span

    async def on_run_start(self, *, run: RunInfo, input: Any, input_type: DataType) -> None:
        try:
            self._spans.pop(run.run_id, None)
            self._span(run).add_metadata(input_type=str(input_type))
        except Exception as exc:
            self.sink._failed("start a run activity", exc)

    async def on_step_end(self, *, run: RunInfo, step: CapturedStateUnit) -> None:
        await self.sink.record_state(self._request_id(run), step)

    async def on_error(self, *, run: RunInfo, task_id: str | None, error: BaseException) -> None:
        try:
            span = self._span(run)
            span.report_error(error)
            if task_id:
                span.add_metadata(failed_task=task_id)
        except Exception as exc:
            self.sink._failed("report a run error", exc)

    async def on_run_end(
        self,
        *,
        run: RunInfo,
        status: str,
        output: Any,
        output_type: DataType,
        error: BaseException | None,
    ) -> None:
        try:
            span = self._span(run)
            del self._spans[run.run_id]
            if error is not None:
                span.report_error(error)
            text = to_display(output)
            if len(text) > self.max_output_chars:
                text = text[: self.max_output_chars] + "…"
            span.add_metadata(status=status)
            span.report_change(
                run.run_id, {"status": status, "outputType": str(output_type), "output": text}
            )
            await span.aend()
        except Exception as exc:
            self.sink._failed("end a run activity", exc)
