"""The SQL text and row mapping of the SQLite run store (kept apart from its logic)."""

from __future__ import annotations

import json
import time
from typing import Any

from taskengine.store.records import RunRecord, StepRecord, from_us

__all__ = [
    "CHECKPOINT",
    "CONNECTION_PRAGMAS",
    "EFF_STATUS",
    "HOT_STEP",
    "INSERT_RUN",
    "INSERT_RUN_DATA",
    "INSERT_STEP",
    "RUNS_FROM",
    "RUN_COLS",
    "STEP_COLS",
    "now_us",
    "run_from_row",
    "step_from_row",
]

#: WAL pages between automatic checkpoints (SQLite's default is 1000), and the size the WAL
#: file is cut back to after one
_WAL_PAGES = 10_000
_WAL_LIMIT = 64 * 1024 * 1024
#: how every connection is set up (the benchmarks give LangGraph's SqliteSaver the same)
CONNECTION_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=NORMAL",
    f"PRAGMA wal_autocheckpoint={_WAL_PAGES}",
    f"PRAGMA journal_size_limit={_WAL_LIMIT}",
)

EFF_STATUS = (
    "CASE WHEN r.status = 'running' AND r.lease_expires_at < :now THEN 'interrupted' "
    "ELSE r.status END"
)
#: the newest step row (one with a step: `__set__` rows have none) above the seq the run row is
#: current to. Only hot rows and `__set__` rows lie above it, so this is the newest hot row when
#: there is one. A plain row found here was written by schema-2 code (a run from before the
#: upgrade, whose synced_seq is 0, or a process that opened the file before it) and is current
#: in the run row: no overlay. Either way the lookup stops at the first step row it meets, never
#: walking a run's whole history.
_NEWEST_STEP = (
    "FROM te_steps s WHERE s.run_id = {runs}.run_id AND s.seq > {runs}.synced_seq "
    "AND s.step IS NOT NULL ORDER BY s.seq DESC LIMIT 1"
)
_HOT_SEQ = "SELECT s.seq " + _NEWEST_STEP.format(runs="r")
#: a run with the data checkpoints never touch (chain, input, meta; kept apart so they stay
#: cheap) and its newest hot step row, whose next task, step count and time overlay the run row's
RUNS_FROM = (
    "te_runs r JOIN te_run_data d ON d.run_id = r.run_id "
    f"LEFT JOIN te_steps h ON h.run_id = r.run_id AND h.seq = ({_HOT_SEQ}) "
    "AND h.run_steps IS NOT NULL"
)
RUN_COLS = (
    f"r.run_id, r.chain_id, {EFF_STATUS}, r.created_at, "
    "MAX(r.updated_at, COALESCE(h.created_at, 0)), d.chain, d.input, r.input_type, r.output, "
    "r.output_type, r.error, CASE WHEN h.seq IS NULL THEN r.next_task ELSE h.next_task END, "
    "COALESCE(h.run_steps, r.step_count), r.request_id, r.totals, r.retry_state, r.lease_owner, "
    "r.lease_expires_at, d.meta"
)
#: a full checkpoint: the run row catches up with any hot rows before it (their step count is
#: the base it adds to; the same lookup as `_HOT_SEQ`) and records the seq it is now current to
CHECKPOINT = (
    "UPDATE te_runs SET next_task = ?, step_count = COALESCE((SELECT s.run_steps "
    f"{_NEWEST_STEP.format(runs='te_runs')}), step_count) + ?, synced_seq = MAX(synced_seq, ?), "
    "status = ?, updated_at = ?, "
    "retry_state = COALESCE(?, retry_state), totals = COALESCE(?, totals), "
    "lease_expires_at = CASE WHEN lease_owner IS NULL THEN NULL ELSE ? + lease_ttl_us END "
    "WHERE run_id = ? AND (? IS NULL OR lease_owner = ?) RETURNING step_count, lease_ttl_us"
)
INSERT_STEP = (
    "INSERT INTO te_steps (run_id, seq, task_id, status, step, vars_delta, created_at) "
    "VALUES (?, ?, ?, ?, ?, ?, ?)"
)
#: a hot checkpoint: one statement (so one page written per step instead of two), guarded by
#: the lease exactly like the full checkpoint's UPDATE
HOT_STEP = (
    "INSERT INTO te_steps (run_id, seq, task_id, status, step, vars_delta, created_at, "
    "next_task, run_steps) SELECT ?, ?, ?, ?, ?, ?, ?, ?, ? "
    "WHERE EXISTS (SELECT 1 FROM te_runs WHERE run_id = ? AND lease_owner = ?)"
)
INSERT_RUN = (
    "INSERT INTO te_runs (run_id, chain_id, status, created_at, updated_at, "
    "input_type, output, output_type, error, next_task, step_count, request_id, totals, "
    "retry_state, lease_owner, lease_expires_at, lease_ttl_us) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
INSERT_RUN_DATA = "INSERT INTO te_run_data (run_id, chain, input, meta) VALUES (?, ?, ?, ?)"
STEP_COLS = "run_id, seq, task_id, status, step, vars_delta, created_at"


def now_us() -> int:
    """Now, in microseconds since the epoch (how the SQLite store keeps times)."""
    return time.time_ns() // 1000


def _loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def run_from_row(row: tuple) -> RunRecord:
    """A `RUN_COLS` row as a RunRecord (JSON columns decoded, times as UTC datetimes)."""
    return RunRecord(
        run_id=row[0],
        chain_id=row[1],
        status=row[2],
        created_at=from_us(row[3]),
        updated_at=from_us(row[4]),
        chain=json.loads(row[5]),
        input=_loads(row[6]),
        input_type=row[7],
        output=_loads(row[8]),
        output_type=row[9],
        error=_loads(row[10]),
        next_task=row[11],
        step_count=row[12],
        request_id=row[13],
        totals=json.loads(row[14]),
        retry_state=json.loads(row[15]),
        lease_owner=row[16],
        lease_expires_at=from_us(row[17]),
        meta=json.loads(row[18]),
    )


def step_from_row(row: tuple) -> StepRecord:
    """A `STEP_COLS` row as a StepRecord."""
    return StepRecord(
        run_id=row[0],
        seq=row[1],
        task_id=row[2],
        status=row[3],
        step=_loads(row[4]),
        vars_delta=json.loads(row[5]),
        created_at=from_us(row[6]),
    )
