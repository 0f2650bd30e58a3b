"""The rules every run store enforces the same way, whatever its database.

Valid run and step statuses, the `(type_name, value)` pairs a person sets, the errors for
a missing run, a lost lease or a step already written, the JSON of a new run, and how a
resume state is folded from a run's step rows.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, NamedTuple

from taskengine.errors import RunLeaseError, RunNotFoundError, StoreError
from taskengine.store.codec import dump_json, dump_optional
from taskengine.store.records import (
    RUN_STATUSES,
    STEP_STATUSES,
    VARS_TASK_ID,
    RunRecord,
    RunState,
    StepRecord,
    utcnow,
)

__all__ = [
    "NewRunJson",
    "appended_meta",
    "check_status",
    "check_step_status",
    "check_values",
    "fold_state",
    "hook_name",
    "lease_taken",
    "new_run_json",
    "run_not_found",
    "step_taken",
    "step_task_id",
]


def check_status(status: str, *, run_id: str) -> None:
    """Refuse a run status that is not one of `RUN_STATUSES`."""
    if status not in RUN_STATUSES:
        raise StoreError(
            f"unknown run status {status!r} (expected one of {', '.join(sorted(RUN_STATUSES))})",
            run_id=run_id,
        )


def check_step_status(step_status: str | None, *, run_id: str) -> str:
    """The status a checkpoint's step row gets: `succeeded` when none is given (no step, or
    a variables-only row), else one of `STEP_STATUSES`."""
    if step_status is None:
        return "succeeded"
    if step_status not in STEP_STATUSES:
        raise StoreError(f"unknown step status {step_status!r}", run_id=run_id)
    return step_status


def step_task_id(step: dict[str, Any] | None) -> str:
    """The task id a step row is stored under (`__vars__` for a variables-only row)."""
    return step.get("taskID", "") if step is not None else VARS_TASK_ID


def run_not_found(run_id: str) -> RunNotFoundError:
    """The error for a run id no store row has."""
    return RunNotFoundError(f"run {run_id} not found", run_id=run_id)


def step_taken(run_id: str, seq: int) -> StoreError:
    """The error for a checkpoint whose seq another checkpoint already used."""
    return StoreError(f"run {run_id}: step {seq} is already checkpointed", run_id=run_id)


class NewRunJson(NamedTuple):
    """The JSON columns of a new run: those of its run row and of its data row."""

    output: str | None
    error: str | None
    totals: str
    retry_state: str
    #: (run_id, chain, input, meta)
    data: tuple[str, str, str, str]


def new_run_json(record: RunRecord) -> NewRunJson:
    """Encode a new run's JSON values (any that is not JSON fails before anything is written)."""
    rid = record.run_id
    return NewRunJson(
        output=dump_optional(record.output, what="output", run_id=rid),
        error=dump_optional(record.error, what="error", run_id=rid),
        totals=dump_json(record.totals or {}, what="totals", run_id=rid),
        retry_state=dump_json(record.retry_state or {}, what="retry state", run_id=rid),
        data=(
            rid,
            dump_json(record.chain, what="chain definition", run_id=rid),
            dump_json(record.input, what="run input", run_id=rid),
            dump_json(record.meta or {}, what="meta", run_id=rid),
        ),
    )


def appended_meta(meta: dict[str, Any], key: str, item: Any, keep: int, *, run_id: str) -> str:
    """`meta` with `item` appended to its list `meta[key]` (only the last `keep` items stay),
    encoded (`append_meta`)."""
    if keep < 1:
        raise StoreError(f"append_meta keeps at least one item, not {keep}", run_id=run_id)
    earlier = meta.get(key)
    items = list(earlier) if isinstance(earlier, list) else []
    items.append(item)
    return dump_json({**meta, key: items[-keep:]}, what="meta", run_id=run_id)


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
    """The error for a run whose lease `holder` keeps until `expires`."""
    left = ""
    if expires is not None:
        seconds = max(0.0, (expires - utcnow()).total_seconds())
        left = f" (its lease expires in {seconds:.1f} s)"
    return RunLeaseError(f"run {run_id} is already being resumed by {holder}{left}", run_id=run_id)


def hook_name(record: dict[str, Any], hook_id: str) -> str:
    """The hook's `name`, which every stored remote hook needs."""
    name = record.get("name")
    if not isinstance(name, str) or not name:
        raise StoreError(f"remote hook {hook_id!r} needs a non-empty 'name'", field="name")
    return name
