"""The run store's protocol and records, shared helpers, and `open_store(url)`.

A run store keeps every run (its chain, input, status and checkpoints), so a run whose
process died can resume, plus the server's chain and remote-hook registries and the
encrypted secret blobs. SQLite is the embedded default; PostgreSQL is the shared store.
"""

from __future__ import annotations

import base64
import json
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar, runtime_checkable

from taskengine.errors import DataConversionError, RunLeaseError, StoreError
from taskengine.store.paths import (
    STORE_URL_FORMS,
    default_db_url,
    default_sqlite_file,
    sqlite_path,
)

if TYPE_CHECKING:
    from types import TracebackType

__all__ = [
    "DEFAULT_LEASE_TTL_S",
    "RUN_STATUSES",
    "SET_TASK_ID",
    "STEP_STATUSES",
    "TERMINAL_STATUSES",
    "ChainRecord",
    "Page",
    "RemoteHookRecord",
    "RunRecord",
    "RunState",
    "RunStore",
    "StepRecord",
    "default_db_url",
    "open_store",
    "run_summary",
    "run_view",
    "store_from_url",
]

RUN_STATUSES = frozenset(
    {"pending", "queued", "running", "paused", "succeeded", "failed", "interrupted"}
)
#: waiting in the queue for a worker (`taskengine submit`, async `POST /tasks`)
QUEUED = "queued"
TERMINAL_STATUSES = frozenset({"succeeded", "failed"})
STEP_STATUSES = frozenset({"succeeded", "failed"})
#: task_id of the delta rows a person writes into a paused run (`set_variables`).
SET_TASK_ID = "__set__"
#: task_id of a checkpoint that carries variables but no executed step.
VARS_TASK_ID = "__vars__"
DEFAULT_LEASE_TTL_S = 30.0
#: the largest page any `list_*` call returns, whatever limit is asked for.
MAX_PAGE = 1000

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
T = TypeVar("T")


def utcnow() -> datetime:
    return datetime.now(UTC)


def to_us(when: datetime) -> int:
    """Microseconds since the epoch, exact (naive datetimes are taken as UTC)."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    delta = when - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_us(us: int | None) -> datetime | None:
    return None if us is None else _EPOCH + timedelta(microseconds=us)


def _iso(when: datetime | None) -> str | None:
    return None if when is None else when.isoformat().replace("+00:00", "Z")


# --- records -----------------------------------------------------------------------------


@dataclass(slots=True)
class RunRecord:
    """One run: what it runs, where it stands, how it ended. Times are UTC-aware."""

    run_id: str
    chain_id: str
    #: the chain definition as a dict, so a run can resume without the original file.
    chain: dict[str, Any]
    input: Any = None
    input_type: str = "any"
    status: str = "pending"
    created_at: datetime = field(default_factory=utcnow)
    updated_at: datetime | None = None
    output: Any = None
    output_type: str | None = None
    error: dict[str, Any] | None = None
    #: the task to run next (what a resume starts with).
    next_task: str | None = None
    step_count: int = 0
    request_id: str | None = None
    #: tokens, cost, llm_ms (whatever the engine accumulates).
    totals: dict[str, Any] = field(default_factory=dict)
    retry_state: dict[str, Any] = field(default_factory=dict)
    lease_owner: str | None = None
    lease_expires_at: datetime | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.updated_at is None:
            self.updated_at = self.created_at

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape the CLI and server print (camelCase keys, ISO times)."""
        return {
            "runId": self.run_id,
            "chainId": self.chain_id,
            "status": self.status,
            "createdAt": _iso(self.created_at),
            "updatedAt": _iso(self.updated_at),
            "input": self.input,
            "inputType": self.input_type,
            "output": self.output,
            "outputType": self.output_type,
            "error": self.error,
            "nextTask": self.next_task,
            "stepCount": self.step_count,
            "requestId": self.request_id,
            "totals": self.totals,
            "leaseOwner": self.lease_owner,
            "leaseExpiresAt": _iso(self.lease_expires_at),
            "meta": self.meta,
        }


@dataclass(slots=True)
class StepRecord:
    """One checkpointed step: its CapturedStateUnit dict and the variables it set."""

    run_id: str
    seq: int
    task_id: str
    status: str
    #: a CapturedStateUnit dict; None for rows that only carry variables (`__set__`).
    step: dict[str, Any] | None
    #: {var_name: [type_name, value]}
    vars_delta: dict[str, Any]
    created_at: datetime


@dataclass(slots=True)
class RunState:
    """What a resume needs: variables folded from the input and every step's delta."""

    run: RunRecord
    variables: dict[str, Any]
    var_types: dict[str, str]
    next_task: str | None
    #: the last sequence number used; the next checkpoint uses seq + 1.
    seq: int
    status: str
    retry_state: dict[str, Any]
    #: the CapturedStateUnit dicts of the executed steps, in order.
    history: list[dict[str, Any]]


#: what run listings leave out of `RunRecord.to_dict()` (large, or internal to leases)
_SUMMARY_OMIT = ("input", "output", "leaseOwner", "leaseExpiresAt")


def run_summary(record: RunRecord) -> dict[str, Any]:
    """A run as listings show it (CLI `runs list`, `GET /runs`): runId, chainId, status …"""
    data = record.to_dict()
    for key in _SUMMARY_OMIT:
        data.pop(key, None)
    return data


def run_view(state: RunState, *, history: bool = True) -> dict[str, Any]:
    """One run as the CLI and the server show it: the record, its steps, and its variables
    with their types (the readable `ExecutionState` of a paused run)."""
    data = state.run.to_dict()
    data.pop("leaseOwner", None)
    if history:
        data["state"] = state.history
    data["variables"] = state.variables
    data["variableTypes"] = state.var_types
    return data


@dataclass(slots=True)
class ChainRecord:
    chain_id: str
    definition: dict[str, Any]
    created_at: datetime
    updated_at: datetime


@dataclass(slots=True)
class RemoteHookRecord:
    """A registered remote hook; `record` is stored as given (the server hides headers)."""

    hook_id: str
    name: str
    record: dict[str, Any]
    created_at: datetime
    updated_at: datetime


@dataclass(slots=True)
class Page(Generic[T]):
    """One page of a listing; pass `next_cursor` back to get the next one (None: last page)."""

    items: list[T]
    next_cursor: str | None = None


# --- shared helpers ----------------------------------------------------------------------

_encoder = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)
# The C encoder behind `_encoder`, built once: `JSONEncoder.encode` builds a new one on every
# call, which is a third of the cost of encoding a step row. Without the markers dict it does
# not look for cycles (a cyclic value ends in RecursionError instead, reported the same way).
# That recursion is C recursion bounded only by the recursion limit: above `_FAST_DEPTH` (a
# program that raised the limit) it could overflow the C stack first, so the checking encoder
# is used instead (CPython 3.11 takes ~100 bytes of C stack a level: 5000 levels, ~0.5 MB).
_FAST_DEPTH = 5000
_c_encode = (
    None
    if json.encoder.c_make_encoder is None
    else json.encoder.c_make_encoder(
        None, _encoder.default, json.encoder.encode_basestring, None, ":", ",", False, False, True
    )
)


def dump_json(value: Any, *, what: str, run_id: str | None = None) -> str:
    """Compact JSON, as `json.dumps(value, separators=(",", ":"), ensure_ascii=False)`."""
    try:
        if _c_encode is None or isinstance(value, str) or sys.getrecursionlimit() > _FAST_DEPTH:
            return _encoder.encode(value)
        return "".join(_c_encode(value, 0))
    except (TypeError, ValueError, RecursionError) as exc:
        if isinstance(exc, RecursionError):
            exc = ValueError("nested too deeply or circular")
        raise StoreError(f"{what} is not JSON-serializable: {exc}", run_id=run_id) from exc


def encode_cursor(*parts: Any) -> str:
    raw = _encoder.encode(list(parts)).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, types: tuple[type, ...]) -> list[Any]:
    """The parts of a cursor made by `encode_cursor`; a tampered one is an input error."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        parts = json.loads(base64.urlsafe_b64decode(padded.encode()))
        ok = isinstance(parts, list) and len(parts) == len(types)
        ok = ok and all(
            isinstance(p, t) and not isinstance(p, bool) for p, t in zip(parts, types, strict=False)
        )
    except (ValueError, TypeError):
        ok = False
    if not ok:
        raise DataConversionError(f"invalid pagination cursor {cursor[:40]!r}", field="cursor")
    return parts


def page_limit(limit: int) -> int:
    return max(1, min(int(limit), MAX_PAGE))


def check_status(status: str, *, run_id: str) -> None:
    if status not in RUN_STATUSES:
        raise StoreError(
            f"unknown run status {status!r} (expected one of {', '.join(sorted(RUN_STATUSES))})",
            run_id=run_id,
        )


def check_values(values: dict[str, Any], *, run_id: str) -> dict[str, list[Any]]:
    """`{name: (type_name, value)}` as the stored `{name: [type_name, value]}`."""
    out: dict[str, list[Any]] = {}
    for name, pair in values.items():
        if not (isinstance(pair, (tuple, list)) and len(pair) == 2 and isinstance(pair[0], str)):
            raise StoreError(
                f"variable {name!r}: expected a (type_name, value) pair, got {pair!r}",
                run_id=run_id,
                field=str(name),
            )
        out[str(name)] = [pair[0], pair[1]]
    return out


def fold_state(run: RunRecord, steps: list[StepRecord]) -> RunState:
    """Replay the variable deltas in seq order over the initial input (last write wins)."""
    variables: dict[str, Any] = {"input": run.input}
    var_types: dict[str, str] = {"input": run.input_type}
    history: list[dict[str, Any]] = []
    seq = 0
    for row in steps:
        seq = max(seq, row.seq)
        for name, pair in row.vars_delta.items():
            try:
                type_name, value = pair
            except (TypeError, ValueError) as exc:
                raise StoreError(
                    f"step {row.seq} holds a malformed value for variable {name!r}",
                    run_id=run.run_id,
                    task_id=row.task_id,
                ) from exc
            variables[name] = value
            var_types[name] = type_name
        if row.step is not None:
            history.append(row.step)
    return RunState(
        run=run,
        variables=variables,
        var_types=var_types,
        next_task=run.next_task,
        seq=seq,
        status=run.status,
        retry_state=dict(run.retry_state),
        history=history,
    )


def lease_taken(run_id: str, holder: str | None, expires: datetime | None) -> StoreError:
    left = ""
    if expires is not None:
        seconds = max(0.0, (expires - utcnow()).total_seconds())
        left = f" (its lease expires in {seconds:.1f} s)"
    return RunLeaseError(f"run {run_id} is already being resumed by {holder}{left}", run_id=run_id)


# --- the protocol ------------------------------------------------------------------------


@runtime_checkable
class RunStore(Protocol):
    """Durable runs and checkpoints, the chain and remote-hook registries, secret blobs.

    Reads report a `running` run whose lease has expired as `interrupted` (computed, not
    stored); `mark_interrupted` stores it, and also catches lease-less runs gone quiet.
    """

    backend: str

    async def open(self) -> None:
        """Connect and run pending migrations; refuse a foreign, corrupt or newer database."""

    async def aclose(self) -> None: ...

    async def __aenter__(self) -> RunStore: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    # runs
    async def create_run(self, record: RunRecord, *, lease_ttl_s: float | None = None) -> None:
        """Insert a new run; with `record.lease_owner` set the creator holds its lease."""

    async def checkpoint(
        self,
        run_id: str,
        *,
        seq: int,
        step: dict[str, Any] | None,
        step_status: str | None = "succeeded",
        vars_delta: dict[str, Any] | None = None,
        next_task: str | None,
        status: str,
        retry_state: dict[str, Any] | None = None,
        totals: dict[str, Any] | None = None,
        owner: str | None = None,
    ) -> None:
        """One transaction: the step row (when there is a step or a delta) and the run row.

        With `owner`, fails with RunLeaseError when someone else took over the lease.
        """

    async def finish_run(
        self,
        run_id: str,
        *,
        status: str,
        output: Any = None,
        output_type: str | None = None,
        error: dict[str, Any] | None = None,
        totals: dict[str, Any] | None = None,
        owner: str | None = None,
    ) -> None:
        """Record how the run ended and release its lease (with `owner`: only while holding it)."""

    async def set_variables(
        self, run_id: str, values: dict[str, Any], *, owner: str | None = None
    ) -> int:
        """Append a `__set__` delta row (a person edits a paused run); returns its seq.

        Refuses (RunLeaseError) while anyone but `owner` holds a live lease: an edit must not
        take the seq the lease holder's next checkpoint will use. Without `owner` that means
        any live lease.
        """

    async def get_run(self, run_id: str) -> RunRecord: ...

    async def list_runs(
        self,
        *,
        limit: int = 50,
        cursor: str | None = None,
        status: str | None = None,
        chain_id: str | None = None,
    ) -> Page[RunRecord]:
        """Newest first."""

    async def get_steps(self, run_id: str) -> list[StepRecord]: ...

    async def load_state(self, run_id: str) -> RunState: ...

    async def mark_interrupted(self, older_than_s: float) -> list[str]:
        """Store `interrupted` on running runs whose lease expired, or that hold no lease
        and have not checkpointed for `older_than_s`; returns their ids, sorted.

        A lease-less run cannot tell "alive but slow" from "dead": pick `older_than_s`
        well above the longest step, or create runs holding a lease.
        """

    # leases
    async def acquire_lease(
        self, run_id: str, owner: str, ttl_s: float, *, replacing: str | None = None
    ) -> datetime:
        """Take the run's lease if it is free, expired, ours, or held by `replacing` (a dead owner)."""
        ...

    async def renew_lease(self, run_id: str, owner: str, ttl_s: float) -> datetime: ...

    async def release_lease(self, run_id: str, owner: str) -> bool: ...

    # chains
    async def put_chain(
        self,
        chain_id: str,
        definition: dict[str, Any],
        *,
        create_only: bool = False,
        must_exist: bool = False,
    ) -> ChainRecord: ...

    async def get_chain(self, chain_id: str) -> ChainRecord: ...

    async def list_chains(
        self, *, limit: int = 50, cursor: str | None = None
    ) -> Page[ChainRecord]: ...

    async def delete_chain(self, chain_id: str) -> None: ...

    # secrets
    async def put_secret(self, name: str, ciphertext: bytes, key_id: str) -> None: ...

    async def get_secret(self, name: str) -> tuple[bytes, str] | None: ...

    async def list_secret_names(self) -> list[str]: ...

    async def delete_secret(self, name: str) -> bool: ...

    async def replace_all_secrets(self, items: dict[str, tuple[bytes, str]]) -> None: ...

    # remote hooks
    async def put_remote_hook(
        self, hook_id: str, record: dict[str, Any], *, create_only: bool = False
    ) -> RemoteHookRecord: ...

    async def get_remote_hook(self, hook_id: str) -> RemoteHookRecord: ...

    async def get_remote_hook_by_name(self, name: str) -> RemoteHookRecord: ...

    async def list_remote_hooks(
        self, *, limit: int = 100, cursor: str | None = None
    ) -> Page[RemoteHookRecord]: ...

    async def delete_remote_hook(self, hook_id: str) -> None: ...


class StoreBase:
    """What every backend shares: async context management and `load_state`."""

    backend = "base"

    async def open(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    async def aclose(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    async def __aenter__(self):
        await self.open()
        return self

    async def __aexit__(self, exc_type, exc, tb) -> None:
        await self.aclose()


def hook_name(record: dict[str, Any], hook_id: str) -> str:
    name = record.get("name")
    if not isinstance(name, str) or not name:
        raise StoreError(f"remote hook {hook_id!r} needs a non-empty 'name'", field="name")
    return name


# --- opening -----------------------------------------------------------------------------


def store_from_url(url: str | None = None) -> RunStore:
    """An unopened store for `url` (default: `default_db_url()`)."""
    url = url or default_db_url()
    if "://" not in url:
        url = f"sqlite:///{sqlite_path(url)}"
    scheme = url.split(":", 1)[0].lower()
    if scheme == "sqlite":
        from taskengine.store.sqlite import SQLiteRunStore

        path = sqlite_path(url)
        return SQLiteRunStore(path, create_tree=path == default_sqlite_file())
    if scheme in ("postgresql", "postgres") or scheme.startswith("postgresql+"):
        from taskengine.store.postgres import PostgresRunStore

        return PostgresRunStore(url)
    raise StoreError(f"unsupported store URL {url!r}: use {STORE_URL_FORMS}")


async def open_store(url: str | None = None) -> RunStore:
    """An opened store for `url` (migrated and ready); close it with `aclose()`."""
    store = store_from_url(url)
    await store.open()
    return store
