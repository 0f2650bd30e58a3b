"""Enqueueing: a run record with status `queued` and its job, written in one transaction.

Everything a run could refuse (an invalid chain, an unknown breakpoint, an input of the
wrong type or size) is checked here, before anything is stored, so a queued run only fails
for reasons a worker meets while running it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from time import monotonic
from typing import TYPE_CHECKING, Any

from taskengine.datatypes import DataType, convert_to_type, to_jsonable
from taskengine.errors import DefinitionError, StoreError, TaskEngineError
from taskengine.ids import new_id
from taskengine.store.base import QUEUED, TERMINAL_STATUSES, RunRecord

if TYPE_CHECKING:
    from taskengine.chain import TaskChainDefinition
    from taskengine.engine import SimpleEnv
    from taskengine.workers.app import QueueApp

__all__ = ["queued_record", "submit_run", "wait_for_run"]


def queued_record(
    env: SimpleEnv,
    chain: TaskChainDefinition | dict[str, Any] | str,
    input: Any,
    input_type: DataType | str = DataType.STRING,
    *,
    run_id: str | None = None,
    request_id: str | None = None,
    breakpoints: Iterable[str] = (),
) -> RunRecord:
    """The run record a worker will resume, after every check `exec_env` would make."""
    from taskengine.engine import _check_input_size

    definition = env._checked(chain)
    dtype = DataType.from_string(input_type)
    points = list(breakpoints)
    unknown = sorted(set(points) - {t.id for t in definition.tasks})
    if unknown:
        raise DefinitionError(
            f"breakpoint on unknown task {unknown[0]!r}; tasks: "
            f"{', '.join(t.id for t in definition.tasks)}",
            chain_id=definition.id or None,
            field="breakpoints",
        )
    try:
        value = convert_to_type(input, dtype)
        if env.max_input_bytes:
            _check_input_size(value, env.max_input_bytes)
    except TaskEngineError as exc:
        raise exc.with_context(chain_id=definition.id or None, field="input") from None
    return RunRecord(
        run_id=run_id or new_id(),
        chain_id=definition.id,
        status=QUEUED,
        chain=definition.model_dump(mode="json", exclude_none=True, exclude_unset=True),
        input=to_jsonable(value),
        input_type=dtype.type_name,
        request_id=request_id or None,
        meta={"breakpoints": points} if points else {},
        next_task=definition.tasks[0].id,
    )


async def submit_run(
    env: SimpleEnv,
    queue: QueueApp,
    chain: TaskChainDefinition | dict[str, Any] | str,
    input: Any,
    input_type: DataType | str = DataType.STRING,
    *,
    run_id: str | None = None,
    request_id: str | None = None,
    breakpoints: Iterable[str] = (),
    queue_name: str | None = None,
) -> str:
    """Store the run as `queued` and enqueue its job atomically; returns the run id."""
    store = env.store
    if store is None or getattr(store, "backend", "") != "postgres":
        raise StoreError("queued runs need the PostgreSQL run store (TASKENGINE_DB=postgresql://…)")
    record = queued_record(
        env,
        chain,
        input,
        input_type,
        run_id=run_id,
        request_id=request_id,
        breakpoints=breakpoints,
    )
    name = queue_name or queue.settings.name

    async def enqueue(conn: Any) -> None:
        deferrer = queue.run_task.configure(queue=name, connection=conn)
        await deferrer.defer_async(run_id=record.run_id)

    await store.create_run(record, then=enqueue)
    return record.run_id


async def wait_for_run(store: Any, run_id: str, *, timeout: float | None = None) -> Any:
    """Poll the store until the run succeeds, fails or pauses; returns its `RunRecord`."""
    deadline = None if timeout is None else monotonic() + timeout
    delay = 0.02
    while True:
        record = await store.get_run(run_id)
        if record.status in TERMINAL_STATUSES or record.status == "paused":
            return record
        if deadline is not None and monotonic() > deadline:
            raise StoreError(
                f"run {run_id} is still {record.status} after {timeout:g} s", run_id=run_id
            )
        await asyncio.sleep(delay)
        delay = min(delay * 1.5, 0.5)
