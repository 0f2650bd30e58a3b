"""Activity tracking: what ran, for which request, how long it took (seed 004's KVActivitySink).

`tracker.start(operation, subject, **metadata)` opens an activity used as a context manager
(`with` or `async with`); it can report an error and a changed entity, and is written as one
`TrackedEvent` when it ends. `KVActivitySink` keeps events in a KV store, bounded so the log
cannot grow without limit, and answers the seed's queries. `ActivityObserver` turns run events
into activity. Tracking never fails the caller: problems are logged on `taskengine.activity`.
Secrets never reach the store: sensitive keys and registered values are replaced by "***".
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import Coroutine, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol, Self
from urllib.parse import quote

from taskengine.datatypes import to_display
from taskengine.engine.events import RunInfo, RunObserver
from taskengine.engine.record import CapturedStateUnit
from taskengine.redaction import DEFAULT_REDACTOR, Redactor, redact, register_secret_values

if TYPE_CHECKING:
    from taskengine.datatypes import DataType
    from taskengine.kv.base import KVBatch, KVStore

__all__ = [
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

logger = logging.getLogger("taskengine.activity")

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


# --- redaction: one redactor for every sink (see taskengine.redaction) --------------------


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


# --- the KV sink --------------------------------------------------------------------------


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


def _unique(raw: Iterable[bytes]) -> list[str]:
    """Decoded ids in first-seen order (lists may repeat an id across processes)."""
    return list(dict.fromkeys(r.decode() for r in raw))


class KVActivitySink:
    """Activity tracker on a `KVStore`, bounded everywhere, with the seed's queries.

    Layout under `prefix`: `events` (newest first, at most `max_events`), `requests` (recent
    request ids, newest first, at most `max_requests`), `request:<id>` and `state:<id>` (events
    and captured steps of one request, oldest first, bounded), `operation:<op>:<subject>` (recent
    request ids per operation), and the sets `operations` and `stateful`. When a request id
    falls out of `requests`, its keys are deleted. Each event costs one KV batch (one Redis
    pipeline, one SQLite transaction); the distinct (operation, subject) pairs are as many as the
    callers create, so keep subjects to names (chains, routes), not per-item ids.
    """

    def __init__(
        self,
        kv: KVStore,
        *,
        max_events: int = 1000,
        max_requests: int = 1000,
        max_events_per_request: int = 200,
        max_states_per_request: int = 1000,
        max_requests_per_operation: int = 200,
        retention: float | None = None,
        prefix: str = "activity:",
        redactor: Redactor | None = None,
    ) -> None:
        self.kv = kv
        self.max_events = max(1, max_events)
        self.max_requests = max(1, max_requests)
        self.max_events_per_request = max(1, max_events_per_request)
        self.max_states_per_request = max(1, max_states_per_request)
        self.max_requests_per_operation = max(1, max_requests_per_operation)
        self.retention = retention
        self.prefix = prefix
        self.redactor = redactor or DEFAULT_REDACTOR
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._pending: set[asyncio.Task[None]] = set()
        self._failing = False

    def start(self, operation: str, subject: str, **metadata: Any) -> ActivitySpan:
        """Begin an activity; `request_id=` in metadata, else `current_request_id`, ties it to a request."""
        request_id = metadata.pop("request_id", None) or current_request_id.get() or ""
        event = TrackedEvent(
            id=uuid.uuid4().hex,
            operation=operation,
            subject=subject,
            start=datetime.now(UTC),
            metadata=metadata,
            request_id=str(request_id),
        )
        return ActivitySpan(self, event)

    def redact_values(self, values: Iterable[str]) -> None:
        """Register secret values this sink must mask (in addition to the defaults)."""
        self.redactor.add_values(values)

    # --- writing ----------------------------------------------------------------------------

    def _key(self, *parts: str) -> str:
        return self.prefix + ":".join(parts)

    def _op_key(self, operation: str, subject: str) -> str:
        return self._key("operation", quote(operation, safe=""), quote(subject, safe=""))

    def _note_request(self, request_id: str) -> bool:
        """True the first time this sink sees `request_id` (lately), so it is listed once."""
        if request_id in self._seen:
            self._seen.move_to_end(request_id)
            return False
        self._seen[request_id] = None
        if len(self._seen) > self.max_requests:
            self._seen.popitem(last=False)
        return True

    def _encode(self, event: TrackedEvent) -> str:
        data = event.to_dict()
        red = self.redactor
        if event.error is not None:
            data["error"] = red.text(event.error)
        if event.entity_data is not None:
            data["entityData"] = red.redact(event.entity_data)
        if event.metadata:
            data["metadata"] = red.metadata(event.metadata)
        return _dumps(data)

    async def _store(self, event: TrackedEvent) -> None:
        """Write one event in one batch; failures are logged, never raised."""
        try:
            payload = self._encode(event)
            member = _dumps([event.operation, event.subject])
            rid = event.request_id
            batch = self.kv.batch()
            batch.lpush(self._key("events"), payload).ltrim(
                self._key("events"), 0, self.max_events - 1
            )
            batch.sadd(self._key("operations"), member)
            new = False
            if rid:
                per_request = self._key("request", rid)
                batch.rpush(per_request, payload).ltrim(
                    per_request, -self.max_events_per_request, -1
                )
                if self.retention:
                    batch.expire(per_request, self.retention)
                op_key = self._op_key(event.operation, event.subject)
                batch.lpush(op_key, rid).ltrim(op_key, 0, self.max_requests_per_operation - 1)
                new = self._note_request(rid)
                if new:
                    batch.lpush(self._key("requests"), rid)
            results = await self._execute(batch, rid if new else "")
            if new:
                await self._prune(results[-1])
            self._recovered()
        except Exception as exc:
            self._failed("store an activity event", exc)

    async def record_state(self, request_id: str, step: CapturedStateUnit) -> None:
        """Append one captured step to the execution state of `request_id` (bounded, redacted)."""
        if not request_id:
            return
        try:
            payload = _dumps(self.redactor.redact(step.to_dict()))
            key = self._key("state", request_id)
            batch = self.kv.batch()
            batch.rpush(key, payload).ltrim(key, -self.max_states_per_request, -1)
            batch.sadd(self._key("stateful"), request_id)
            if self.retention:
                batch.expire(key, self.retention)
            new = self._note_request(request_id)
            if new:
                batch.lpush(self._key("requests"), request_id)
            results = await self._execute(batch, request_id if new else "")
            if new:
                await self._prune(results[-1])
            self._recovered()
        except Exception as exc:
            self._failed("record execution state", exc)

    async def _execute(self, batch: KVBatch, new_request_id: str) -> list[Any]:
        """Run a batch; if it fails, forget a request id it was to list so a later write does."""
        try:
            return await batch.execute()
        except BaseException:
            if new_request_id:
                self._seen.pop(new_request_id, None)
            raise

    async def _prune(self, listed: int) -> None:
        """Drop the oldest request ids (and their keys) once the list is over its bound.

        Some slack keeps this to one extra round trip every `max_requests // 10` new requests.
        """
        if listed <= self.max_requests + max(1, self.max_requests // 10):
            return
        key = self._key("requests")
        ids = [r.decode() for r in await self.kv.lrange(key, 0, -1)]
        keep = set(ids[: self.max_requests])
        victims = sorted(set(ids[self.max_requests :]) - keep)
        batch = self.kv.batch().ltrim(key, 0, self.max_requests - 1)
        if victims:
            batch.delete(*(self._key(kind, v) for v in victims for kind in ("request", "state")))
            batch.srem(self._key("stateful"), *victims)
        await batch.execute()

    def _submit(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run a write from sync code: as a task on the running loop, or inline without one."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if loop is not None:
            task = loop.create_task(coro)
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)
            return
        # No loop (plain sync code): memory and SQLite stores finish without suspending, so the
        # coroutine completes on its first step; a network store cannot be driven from here.
        try:
            coro.send(None)
        except StopIteration:
            return
        coro.close()
        self._failed(
            "store an activity event",
            RuntimeError("sync tracking outside an event loop needs a local KV"),
        )

    async def flush(self) -> None:
        """Wait for writes started by sync `end()` calls."""
        while self._pending:
            await asyncio.gather(*list(self._pending), return_exceptions=True)

    async def aclose(self) -> None:
        """Finish pending writes (the KV store belongs to the caller and stays open)."""
        await self.flush()

    def _failed(self, what: str, exc: BaseException) -> None:
        detail = f"{type(exc).__name__}: {self.redactor.text(str(exc))}"
        if not self._failing:
            self._failing = True
            logger.warning("activity tracking failed to %s (%s); the run goes on", what, detail)
        else:
            logger.debug("activity tracking still failing to %s (%s)", what, detail)

    def _recovered(self) -> None:
        if self._failing:
            self._failing = False
            logger.info("activity tracking recovered")

    # --- queries (seed 004) -----------------------------------------------------------------

    def _decode(self, raw: Iterable[bytes], what: str) -> Iterator[dict[str, Any]]:
        for item in raw:
            try:
                yield json.loads(item)
            except ValueError:
                logger.warning("skipping an unreadable %s entry in the activity store", what)

    def _events(self, raw: Iterable[bytes]) -> list[TrackedEvent]:
        out = []
        for data in self._decode(raw, "event"):
            try:
                out.append(TrackedEvent.from_dict(data))
            except (KeyError, TypeError, ValueError):
                logger.warning("skipping a malformed event in the activity store")
        return out

    async def get_activity_logs(self, limit: int = 100) -> list[TrackedEvent]:
        """The most recent events, newest first (`limit <= 0`: all that are kept)."""
        stop = limit - 1 if limit > 0 else -1
        return self._events(await self.kv.lrange(self._key("events"), 0, stop))

    async def get_activity_logs_by_request_id(self, request_id: str) -> list[TrackedEvent]:
        """The events of one request, oldest first."""
        return self._events(await self.kv.lrange(self._key("request", request_id), 0, -1))

    async def get_execution_state_by_request_id(self, request_id: str) -> list[CapturedStateUnit]:
        """The captured steps of one request, in execution order."""
        raw = await self.kv.lrange(self._key("state", request_id), 0, -1)
        return [CapturedStateUnit.from_dict(d) for d in self._decode(raw, "state")]

    async def get_known_operations(self) -> list[Operation]:
        """Every (operation, subject) that produced an event, sorted."""
        found = []
        for data in self._decode(await self.kv.smembers(self._key("operations")), "operation"):
            if isinstance(data, list) and len(data) == 2:
                found.append(Operation(str(data[0]), str(data[1])))
        return sorted(found, key=lambda op: (op.operation, op.subject))

    async def get_recent_request_ids(self, limit: int = 100) -> list[TrackedRequest]:
        """Recent request ids, newest first (`limit <= 0`: all that are kept)."""
        ids = _unique(await self.kv.lrange(self._key("requests"), 0, -1))[: self.max_requests]
        return [TrackedRequest(i) for i in (ids[:limit] if limit > 0 else ids)]

    async def get_request_id_by_operation(self, operation: Operation) -> list[TrackedRequest]:
        """Recent request ids that ran `operation` on its subject, newest first."""
        raw = await self.kv.lrange(self._op_key(operation.operation, operation.subject), 0, -1)
        return [TrackedRequest(i) for i in _unique(raw)]

    async def get_stateful_requests(self) -> list[str]:
        """Request ids with captured execution state, most recent first."""
        members = {m.decode() for m in await self.kv.smembers(self._key("stateful"))}
        if not members:
            return []
        order = _unique(await self.kv.lrange(self._key("requests"), 0, -1))
        ranked = [i for i in order if i in members]
        return ranked + sorted(members.difference(ranked))


# --- run events → activity ----------------------------------------------------------------


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
