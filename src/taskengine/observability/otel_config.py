"""Where OpenTelemetry traces go: settings and `OTEL_*` variables resolved, the tracer provider built.

`otel_config` reads the `otel:` settings and the standard variables; `configure_tracing` builds
the SDK's provider (a run's root span takes the run id as its trace id) and the observer.
"""

from __future__ import annotations

import contextvars
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from taskengine.errors import ConfigError

if TYPE_CHECKING:
    from taskengine.observability.otel import OtelObserver

__all__ = ["INSTALL_HINT", "OtelConfig", "configure_tracing", "otel_config", "trace_id_of"]

INSTALL_HINT = "OpenTelemetry traces need the otel extra: pip install 'taskengine[otel]'"
DEFAULT_ENDPOINT = "http://localhost:4318"

_TRUE = {"1", "true", "yes", "on"}
#: The trace id the next root span takes (0: a random one).
wanted_trace_id: contextvars.ContextVar[int] = contextvars.ContextVar(
    "taskenginewanted_trace_id", default=0
)


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
    from taskengine.observability.otel import OtelObserver

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
            return wanted_trace_id.get() or super().generate_trace_id()

    return RunIdGenerator()


def trace_id_of(run_id: str) -> int:
    """The trace id a run id stands for (a 32-hex run id), else 0."""
    if len(run_id) == 32:
        try:
            return int(run_id, 16)
        except ValueError:
            return 0
    return 0
