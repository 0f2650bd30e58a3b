"""The SQLite store's checkpoints: the full one, and the one-statement hot path.

A full checkpoint updates the run row and inserts the step row in one transaction (shared
with the other run writes of its event-loop turn: `group_commit`). While
this store holds a run's lease and a third of the lease has not yet passed since it last
extended it, a step whose run stays "running" is written as one lease-guarded INSERT of its
step row alone (one page written instead of two), carrying the run's next task and step
count; readers overlay the newest such row on the run row (see migration 3), and the next
full checkpoint brings the run row up to date.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from taskengine.store.codec import dump_json
from taskengine.store.records import RUN_STATUSES, STEP_STATUSES
from taskengine.store.rules import check_status, check_step_status, step_taken, step_task_id
from taskengine.store.sqlite.connection import SQLiteConnection
from taskengine.store.sqlite.sql import CHECKPOINT, HOT_STEP, INSERT_STEP, now_us

__all__ = ["SQLiteCheckpoints"]


class SQLiteCheckpoints(SQLiteConnection):
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
        """`RunStore.checkpoint`: the hot path when this store may take it, else a full one."""
        # Encode before taking the lock: a value that is not JSON fails with nothing written.
        now = now_us()
        step_json = None if step is None else dump_json(step, what="step", run_id=run_id)
        delta_json = dump_json(vars_delta, what="vars_delta", run_id=run_id) if vars_delta else "{}"
        retry_json = (
            None
            if retry_state is None
            else dump_json(retry_state, what="retry state", run_id=run_id)
        )
        totals_json = None if totals is None else dump_json(totals, what="totals", run_id=run_id)
        if status not in RUN_STATUSES:
            check_status(status, run_id=run_id)
        if step_status is None or step_status not in STEP_STATUSES:
            step_status = check_step_status(step_status, run_id=run_id)
        row = None
        if step is not None or vars_delta:
            row = (run_id, seq, step_task_id(step), step_status, step_json, delta_json, now)
        hot = self._hot.get(run_id)
        if (
            hot is not None
            and step_json is not None
            and status == "running"
            and retry_json is None
            and totals_json is None
            and hot[0] == owner
            and now < hot[1]
        ):
            self._hot_checkpoint(hot, row, next_task)  # type: ignore[arg-type]
            return
        update = (
            next_task,
            0 if step is None else 1,
            seq,
            status,
            now,
            retry_json,
            totals_json,
            now,
            run_id,
            owner,
            owner,
        )
        await self._full_checkpoint(run_id, seq, status, owner, now, update, row)

    async def _full_checkpoint(
        self,
        run_id: str,
        seq: int,
        status: str,
        owner: str | None,
        now: int,
        update: tuple[Any, ...],
        row: tuple[Any, ...] | None,
    ) -> None:
        """Update the run row (`update`: `CHECKPOINT`'s parameters) and insert the step row
        (if any) in one transaction (shared with the loop turn's other run writes); then
        decide whether the run's next steps may go hot."""

        def write(cur: sqlite3.Cursor) -> tuple[int, int]:
            synced = cur.execute(CHECKPOINT, update).fetchone()
            if synced is None:
                raise self._why_not(run_id, owner)
            if row is not None:
                try:
                    cur.execute(INSERT_STEP, row)
                except sqlite3.IntegrityError as exc:
                    raise step_taken(run_id, seq) from exc
            return synced

        try:
            step_count, ttl_us = await self._write_grouped(write)
        except BaseException:
            self._hot.pop(run_id, None)
            raise
        if owner is not None and status == "running" and ttl_us:
            # Until a third of the lease has passed, the next steps may take the hot path;
            # then a full checkpoint extends the lease again (a loop that never yields to
            # the heartbeat still keeps its lease).
            self._hot[run_id] = [owner, now + ttl_us // 3, step_count]
        else:
            self._hot.pop(run_id, None)

    def _hot_checkpoint(self, hot: list[Any], row: tuple[Any, ...], next_task: str | None) -> None:
        """Write a step as one lease-guarded INSERT carrying the run's next task and step count."""
        run_id, seq, owner = row[0], row[1], hot[0]
        steps = hot[2] + 1
        cur = self._c()
        with self._lock:
            try:
                cur.execute(HOT_STEP, (*row, next_task, steps, run_id, owner))
            except sqlite3.IntegrityError as exc:
                raise step_taken(run_id, seq) from exc
            except sqlite3.Error as exc:
                raise self._translate(exc) from exc
            if cur.rowcount != 1:
                self._hot.pop(run_id, None)
                raise self._why_not(run_id, owner)
            hot[2] = steps
