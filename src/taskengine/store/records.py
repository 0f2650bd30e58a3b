"""The run store's records and statuses: what a store keeps and hands back.

`RunRecord` (one run), `StepRecord` (one checkpointed step), `RunState` (what a resume
needs), the registry records, `Page` (one page of a listing), the run statuses, the exact
microsecond time conversion the SQLite store keeps times in, and the two JSON views of a
run the CLI and server print (`run_summary`, `run_view`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Generic, TypeVar, overload

__all__ = [
    "DEFAULT_LEASE_TTL_S",
    "MAX_PAGE",
    "QUEUED",
    "RUN_STATUSES",
    "SET_TASK_ID",
    "STEP_STATUSES",
    "TERMINAL_STATUSES",
    "VARS_TASK_ID",
    "ChainRecord",
    "Page",
    "RemoteHookRecord",
    "RunRecord",
    "RunState",
    "StepRecord",
    "from_us",
    "run_summary",
    "run_view",
    "to_us",
    "utcnow",
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
    """Now, UTC-aware."""
    return datetime.now(UTC)


def to_us(when: datetime) -> int:
    """Microseconds since the epoch, exact (naive datetimes are taken as UTC)."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    delta = when - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


@overload
def from_us(us: int) -> datetime: ...


@overload
def from_us(us: None) -> None: ...


def from_us(us: int | None) -> datetime | None:
    """The UTC datetime of `to_us`'s microseconds (None stays None)."""
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
    """A stored chain (the server's chain registry): its definition as a dict."""

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
