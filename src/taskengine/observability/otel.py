"""OpenTelemetry traces of runs: run → step (one span per attempt) → model call / tool call.

`OtelObserver` subscribes to the run events; attributes follow the OpenTelemetry GenAI
semantic conventions (`gen_ai.operation.name`, `gen_ai.provider.name`, `gen_ai.request.model`,
`gen_ai.usage.*`, `gen_ai.tool.name` …) plus `taskengine.*` ones. Step inputs and outputs are
recorded only with `otel.capture_content` (or `OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT`),
always through the redactor; tool arguments and injected values never are.

A run's spans share a trace whose id is the run id (a 32-hex run id) unless the run was started
under an incoming `traceparent`; a resumed run's root span links to the root spans of the
run's earlier attempts. Each attempt's root span is handed to the engine (`RunInfo.root_span`),
which keeps it in the run record, so the links hold whichever process ran an attempt (a
`taskengine resume`, another server, a queue worker); runs without a store link to the
attempts this process saw.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

from taskengine.engine.events import RunObserver
from taskengine.errors import ConfigError
from taskengine.observability.otel_config import (
    INSTALL_HINT,
    OtelConfig,
    configure_tracing,
    otel_config,
    trace_id_of,
    wanted_trace_id,
)
from taskengine.observability.tracing import set_scope

if TYPE_CHECKING:
    from taskengine.datatypes import DataType
    from taskengine.engine.events import LLMCall, RunInfo
    from taskengine.engine.record import CapturedStateUnit

__all__ = ["OtelConfig", "OtelObserver", "configure_tracing", "otel_config"]

#: longest text recorded in one attribute (content capture, error messages)
MAX_TEXT = 4096
#: runs whose root spans are remembered for linking resumed attempts
MAX_REMEMBERED_RUNS = 10_000
#: earlier attempts a root span links to (the newest ones)
MAX_LINKS = 16


# --- spans --------------------------------------------------------------------------------


def _redacted(value: Any) -> str:
    from taskengine.datatypes import to_display
    from taskengine.observability.redaction import DEFAULT_REDACTOR

    text = value if isinstance(value, str) else to_display(DEFAULT_REDACTOR.redact(value))
    return DEFAULT_REDACTOR.text(text)[:MAX_TEXT]


def _span_record(ctx: Any) -> dict[str, Any]:
    """A span context as the run record keeps it (ids in W3C hex, no trace state)."""
    return {
        "traceId": format(ctx.trace_id, "032x"),
        "spanId": format(ctx.span_id, "016x"),
        "traceFlags": int(ctx.trace_flags),
    }


def _span_context(record: dict[str, Any]) -> Any:
    """The span context of a `_span_record` (None for one that is not valid)."""
    from opentelemetry.trace import SpanContext, TraceFlags

    try:
        trace_id = int(str(record["traceId"]), 16)
        span_id = int(str(record["spanId"]), 16)
        flags = int(record.get("traceFlags", 0)) & 0xFF
    except (KeyError, TypeError, ValueError):
        return None
    ctx = SpanContext(trace_id, span_id, is_remote=True, trace_flags=TraceFlags(flags))
    return ctx if ctx.is_valid else None


def _mark_error(span: Any, error: BaseException | str) -> None:
    from opentelemetry.trace import Status, StatusCode

    if isinstance(error, BaseException):
        span.set_attribute("error.type", type(error).__name__)
        message = str(error)
    else:
        span.set_attribute("error.type", "error")
        message = error
    span.set_status(Status(StatusCode.ERROR, _redacted(message)))


class _Scope:
    """A span that outgoing calls attach to (see `taskengine.observability.tracing`)."""

    __slots__ = ("span", "tracer")

    def __init__(self, tracer: Any, span: Any) -> None:
        self.tracer = tracer
        self.span = span

    def context(self) -> Any:
        from opentelemetry.trace import set_span_in_context

        return set_span_in_context(self.span)

    def headers(self) -> dict[str, str]:
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        carrier: dict[str, str] = {}
        TraceContextTextMapPropagator().inject(carrier, context=self.context())
        return carrier

    def start_tool(self, name: str, call_id: str) -> _ToolHandle:
        attributes = {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": name}
        if call_id:
            attributes["gen_ai.tool.call.id"] = call_id
        span = self.tracer.start_span(
            f"execute_tool {name}", context=self.context(), attributes=attributes
        )
        return _ToolHandle(_Scope(self.tracer, span))


class _ToolHandle:
    __slots__ = ("scope",)

    def __init__(self, scope: _Scope) -> None:
        self.scope = scope

    def end(self, error: BaseException | None) -> None:
        if error is not None:
            _mark_error(self.scope.span, error)
        self.scope.span.end()


class _RunSpans:
    """The open spans of one run attempt."""

    __slots__ = ("handler", "root", "step", "task_id")

    def __init__(self, root: _Scope) -> None:
        self.root = root
        self.step: _Scope | None = None
        self.task_id = ""
        self.handler = ""


class OtelObserver(RunObserver):
    """Turns run events into spans on `tracer` (an OpenTelemetry `Tracer`).

    Args:
        tracer: where spans go (`configure_tracing` builds one from the settings).
        capture_content: record step inputs/outputs and the run's input/output (redacted).
        provider: the SDK `TracerProvider` this observer owns; shut down by `aclose()`.
    """

    def __init__(self, tracer: Any, *, capture_content: bool = False, provider: Any = None) -> None:
        self.tracer = tracer
        self.capture_content = capture_content
        self.provider = provider
        self._runs: dict[str, _RunSpans] = {}
        self._earlier: OrderedDict[str, list[Any]] = OrderedDict()

    # -- run -------------------------------------------------------------------------------

    async def on_run_start(self, *, run: RunInfo, input: Any, input_type: DataType) -> None:
        from opentelemetry import context as otel_context
        from opentelemetry.trace import Link, get_current_span

        parent = otel_context.get_current()
        continued = get_current_span(parent).get_span_context().is_valid
        links = [
            Link(ctx, {"taskengine.link": "earlier_attempt"}) for ctx in self._earlier_roots(run)
        ]
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": "invoke_agent",
            "gen_ai.agent.name": run.chain_id,
            "taskengine.run_id": run.run_id,
            "taskengine.chain_id": run.chain_id,
            "taskengine.resumed": bool(links),
        }
        if run.request_id:
            attributes["taskengine.request_id"] = run.request_id
        if self.capture_content:
            attributes["taskengine.run.input"] = _redacted(input)
        token = None if continued else wanted_trace_id.set(trace_id_of(run.run_id))
        try:
            span = self.tracer.start_span(
                f"invoke_agent {run.chain_id}", context=parent, attributes=attributes, links=links
            )
        finally:
            if token is not None:
                wanted_trace_id.reset(token)
        if span.is_recording():  # sampled: later attempts link to it, in any process
            run.root_span = _span_record(span.get_span_context())
        spans = _RunSpans(_Scope(self.tracer, span))
        self._runs[run.run_id] = spans
        set_scope(spans.root)

    def _earlier_roots(self, run: RunInfo) -> list[Any]:
        """The root spans of the run's earlier attempts, oldest first: those its record keeps
        (whichever process ran them), then any other this process ended."""
        roots = [ctx for ctx in map(_span_context, run.earlier_spans) if ctx is not None]
        known = {(ctx.trace_id, ctx.span_id) for ctx in roots}
        roots += [
            ctx
            for ctx in self._earlier.get(run.run_id, ())
            if (ctx.trace_id, ctx.span_id) not in known
        ]
        return roots[-MAX_LINKS:]

    async def on_run_end(
        self,
        *,
        run: RunInfo,
        status: str,
        output: Any,
        output_type: DataType,
        error: BaseException | None,
    ) -> None:
        spans = self._runs.pop(run.run_id, None)
        if spans is None:
            return
        if spans.step is not None:  # a run cut short inside a step
            _mark_error(spans.step.span, error or status)
            spans.step.span.end()
        root = spans.root.span
        root.set_attribute("taskengine.status", status)
        totals = run.totals
        for key in ("input_tokens", "output_tokens"):
            if key in totals:
                root.set_attribute(f"gen_ai.usage.{key}", int(totals[key]))
        if "cost" in totals:
            root.set_attribute("taskengine.cost", float(totals["cost"]))
        if self.capture_content and output is not None:
            root.set_attribute("taskengine.run.output", _redacted(output))
        if error is not None:
            _mark_error(root, error)
        root.end()
        self._remember(run.run_id, root.get_span_context())
        set_scope(None)

    def _remember(self, run_id: str, span_context: Any) -> None:
        earlier = self._earlier.pop(run_id, [])
        earlier.append(span_context)
        self._earlier[run_id] = earlier[-MAX_LINKS:]
        while len(self._earlier) > MAX_REMEMBERED_RUNS:
            self._earlier.popitem(last=False)

    # -- steps -----------------------------------------------------------------------------

    async def on_step_start(
        self, *, run: RunInfo, task_id: str, handler: str, attempt: int
    ) -> None:
        spans = self._runs.get(run.run_id)
        if spans is None:
            return
        span = self.tracer.start_span(
            f"task {task_id}",
            context=spans.root.context(),
            attributes={
                "taskengine.run_id": run.run_id,
                "taskengine.chain_id": run.chain_id,
                "taskengine.task_id": task_id,
                "taskengine.handler": handler,
                "taskengine.attempt": attempt,
            },
        )
        spans.step = _Scope(self.tracer, span)
        spans.task_id = task_id
        spans.handler = handler
        set_scope(spans.step)

    async def on_retry(
        self, *, run: RunInfo, task_id: str, attempt: int, error: BaseException, delay_s: float
    ) -> None:
        spans = self._runs.get(run.run_id)
        if spans is None or spans.step is None:
            return
        span = spans.step.span
        span.set_attribute("taskengine.retry_delay_s", round(delay_s, 6))
        _mark_error(span, error)
        span.end()
        spans.step = None
        set_scope(spans.root)

    async def on_error(self, *, run: RunInfo, task_id: str | None, error: BaseException) -> None:
        spans = self._runs.get(run.run_id)
        if spans is not None and spans.step is not None:
            _mark_error(spans.step.span, error)

    async def on_step_end(self, *, run: RunInfo, step: CapturedStateUnit) -> None:
        spans = self._runs.get(run.run_id)
        if spans is None or spans.step is None:
            return
        span = spans.step.span
        span.set_attribute("taskengine.transition", str(step.transition or ""))
        span.set_attribute("taskengine.output_type", step.output_type.type_name)
        if self.capture_content:
            if step.input:
                span.set_attribute("taskengine.step.input", _redacted(step.input))
            if step.output:
                span.set_attribute("taskengine.step.output", _redacted(step.output))
        span.end()
        spans.step = None
        set_scope(spans.root)

    # -- model calls -----------------------------------------------------------------------

    async def on_llm_call(self, *, run: RunInfo, task_id: str, call: LLMCall) -> None:
        spans = self._runs.get(run.run_id)
        if spans is None:
            return
        parent = spans.step if spans.step is not None else spans.root
        operation = "embeddings" if spans.handler == "embedding" else "chat"
        ended = time.time_ns()
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": operation,
            "gen_ai.provider.name": call.provider,
            "gen_ai.request.model": call.model,
            "gen_ai.usage.input_tokens": call.input_tokens,
            "gen_ai.usage.output_tokens": call.output_tokens,
            "taskengine.task_id": task_id,
        }
        if call.error is None:
            attributes["gen_ai.response.model"] = call.model
        if call.cost is not None:
            attributes["taskengine.cost"] = call.cost
        from opentelemetry.trace import SpanKind

        span = self.tracer.start_span(
            f"{operation} {call.model}",
            context=parent.context(),
            kind=SpanKind.CLIENT,
            attributes=attributes,
            start_time=ended - int(call.latency_ms * 1e6),
        )
        if call.error is not None:
            _mark_error(span, call.error)
        span.end(end_time=ended)

    # -- lifecycle -------------------------------------------------------------------------

    async def force_flush(self) -> None:
        """Export every finished span now (tests, and before a short-lived process exits)."""
        if self.provider is not None:
            await asyncio.to_thread(self.provider.force_flush)

    async def aclose(self) -> None:
        """Flush and stop the exporter this observer owns."""
        if self.provider is not None:
            provider, self.provider = self.provider, None
            await asyncio.to_thread(provider.shutdown)


def traceparent_middleware(app: Any) -> Any:
    """ASGI middleware: a request's `traceparent` becomes the parent of the runs it starts."""
    try:
        from opentelemetry import context as otel_context
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
    except ImportError as exc:
        raise ConfigError(f"{INSTALL_HINT} ({exc})") from exc
    propagator = TraceContextTextMapPropagator()

    async def middleware(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        carrier = {
            key.decode("latin-1").lower(): value.decode("latin-1")
            for key, value in scope.get("headers", ())
            if key.lower() in (b"traceparent", b"tracestate")
        }
        if "traceparent" not in carrier:
            await app(scope, receive, send)
            return
        token = otel_context.attach(propagator.extract(carrier))
        try:
            await app(scope, receive, send)
        finally:
            otel_context.detach(token)

    return middleware
