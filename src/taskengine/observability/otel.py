"""OpenTelemetry traces of runs: run → step (one span per attempt) → model call / tool call.

`OtelObserver` subscribes to the run events; attributes follow the OpenTelemetry GenAI
semantic conventions (`gen_ai.operation.name`, `gen_ai.provider.name`, `gen_ai.request.model`,
`gen_ai.usage.*`, `gen_ai.tool.name` …) plus `taskengine.*` ones. Step inputs and outputs are
recorded only with `otel.capture_content` (or `OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT`),
always through the redactor; tool arguments and injected values never are.

A run's spans share a trace whose id is the run id (a 32-hex run id) unless the run was started
under an incoming `traceparent`; a resumed run's root span links to the root spans of the
run's earlier attempts seen by this process.
"""

from __future__ import annotations

import asyncio
import contextvars
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from taskengine.engine.events import RunObserver
from taskengine.errors import ConfigError
from taskengine.observability.tracing import set_scope

if TYPE_CHECKING:
    from taskengine.datatypes import DataType
    from taskengine.engine.events import LLMCall, RunInfo
    from taskengine.engine.record import CapturedStateUnit

__all__ = ["OtelConfig", "OtelObserver", "configure_tracing", "otel_config"]

INSTALL_HINT = "OpenTelemetry traces need the otel extra: pip install 'taskengine[otel]'"
DEFAULT_ENDPOINT = "http://localhost:4318"
#: longest text recorded in one attribute (content capture, error messages)
MAX_TEXT = 4096
#: runs whose root spans are remembered for linking resumed attempts
MAX_REMEMBERED_RUNS = 10_000

_TRUE = {"1", "true", "yes", "on"}
_wanted_trace_id: contextvars.ContextVar[int] = contextvars.ContextVar(
    "taskengine_wanted_trace_id", default=0
)


# --- configuration ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OtelConfig:
    """Where and how traces go, resolved from the settings file and the `OTEL_*` variables."""

    exporter: str  # "otlp" or "console"
    endpoint: str  # the full OTLP/HTTP traces URL
    service_name: str
    sample_ratio: float
    capture_content: bool


def otel_config(settings: Any, environ: Mapping[str, str]) -> OtelConfig | None:
    """The tracing configuration, or None when nobody asked for traces (the default)."""
    own = getattr(settings, "otel", None)
    enabled = getattr(own, "enabled", None)
    if enabled is False or environ.get("OTEL_SDK_DISABLED", "").lower() in _TRUE:
        return None
    exporter = environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    endpoint_set = bool(
        getattr(own, "endpoint", None)
        or environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        or environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    )
    asked = enabled is True or exporter in ("otlp", "console") or endpoint_set
    if not asked or (exporter == "none" and enabled is not True):
        return None
    if exporter not in ("", "otlp", "console", "none"):
        raise ConfigError(
            f"OTEL_TRACES_EXPORTER={exporter!r} is not supported; use otlp, console or none",
            key_path="OTEL_TRACES_EXPORTER",
        )
    return OtelConfig(
        exporter="console" if exporter == "console" else "otlp",
        endpoint=_traces_url(getattr(own, "endpoint", None), environ),
        service_name=getattr(own, "service_name", None)
        or environ.get("OTEL_SERVICE_NAME")
        or "taskengine",
        sample_ratio=_sample_ratio(getattr(own, "sample_ratio", None), environ),
        capture_content=bool(getattr(own, "capture_content", False))
        or environ.get("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "").lower() in _TRUE,
    )


def _traces_url(configured: str | None, environ: Mapping[str, str]) -> str:
    if configured:
        return configured.rstrip("/") + "/v1/traces"
    exact = environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    if exact:
        return exact
    base = environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or DEFAULT_ENDPOINT
    return base.rstrip("/") + "/v1/traces"


def _sample_ratio(configured: float | None, environ: Mapping[str, str]) -> float:
    if configured is not None:
        return configured
    sampler = environ.get("OTEL_TRACES_SAMPLER", "").lower()
    if sampler in ("always_off", "parentbased_always_off"):
        return 0.0
    if sampler.endswith("traceidratio"):
        raw = environ.get("OTEL_TRACES_SAMPLER_ARG", "1")
        try:
            ratio = float(raw)
        except ValueError:
            raise ConfigError(
                f"OTEL_TRACES_SAMPLER_ARG must be a number in [0, 1], got {raw!r}",
                key_path="OTEL_TRACES_SAMPLER_ARG",
            ) from None
        if not 0.0 <= ratio <= 1.0:
            raise ConfigError(
                f"OTEL_TRACES_SAMPLER_ARG must be in [0, 1], got {ratio}",
                key_path="OTEL_TRACES_SAMPLER_ARG",
            )
        return ratio
    return 1.0


def configure_tracing(settings: Any, environ: Mapping[str, str]) -> OtelObserver | None:
    """An observer exporting spans as configured, or None when tracing was not asked for."""
    config = otel_config(settings, environ)
    if config is None:
        return None
    try:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
    except ImportError as exc:
        raise ConfigError(f"{INSTALL_HINT} ({exc})") from exc
    provider = TracerProvider(
        resource=Resource.create({"service.name": config.service_name}),
        sampler=ParentBased(TraceIdRatioBased(config.sample_ratio)),
        id_generator=_run_id_generator(),
    )
    provider.add_span_processor(BatchSpanProcessor(_exporter(config)))
    from taskengine import __version__

    tracer = provider.get_tracer("taskengine", __version__)
    return OtelObserver(tracer, capture_content=config.capture_content, provider=provider)


def _exporter(config: OtelConfig) -> Any:
    if config.exporter == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter()
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    except ImportError as exc:
        raise ConfigError(f"{INSTALL_HINT} ({exc})") from exc
    return OTLPSpanExporter(endpoint=config.endpoint, timeout=10)


def _run_id_generator() -> Any:
    """Random ids, except that a run's root span takes the run id as its trace id."""
    from opentelemetry.sdk.trace.id_generator import RandomIdGenerator

    class RunIdGenerator(RandomIdGenerator):
        def generate_trace_id(self) -> int:
            return _wanted_trace_id.get() or super().generate_trace_id()

    return RunIdGenerator()


def _trace_id_of(run_id: str) -> int:
    if len(run_id) == 32:
        try:
            return int(run_id, 16)
        except ValueError:
            return 0
    return 0


# --- spans --------------------------------------------------------------------------------


def _redacted(value: Any) -> str:
    from taskengine.activity import DEFAULT_REDACTOR
    from taskengine.datatypes import to_display

    text = value if isinstance(value, str) else to_display(DEFAULT_REDACTOR.redact(value))
    return DEFAULT_REDACTOR.text(text)[:MAX_TEXT]


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
            Link(ctx, {"taskengine.link": "earlier_attempt"})
            for ctx in self._earlier.get(run.run_id, ())
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
        token = None if continued else _wanted_trace_id.set(_trace_id_of(run.run_id))
        try:
            span = self.tracer.start_span(
                f"invoke_agent {run.chain_id}", context=parent, attributes=attributes, links=links
            )
        finally:
            if token is not None:
                _wanted_trace_id.reset(token)
        spans = _RunSpans(_Scope(self.tracer, span))
        self._runs[run.run_id] = spans
        set_scope(spans.root)

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
        self._earlier[run_id] = earlier[-16:]
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
