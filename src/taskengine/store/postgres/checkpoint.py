"""The PostgreSQL store's checkpoints: one statement (a data-modifying CTE), group-committed."""

from __future__ import annotations

from typing import Any

from taskengine.store.codec import dump_json, dump_optional
from taskengine.store.postgres.connection import PostgresConnection
from taskengine.store.postgres.sql import CHECKPOINT_WITH_STEP, UPDATE_RUN
from taskengine.store.records import RUN_STATUSES
from taskengine.store.rules import check_status, check_step_status, step_taken, step_task_id

__all__ = ["PostgresCheckpoints"]


class PostgresCheckpoints(PostgresConnection):
    """`checkpoint`: after every step, the step row and where the run stands."""

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
        if status not in RUN_STATUSES:
            check_status(status, run_id=run_id)
        step_status = check_step_status(step_status, run_id=run_id)
        params: tuple = (
            next_task,
            0 if step is None else 1,
            status,
            dump_optional(retry_state, what="retry state", run_id=run_id),
            dump_optional(totals, what="totals", run_id=run_id),
            run_id,
            owner,
            owner,
        )
        sql = UPDATE_RUN
        if step is not None or vars_delta:
            params += (
                seq,
                step_task_id(step),
                step_status,
                dump_optional(step, what="step", run_id=run_id),
                dump_json(vars_delta, what="vars_delta", run_id=run_id) if vars_delta else "{}",
            )
            sql = CHECKPOINT_WITH_STEP
        await self._write_one_row(sql, params, run_id, on_unique=lambda: step_taken(run_id, seq))
