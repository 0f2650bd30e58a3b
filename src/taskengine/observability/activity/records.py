"""Activity records: the finished event, the operation and request keys, the request context.

`current_request_id` is the request being served (the server sets it per HTTP request, the
engine per run); `TrackedEvent` is one finished activity, serialised with the Go engine's JSON
keys (`entityID`, `entityData`, `requestID`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

__all__ = [
    "Operation",
    "TrackedEvent",
    "TrackedRequest",
    "current_request_id",
    "use_request_id",
]

#: The request being served; the server sets it per HTTP request, the engine per run.
current_request_id: ContextVar[str | None] = ContextVar("taskengine_request_id", default=None)


@contextmanager
def use_request_id(request_id: str | None) -> Iterator[None]:
    """Set `current_request_id` for the block, restoring the previous value after."""
    token = current_request_id.set(request_id)
    try:
        yield
    finally:
        current_request_id.reset(token)


# --- records ------------------------------------------------------------------------------


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


@dataclass(slots=True)
class TrackedEvent:
    """One finished activity (JSON keys as in the Go engine; duration in ms)."""

    id: str
    operation: str
    subject: str
    start: datetime
    end: datetime | None = None
    error: str | None = None
    entity_id: str | None = None
    entity_data: Any = None
    duration_ms: float = 0.0
    metadata: dict[str, str] = field(default_factory=dict)
    request_id: str = ""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "operation": self.operation,
            "subject": self.subject,
            "start": _iso(self.start),
        }
        if self.end is not None:
            out["end"] = _iso(self.end)
        if self.error is not None:
            out["error"] = self.error
        if self.entity_id is not None:
            out["entityID"] = self.entity_id
        if self.entity_data is not None:
            out["entityData"] = self.entity_data
        out["duration"] = round(self.duration_ms, 3)
        if self.metadata:
            out["metadata"] = self.metadata
        if self.request_id:
            out["requestID"] = self.request_id
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrackedEvent:
        end = data.get("end")
        return cls(
            id=data["id"],
            operation=data.get("operation", ""),
            subject=data.get("subject", ""),
            start=datetime.fromisoformat(data["start"]),
            end=datetime.fromisoformat(end) if end else None,
            error=data.get("error"),
            entity_id=data.get("entityID"),
            entity_data=data.get("entityData"),
            duration_ms=float(data.get("duration") or 0.0),
            metadata=dict(data.get("metadata") or {}),
            request_id=data.get("requestID", ""),
        )


@dataclass(slots=True, frozen=True)
class Operation:
    """An operation on a kind of subject (`exec_chain` on chain `triage`)."""

    operation: str
    subject: str

    def to_dict(self) -> dict[str, str]:
        return {"operation": self.operation, "subject": self.subject}


@dataclass(slots=True, frozen=True)
class TrackedRequest:
    """A request id that produced activity."""

    id: str

    def to_dict(self) -> dict[str, str]:
        return {"id": self.id}
