"""Durable runs: run records, leases, and resuming a run from its last checkpoint.

`SimpleEnv` mixes this in. Every run or resume call holds its own lease token
(`host:pid:…:nonce`), renewed by full checkpoints and a heartbeat; a lease held by a process
of this host that no longer exists is taken over at once rather than after its TTL.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable, Iterable
from contextvars import ContextVar
from time import time
from typing import TYPE_CHECKING, Any

from taskengine.chain import TaskChainDefinition, load_chain
from taskengine.datatypes import DataType, convert_to_type, to_jsonable
from taskengine.errors import (
    ConflictError,
    RunLeaseError,
    TaskEngineError,
    TaskExecutionError,
    as_engine_error,
)
from taskengine.events import RunInfo
from taskengine.inspector import CapturedStateUnit, ExecutionState, SimpleStackTrace
from taskengine.results import RunResult
from taskengine.store.base import DEFAULT_LEASE_TTL_S

if TYPE_CHECKING:
    from taskengine.engine import EventCallback
    from taskengine.plan import Observers, Step

__all__ = [
    "DEFAULT_LEASE_TTL",
    "DurableRuns",
    "failed_run_status",
    "failed_status",
    "new_owner",
    "record_quietly",
]

#: what a failing run's record reads in the current task: `failed`, or `queued` when a queue
#: worker will try it again. Set by the worker around one job, so no reader ever sees a
#: `failed` that a retry is about to undo.
failed_run_status: ContextVar[Callable[[TaskEngineError], str] | None] = ContextVar(
    "failed_run_status", default=None
)


def failed_status(error: TaskEngineError) -> str:
    """The status a run that ends with `error` is recorded with (see `failed_run_status`)."""
    status_of = failed_run_status.get()
    return "failed" if status_of is None else status_of(error)


#: seconds a crashed process keeps its runs: the one default of the stores, SimpleEnv,
#: TaskExecutor and `limits.lease_ttl`
DEFAULT_LEASE_TTL = DEFAULT_LEASE_TTL_S

logger = logging.getLogger("taskengine.engine")


def new_owner() -> str:
    """This process's lease owner prefix: host and pid, so a dead owner can be recognised."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class DurableRuns:
    """Run-store side of `SimpleEnv`: create records, hold leases, resume runs."""

    store: Any
    owner: str
    lease_ttl: float

    async def resume(
        self,
        run_id: str,
        *,
        set_vars: dict[str, Any] | None = None,
        on_event: EventCallback | None = None,
        breakpoints: Iterable[str] | None = None,
    ) -> RunResult:
        """Continue a run from its last checkpoint (after a crash, a pause, or a failure).

        Holds a lease while running, so a second resumer is told the run is already being resumed.
        `set_vars` changes variables first (a person in the loop editing a paused run).
        """
        if self.store is None:
            raise TaskExecutionError("resume needs a run store (SimpleEnv(store=…))", run_id=run_id)
        store = self.store
        record = await store.get_run(run_id)
        if record.status == "succeeded" and set_vars:
            raise ConflictError(
                f"run {run_id} already succeeded; there is nothing to resume with changed variables",
                run_id=run_id,
            )
        if record.status == "succeeded":
            state = await self._stored_history(run_id)
            output_type = DataType.from_string(record.output_type or "any")
            return RunResult(
                run_id=run_id,
                chain_id=record.chain_id,
                status="succeeded",
                output=convert_to_type(record.output, output_type),
                output_type=output_type,
                state=state,
                totals=dict(record.totals or {}),
            )
        owner = self._lease_token()
        await self._take_lease(record, owner)
        try:
            chain = load_chain(record.chain, extra_handlers=self._custom_handlers())
            if set_vars:
                await store.set_variables(
                    run_id,
                    {k: (_type_of(v).type_name, to_jsonable(v)) for k, v in set_vars.items()},
                    owner=owner,
                )
            saved = await store.load_state(run_id)
            variables: dict[str, Any] = {}
            types: dict[str, DataType] = {}
            for name, value in saved.variables.items():
                dtype = DataType.from_string(saved.var_types.get(name, "any"))
                variables[name] = convert_to_type(value, dtype)
                types[name] = dtype
            history = [CapturedStateUnit.from_dict(s) for s in saved.history]
            last_ok = next(
                (u.task_id for u in reversed(history) if not u.error and u.task_id in variables),
                None,
            )
            if "previous_output" not in variables:  # unless a person set it with --set
                source = last_ok or "input"
                variables["previous_output"] = variables.get(source)
                types["previous_output"] = types.get(source, DataType.ANY)
            next_task = saved.next_task
            run = RunInfo(
                run_id=run_id,
                chain_id=record.chain_id,
                request_id=record.request_id or "",
                started_at=time(),
                totals=dict(record.totals or {}),
            )
            stored_breaks = (record.meta or {}).get("breakpoints", [])
            points = set(breakpoints if breakpoints is not None else stored_breaks)
            observers = self._observers(on_event)
            try:
                for fn in observers.on_run_start:
                    await fn(
                        run=run,
                        input=variables.get("input"),
                        input_type=types.get("input", DataType.ANY),
                    )
            except Exception as raw:
                exc = as_engine_error(raw).with_context(
                    chain_id=record.chain_id or None, run_id=run_id
                )
                await self._fail(run, exc, observers, owner)
                if exc is raw:
                    raise
                raise exc from raw
            if next_task is None:
                return await self._finish(run, variables, types, history, observers, owner)
            retry_state = saved.retry_state or {}
            return await self._drive(
                self._plan(chain),
                run,
                variables,
                types,
                next_task,
                history,
                saved.seq,
                points,
                observers,
                None,
                skip_break=next_task if record.status == "paused" else None,
                # only the attempts of the very step that was in flight (not an earlier visit)
                start_attempt=int(retry_state.get("attempt", 0))
                if retry_state.get("task") == next_task and retry_state.get("seq") == saved.seq + 1
                else 0,
                owner=owner,
            )
        finally:
            await store.release_lease(run_id, owner)

    async def _pause(
        self,
        run: RunInfo,
        step: Step,
        variables: dict[str, Any],
        types: dict[str, DataType],
        history: list[CapturedStateUnit],
        seq: int,
        stack: Any,
        obs: Observers,
        owner: str,
    ) -> RunResult:
        if stack is not None and isinstance(stack, SimpleStackTrace):
            stack.set_current_state(ExecutionState(dict(variables), dict(types), step.task))
        if self.store is not None:
            await self.store.checkpoint(
                run.run_id,
                seq=seq,
                step=None,
                step_status=None,
                vars_delta={},
                next_task=step.id,
                status="paused",
                owner=owner,
            )
            await self.store.release_lease(run.run_id, owner)
        for fn in obs.on_run_end:
            await fn(run=run, status="paused", output=None, output_type=DataType.NIL, error=None)
        return RunResult(
            run_id=run.run_id,
            chain_id=run.chain_id,
            status="paused",
            output=variables.get("previous_output"),
            output_type=types.get("previous_output", DataType.ANY),
            state=history,
            totals=run.totals,
            paused_at=step.id,
        )

    async def _finish(
        self,
        run: RunInfo,
        variables: dict[str, Any],
        types: dict[str, DataType],
        history: list[CapturedStateUnit],
        obs: Observers,
        owner: str | None = None,
    ) -> RunResult:
        output = variables.get("previous_output")
        output_type = types.get("previous_output", DataType.ANY)
        if self.store is not None:
            await self.store.finish_run(
                run.run_id,
                status="succeeded",
                output=to_jsonable(output),
                output_type=output_type.type_name,
                error=None,
                totals=run.totals,
                owner=owner,
            )
        for fn in obs.on_run_end:
            await fn(
                run=run, status="succeeded", output=output, output_type=output_type, error=None
            )
        return RunResult(
            run_id=run.run_id,
            chain_id=run.chain_id,
            status="succeeded",
            output=output,
            output_type=output_type,
            state=history,
            totals=run.totals,
        )

    async def _fail(
        self, run: RunInfo, error: TaskEngineError, obs: Observers, owner: str | None = None
    ) -> None:
        # A run whose lease went to another process is theirs now: leave its record alone.
        if self.store is not None and not isinstance(error, RunLeaseError):
            await record_quietly(
                self.store.finish_run(
                    run.run_id,
                    status=failed_status(error),
                    output=None,
                    output_type=None,
                    error=error.to_dict(),
                    totals=run.totals,
                    owner=owner,
                )
            )
        for fn in obs.on_run_end:
            await fn(run=run, status="failed", output=None, output_type=DataType.NIL, error=error)

    def _lease_token(self) -> str:
        """A lease owner for one run or resume call: host and pid (to spot dead owners), then unique."""
        return f"{self.owner}:{uuid.uuid4().hex[:8]}"

    async def _take_lease(self, record: Any, owner: str) -> None:
        """Take the run's lease; a lease held by a process of this host that no longer exists is taken over."""
        try:
            await self.store.acquire_lease(record.run_id, owner, self.lease_ttl)
        except RunLeaseError:
            holder = record.lease_owner or ""
            if not _owner_is_dead(holder):
                raise
            logger.warning(
                "run %s: taking over the lease of %s, which is no longer running",
                record.run_id,
                holder,
            )
            await self.store.acquire_lease(record.run_id, owner, self.lease_ttl, replacing=holder)

    # --- the loop ----------------------------------------------------------------------------

    async def _heartbeat(self, run_id: str, owner: str) -> None:
        """Renew the lease while a (possibly long) step runs; full checkpoints renew it too."""
        interval = max(self.lease_ttl / 3, 0.05)
        while True:
            await asyncio.sleep(interval)
            try:
                await self.store.renew_lease(run_id, owner, self.lease_ttl)
            except TaskEngineError as exc:
                logger.warning(
                    "run %s: could not renew its lease: %s", run_id, exc, extra={"run_id": run_id}
                )
                return

    async def _create_run(
        self,
        run: RunInfo,
        chain: TaskChainDefinition,
        value: Any,
        data_type: DataType,
        breakpoints: list[str],
        owner: str,
    ) -> None:
        from taskengine.store.base import RunRecord

        now = _utcnow()
        await self.store.create_run(
            RunRecord(
                run_id=run.run_id,
                chain_id=chain.id,
                status="running",
                created_at=now,
                updated_at=now,
                chain=chain.model_dump(mode="json", exclude_none=True, exclude_unset=True),
                input=to_jsonable(value),
                input_type=data_type.type_name,
                request_id=run.request_id or None,
                meta={"breakpoints": breakpoints} if breakpoints else {},
                lease_owner=owner,
                next_task=chain.tasks[0].id,
            ),
            lease_ttl_s=self.lease_ttl,
        )

    async def _stored_history(self, run_id: str) -> list[CapturedStateUnit]:
        return [
            CapturedStateUnit.from_dict(row)
            for row in (await self.store.load_state(run_id)).history
        ]


def _owner_is_dead(holder: str) -> bool:
    """True when a lease holder (`host:pid:…`) is a process of this host that has exited."""
    parts = holder.split(":")
    if len(parts) < 2 or parts[0] != socket.gethostname() or not parts[1].isdigit():
        return False
    pid = int(parts[1])
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _type_of(value: Any) -> DataType:
    if isinstance(value, bool):
        return DataType.BOOL
    if isinstance(value, int):
        return DataType.INT
    if isinstance(value, float):
        return DataType.FLOAT
    if isinstance(value, str):
        return DataType.STRING
    if value is None:
        return DataType.NIL
    return DataType.JSON


def _utcnow():
    from datetime import UTC, datetime

    return datetime.now(UTC)


async def record_quietly(awaitable: Awaitable[Any]) -> None:
    """Await a bookkeeping write whose failure must not hide the run's own outcome."""
    try:
        await awaitable
    except Exception:  # the run's own error matters more than a failed bookkeeping write
        logger.exception("could not record the end of a run")
