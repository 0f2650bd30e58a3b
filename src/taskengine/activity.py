"""Activity tracking, kept at its historical path: see `taskengine.observability.activity`."""

from taskengine.observability.activity import (
    DEFAULT_REDACTOR,
    ActivityHandle,
    ActivityObserver,
    ActivitySpan,
    ActivityTracker,
    KVActivitySink,
    NoopTracker,
    Operation,
    Redactor,
    TrackedEvent,
    TrackedRequest,
    current_request_id,
    redact,
    redact_values,
    use_request_id,
)

__all__ = [
    "DEFAULT_REDACTOR",
    "ActivityHandle",
    "ActivityObserver",
    "ActivitySpan",
    "ActivityTracker",
    "KVActivitySink",
    "NoopTracker",
    "Operation",
    "Redactor",
    "TrackedEvent",
    "TrackedRequest",
    "current_request_id",
    "redact",
    "redact_values",
    "use_request_id",
]
