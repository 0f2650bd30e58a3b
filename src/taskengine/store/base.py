"""The run store's protocol (`RunStore`) and what every backend builds on (`StoreBase`).

A run store keeps every run (its chain, input, status and checkpoints), so a run whose
process died can resume, plus the server's chain and remote-hook registries and the
encrypted secret blobs. SQLite is the embedded default; PostgreSQL is the shared store.

The records and statuses live in `store.records`, the shared JSON and paging helpers in
`store.codec`, the shared rules in `store.rules`, and `open_store` in `store.opening`; this
module re-exports them, so `from taskengine.store.base import RunRecord, dump_json, …` works.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from taskengine.store.codec import (
    decode_cursor,
    dump_json,
    dump_optional,
    encode_cursor,
    page_limit,
    page_of,
)
from taskengine.store.opening import open_store, store_from_url
from taskengine.store.paths import default_db_url
from taskengine.store.records import (
    DEFAULT_LEASE_TTL_S,
    MAX_PAGE,
    QUEUED,
    RUN_STATUSES,
    SET_TASK_ID,
    STEP_STATUSES,
    TERMINAL_STATUSES,
    VARS_TASK_ID,
    ChainRecord,
    Page,
    RemoteHookRecord,
    RunRecord,
    RunState,
    StepRecord,
    from_us,
    run_summary,
    run_view,
    to_us,
    utcnow,
)
from taskengine.store.rules import (
    check_status,
    check_values,
    fold_state,
    hook_name,
    lease_taken,
)

if TYPE_CHECKING:
    from datetime import datetime
    from types import TracebackType

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
    "RunStore",
    "StepRecord",
    "StoreBase",
    "check_status",
    "check_values",
    "decode_cursor",
    "default_db_url",
    "dump_json",
    "dump_optional",
    "encode_cursor",
    "fold_state",
    "from_us",
    "hook_name",
    "lease_taken",
    "open_store",
    "page_limit",
    "page_of",
    "run_summary",
    "run_view",
    "store_from_url",
    "to_us",
    "utcnow",
]


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

    async def append_meta(
        self, run_id: str, key: str, item: Any, *, keep: int, owner: str | None = None
    ) -> None:
        """Append `item` to the list `meta[key]` of the run's record, keeping its last `keep`.

        With `owner`, fails with RunLeaseError unless that owner holds the run's lease.
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
    """What every backend builds on: `async with store:` opens it and closes it."""

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
