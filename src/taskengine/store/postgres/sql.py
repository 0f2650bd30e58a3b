"""The SQL text and row mapping of the PostgreSQL run store (kept apart from its logic)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import overload

from taskengine.store.records import RunRecord, StepRecord

__all__ = [
    "CHECKPOINT_WITH_STEP",
    "CREATE_RUN",
    "EFF_STATUS",
    "FINISH_RUN",
    "INSERT_RUN",
    "INSERT_RUN_DATA",
    "INSERT_STEP",
    "RUNS_JOIN",
    "RUN_COLS",
    "STEP_COLS",
    "UPDATE_RUN",
    "run_from_row",
    "step_from_row",
    "utc",
]

EFF_STATUS = (
    "CASE WHEN status = 'running' AND lease_expires_at < now() THEN 'interrupted' ELSE status END"
)
RUN_COLS = (
    f"run_id, chain_id, {EFF_STATUS}, created_at, updated_at, chain, input, input_type, output, "
    "output_type, error, next_task, step_count, request_id, totals, retry_state, lease_owner, "
    "lease_expires_at, meta"
)
STEP_COLS = "run_id, seq, task_id, status, step, vars_delta, created_at"
#: runs with the data checkpoints never touch (chain, input, meta; kept apart so they stay cheap)
RUNS_JOIN = "te_runs JOIN te_run_data USING (run_id)"
UPDATE_RUN = (
    "UPDATE te_runs SET next_task = %s, step_count = step_count + %s, status = %s, updated_at = now(), "
    "retry_state = COALESCE(%s::json, retry_state), totals = COALESCE(%s::json, totals), "
    "lease_expires_at = CASE WHEN lease_owner IS NULL THEN NULL "
    "ELSE now() + lease_ttl_s * interval '1 second' END "
    "WHERE run_id = %s AND (%s::text IS NULL OR lease_owner = %s)"
)
# The step row is inserted only when the run row was updated (it exists, the lease holds).
CHECKPOINT_WITH_STEP = (
    f"WITH upd AS ({UPDATE_RUN} RETURNING run_id) "
    "INSERT INTO te_steps (run_id, seq, task_id, status, step, vars_delta, created_at) "
    "SELECT run_id, %s, %s, %s, %s::json, %s::json, now() FROM upd"
)
#: the end of a run: its outcome, the lease released (with an owner: only while it holds it)
FINISH_RUN = (
    "UPDATE te_runs SET status = %s, output = %s::json, output_type = %s, error = %s::json, "
    "totals = COALESCE(%s::json, totals), updated_at = now(), lease_owner = NULL, "
    "lease_expires_at = NULL, lease_ttl_s = NULL "
    "WHERE run_id = %s AND (%s::text IS NULL OR lease_owner IS NULL OR lease_owner = %s)"
)
INSERT_RUN = (
    "INSERT INTO te_runs (run_id, chain_id, status, created_at, updated_at, "
    "input_type, output, output_type, error, next_task, step_count, request_id, totals, "
    "retry_state, lease_owner, lease_expires_at, lease_ttl_s) VALUES (%s, %s, %s, %s, "
    "%s, %s, %s::json, %s, %s::json, %s, %s, %s, %s::json, %s::json, %s, "
    "now() + %s * interval '1 second', %s) ON CONFLICT (run_id) DO NOTHING"
)
INSERT_RUN_DATA = (
    "INSERT INTO te_run_data (run_id, chain, input, meta) VALUES (%s, %s::json, %s::json, %s::json)"
)
#: a new run and its data in one statement (neither when the run id is taken: 0 rows)
CREATE_RUN = (
    f"WITH ins AS ({INSERT_RUN} RETURNING run_id) "
    "INSERT INTO te_run_data (run_id, chain, input, meta) "
    "SELECT run_id, %s::json, %s::json, %s::json FROM ins"
)
#: a variables-only row (`set_variables`)
INSERT_STEP = (
    "INSERT INTO te_steps (run_id, seq, task_id, status, step, vars_delta, created_at) "
    "VALUES (%s, %s, %s, 'succeeded', NULL, %s::json, now())"
)


@overload
def utc(when: datetime) -> datetime: ...


@overload
def utc(when: None) -> None: ...


def utc(when: datetime | None) -> datetime | None:
    """A timestamp from the database, in UTC."""
    return None if when is None else when.astimezone(UTC)


def run_from_row(row: tuple) -> RunRecord:
    """A `RUN_COLS` row as a RunRecord (psycopg has already decoded the JSON)."""
    return RunRecord(
        run_id=row[0],
        chain_id=row[1],
        status=row[2],
        created_at=utc(row[3]),
        updated_at=utc(row[4]),
        chain=row[5],
        input=row[6],
        input_type=row[7],
        output=row[8],
        output_type=row[9],
        error=row[10],
        next_task=row[11],
        step_count=row[12],
        request_id=row[13],
        totals=row[14],
        retry_state=row[15],
        lease_owner=row[16],
        lease_expires_at=utc(row[17]),
        meta=row[18],
    )


def step_from_row(row: tuple) -> StepRecord:
    """A `STEP_COLS` row as a StepRecord."""
    return StepRecord(row[0], row[1], row[2], row[3], row[4], row[5], utc(row[6]))
