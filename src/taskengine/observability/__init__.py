"""Observability beyond logs and metrics: OpenTelemetry traces (extra `otel`).

`taskengine.observability.otel` holds the observer that turns run events into spans;
`taskengine.observability.tracing` is the tiny, dependency-free seam the hook registry and the
remote-hook client call (a tool span, a `traceparent` header), a no-op unless a tracer is active.
"""
