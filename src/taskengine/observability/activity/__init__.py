"""Activity tracking: what ran, for which request, how long it took (seed 004's KVActivitySink).

`records` holds the finished event and the request context, `tracker` the protocol and the
activities it hands out, `kv_sink` the bounded KV store with the seed's queries, `observer` the
adapter from run events. Tracking never fails the caller: problems are logged on
`taskengine.activity`. Secrets never reach the store: sensitive keys and registered values are
replaced by "***".
"""

from taskengine.observability.activity.kv_sink import KVActivitySink
from taskengine.observability.activity.observer import ActivityObserver
from taskengine.observability.activity.records import (
    Operation,
    TrackedEvent,
    TrackedRequest,
    current_request_id,
    use_request_id,
)
from taskengine.observability.activity.tracker import (
    ActivityHandle,
    ActivitySpan,
    ActivityTracker,
    NoopTracker,
    redact_values,
)
from taskengine.observability.redaction import DEFAULT_REDACTOR, Redactor, redact

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
