"""`KVActivitySink`: activity kept in a KV store, bounded, with the seed's queries (seed 004).

Tracking never fails the caller: problems are logged on `taskengine.activity`. Secrets never
reach the store: sensitive keys and registered values are replaced by "***".
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import OrderedDict
from collections.abc import Coroutine, Iterable, Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from taskengine.engine.record import CapturedStateUnit
from taskengine.ids import new_id
from taskengine.observability.activity.records import (
    Operation,
    TrackedEvent,
    TrackedRequest,
    current_request_id,
)
from taskengine.observability.activity.tracker import ActivitySpan
from taskengine.observability.redaction import DEFAULT_REDACTOR, Redactor

if TYPE_CHECKING:
    from taskengine.kv.base import KVBatch, KVStore

__all__ = ["KVActivitySink"]

logger = logging.getLogger("taskengine.activity")


#: built once: `json.dumps` with options builds an encoder per call (~1.3 µs of ~4.5 per event)
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str)


def _dumps(value: Any) -> str:
    return _ENCODER.encode(value)


#: distinct (operation, subject) pairs whose keys `_op_keys_of` keeps built
_MAX_CACHED_OPERATIONS = 1024


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
        # keys written on every event, built once
        self._events_key = self._key("events")
        self._operations_key = self._key("operations")
        self._requests_key = self._key("requests")
        self._stateful_key = self._key("stateful")
        #: (operation, subject) -> (its request list's key, its `operations` member)
        self._op_keys: dict[tuple[str, str], tuple[str, str]] = {}
        self._pending: set[asyncio.Task[None]] = set()
        self._failing = False

    def start(self, operation: str, subject: str, **metadata: Any) -> ActivitySpan:
        """Begin an activity; `request_id=` in metadata, else `current_request_id`, ties it to a request."""
        request_id = metadata.pop("request_id", None) or current_request_id.get() or ""
        event = TrackedEvent(
            id=new_id(),
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

    def _op_keys_of(self, operation: str, subject: str) -> tuple[str, str]:
        """`_op_key` and the JSON member of `operations`, built once per pair (bounded)."""
        pair = (operation, subject)
        found = self._op_keys.get(pair)
        if found is None:
            if len(self._op_keys) >= _MAX_CACHED_OPERATIONS:
                self._op_keys.clear()
            found = self._op_keys[pair] = (
                self._op_key(operation, subject),
                _dumps([operation, subject]),
            )
        return found

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
            op_key, member = self._op_keys_of(event.operation, event.subject)
            rid = event.request_id
            batch = self.kv.batch()
            events = self._events_key
            batch.lpush(events, payload).ltrim(events, 0, self.max_events - 1)
            batch.sadd(self._operations_key, member)
            new = False
            if rid:
                per_request = self._key("request", rid)
                batch.rpush(per_request, payload).ltrim(
                    per_request, -self.max_events_per_request, -1
                )
                if self.retention:
                    batch.expire(per_request, self.retention)
                batch.lpush(op_key, rid).ltrim(op_key, 0, self.max_requests_per_operation - 1)
                new = self._note_request(rid)
                if new:
                    batch.lpush(self._requests_key, rid)
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
            batch.sadd(self._stateful_key, request_id)
            if self.retention:
                batch.expire(key, self.retention)
            new = self._note_request(request_id)
            if new:
                batch.lpush(self._requests_key, request_id)
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
        found: list[Operation] = []
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
