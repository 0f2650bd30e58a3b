"""The tracker protocol and its activities: `NoopTracker`, `ActivityHandle`, `ActivitySpan`.

`tracker.start(operation, subject, **metadata)` opens an activity used as a context manager
(`with` or `async with`); it can report an error and a changed entity, and is written as one
`TrackedEvent` when it ends.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol, Self

from taskengine.observability.activity.records import TrackedEvent
from taskengine.observability.redaction import register_secret_values

if TYPE_CHECKING:
    from taskengine.observability.activity.kv_sink import KVActivitySink

__all__ = [
    "ActivityHandle",
    "ActivitySpan",
    "ActivityTracker",
    "NoopTracker",
    "redact_values",
]


def redact_values(values: Iterable[Any]) -> None:
    """Register secret values (of any type) that must never be stored."""
    register_secret_values(values)


# --- the tracker protocol -----------------------------------------------------------------


class ActivityHandle:
    """One activity in progress, ended by `end()`/`aend()` or by leaving its `with` block.

    An exception escaping the block is reported as the activity's error (and still raised).
    This base class records nothing: it is what `NoopTracker` hands out.
    """

    __slots__ = ()

    def report_error(self, err: BaseException | str) -> None:
        return None

    def report_change(self, entity_id: str, entity_data: Any) -> None:
        return None

    def add_metadata(self, **values: Any) -> None:
        return None

    def end(self) -> None:
        return None

    async def aend(self) -> None:
        return None

    def _escaped(self, exc: BaseException) -> None:
        return None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        if exc is not None:
            self._escaped(exc)
        self.end()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        if exc is not None:
            self._escaped(exc)
        await self.aend()


class ActivityTracker(Protocol):
    """Starts activities (seed 004's `Start(ctx, operation, subject, kvArgs...)`)."""

    def start(self, operation: str, subject: str, **metadata: Any) -> ActivityHandle: ...


_NOOP_HANDLE = ActivityHandle()


class NoopTracker:
    """Tracks nothing, at (almost) no cost."""

    __slots__ = ()

    def start(self, operation: str, subject: str, **metadata: Any) -> ActivityHandle:
        return _NOOP_HANDLE


class ActivitySpan(ActivityHandle):
    """An activity of a `KVActivitySink`; written to the store once, when it ends."""

    __slots__ = ("_done", "_sink", "_t0", "event")

    def __init__(self, sink: KVActivitySink, event: TrackedEvent) -> None:
        self._sink = sink
        self.event = event
        self._t0 = time.perf_counter()
        self._done = False

    def report_error(self, err: BaseException | str) -> None:
        self.event.error = err if isinstance(err, str) else (str(err) or type(err).__name__)

    def report_change(self, entity_id: str, entity_data: Any) -> None:
        self.event.entity_id = entity_id
        self.event.entity_data = entity_data

    def add_metadata(self, **values: Any) -> None:
        self.event.metadata.update(values)

    def _escaped(self, exc: BaseException) -> None:
        if self.event.error is None:
            self.report_error(exc)

    def _finish(self) -> bool:
        if self._done:
            return False
        self._done = True
        self.event.end = datetime.now(UTC)
        self.event.duration_ms = (time.perf_counter() - self._t0) * 1000.0
        return True

    def end(self) -> None:
        """End now; the write runs in the background (`await sink.flush()` to wait for it)."""
        if self._finish():
            self._sink._submit(self._sink._store(self.event))

    async def aend(self) -> None:
        """End now and wait until the event is written (or the failure is logged)."""
        if self._finish():
            await self._sink._store(self.event)
