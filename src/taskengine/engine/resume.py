"""Resuming a durable run from its last checkpoint (after a crash, a pause, or a failure).

The resumer takes the run's lease (taking over a dead holder's at once), rebuilds the run's
variables and history from the store, and hands the run to a `RunLoop` at its next task; the
step that was being retried keeps counting its attempts.
"""

from __future__ import annotations

from collections.abc import Iterable
from time import time
from typing import TYPE_CHECKING, Any

from taskengine.chain import load_chain
from taskengine.datatypes import DataType, convert_to_type, to_jsonable
from taskengine.engine.events import RunInfo
from taskengine.engine.journal import RunJournal, earlier_spans
from taskengine.engine.leases import take_lease
from taskengine.engine.loop import RunLoop
from taskengine.engine.record import CapturedStateUnit
from taskengine.engine.results import RunResult
from taskengine.errors import ConflictError, TaskExecutionError

if TYPE_CHECKING:
    from taskengine.engine.callback import EventCallback
    from taskengine.engine.env import SimpleEnv

__all__ = ["resume_run"]


async def resume_run(
    env: SimpleEnv,
    run_id: str,
    *,
    set_vars: dict[str, Any] | None,
    on_event: EventCallback | None,
    breakpoints: Iterable[str] | None,
) -> RunResult:
    """`SimpleEnv.resume`: continue run `run_id` under a lease of its own."""
    if env.store is None:
        raise TaskExecutionError("resume needs a run store (SimpleEnv(store=…))", run_id=run_id)
    store = env.store
    record = await store.get_run(run_id)
    if record.status == "succeeded":
        return await _succeeded(store, run_id, record, set_vars)
    owner = env._lease_token()
    await take_lease(store, record, owner, env.lease_ttl)
    try:
        return await _continue(env, run_id, record, owner, set_vars, on_event, breakpoints)
    finally:
        await store.release_lease(run_id, owner)


async def _succeeded(
    store: Any, run_id: str, record: Any, set_vars: dict[str, Any] | None
) -> RunResult:
    """A run that already succeeded resumes to its stored result (and takes no new variables)."""
    if set_vars:
        raise ConflictError(
            f"run {run_id} already succeeded; there is nothing to resume with changed variables",
            run_id=run_id,
        )
    state = [CapturedStateUnit.from_dict(row) for row in (await store.load_state(run_id)).history]
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


async def _continue(
    env: SimpleEnv,
    run_id: str,
    record: Any,
    owner: str,
    set_vars: dict[str, Any] | None,
    on_event: EventCallback | None,
    breakpoints: Iterable[str] | None,
) -> RunResult:
    """Rebuild the run from the store (with `set_vars` applied first) and run it on."""
    store = env.store
    chain = load_chain(record.chain, extra_handlers=env._custom_handlers())
    if set_vars:
        await store.set_variables(
            run_id,
            {k: (_type_of(v).type_name, to_jsonable(v)) for k, v in set_vars.items()},
            owner=owner,
        )
    saved = await store.load_state(run_id)
    variables, types = _restored_variables(saved)
    history = [CapturedStateUnit.from_dict(s) for s in saved.history]
    _restore_previous_output(variables, types, history)
    run = RunInfo(
        run_id=run_id,
        chain_id=record.chain_id,
        request_id=record.request_id or "",
        started_at=time(),
        totals=dict(record.totals or {}),
        earlier_spans=earlier_spans(record.meta),
    )
    stored_breaks = (record.meta or {}).get("breakpoints", [])
    journal = RunJournal(
        store,
        run,
        owner,
        variables=variables,
        types=types,
        history=history,
        debug=chain.debug,
        lease_ttl=env.lease_ttl,
    )
    loop = RunLoop(
        env,
        chain,
        journal,
        env._observers(on_event),
        breakpoints=set(breakpoints if breakpoints is not None else stored_breaks),
    )
    await loop.start(variables.get("input"), types.get("input", DataType.ANY))
    next_task = saved.next_task
    if next_task is None:
        return await loop.finish()
    return await loop.drive(
        env._plan(chain),
        next_task,
        saved.seq,
        skip_break=next_task if record.status == "paused" else None,
        start_attempt=_attempts_made(saved, next_task),
    )


def _restored_variables(saved: Any) -> tuple[dict[str, Any], dict[str, DataType]]:
    """The stored variables, converted back to their recorded types."""
    variables: dict[str, Any] = {}
    types: dict[str, DataType] = {}
    for name, value in saved.variables.items():
        dtype = DataType.from_string(saved.var_types.get(name, "any"))
        variables[name] = convert_to_type(value, dtype)
        types[name] = dtype
    return variables, types


def _restore_previous_output(
    variables: dict[str, Any], types: dict[str, DataType], history: list[CapturedStateUnit]
) -> None:
    """`previous_output` is the last successful step's output (unless a person set it with --set)."""
    if "previous_output" in variables:
        return
    last_ok = next(
        (u.task_id for u in reversed(history) if not u.error and u.task_id in variables),
        None,
    )
    source = last_ok or "input"
    variables["previous_output"] = variables.get(source)
    types["previous_output"] = types.get(source, DataType.ANY)


def _attempts_made(saved: Any, next_task: str) -> int:
    """Attempts already made at `next_task`: only those of the very step that was in flight."""
    retry_state = saved.retry_state or {}
    if retry_state.get("task") == next_task and retry_state.get("seq") == saved.seq + 1:
        return int(retry_state.get("attempt", 0))
    return 0


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
