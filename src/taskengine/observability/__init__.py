"""Observability: activity tracking, OpenTelemetry traces (extra `otel`), and their seams.

- `taskengine.observability.activity`: what ran for which request (seed 004's KVActivitySink).
- `taskengine.observability.otel`: the observer that turns run events into spans;
  `otel_config` resolves where traces go and builds the tracer provider.
- `taskengine.observability.tracing`: the tiny, dependency-free seam the hook registry and the
  remote-hook client call (a tool span, a `traceparent` header), a no-op unless a tracer is active.

- `redaction` (the one redactor), `logs` (logging set-up, the redacting filter), `metrics`
  (Prometheus metrics, costs); `taskengine.redaction`, `taskengine.logs` and
  `taskengine.metrics` re-export them at their historical paths.
"""
