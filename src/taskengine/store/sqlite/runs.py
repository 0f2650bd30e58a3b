"""The SQLite store's runs: creating, finishing, editing, reading and listing them."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from taskengine.errors import ConflictError
from taskengine.store.codec import decode_cursor, dump_json, dump_optional, page_limit, page_of
from taskengine.store.records import (
    DEFAULT_LEASE_TTL_S,
    SET_TASK_ID,
    Page,
    RunRecord,
    RunState,
    StepRecord,
    from_us,
    to_us,
)
from taskengine.store.rules import (
    appended_meta,
    check_status,
    check_values,
    fold_state,
    lease_taken,
    new_run_json,
    run_not_found,
)
from taskengine.store.sqlite.connection import SQLiteConnection
from taskengine.store.sqlite.sql import (
    EFF_STATUS,
    INSERT_RUN,
    INSERT_RUN_DATA,
    INSERT_STEP,
    RUN_COLS,
    RUNS_FROM,
    STEP_COLS,
    now_us,
    run_from_row,
    step_from_row,
)

__all__ = ["SQLiteRuns"]


class SQLiteRuns(SQLiteConnection):
    """Every run operation but checkpoints and leases."""

    async def create_run(self, record: RunRecord, *, lease_ttl_s: float | None = None) -> None:
        check_status(record.status, run_id=record.run_id)
        rid = record.run_id
        ttl_us = expires = None
        if record.lease_owner is not None:
            ttl_us = int((lease_ttl_s or DEFAULT_LEASE_TTL_S) * 1e6)
            expires = now_us() + ttl_us
        encoded = new_run_json(record)
        params = (
            rid,
            record.chain_id,
            record.status,
            to_us(record.created_at),
            to_us(record.updated_at or record.created_at),
            record.input_type,
            encoded.output,
            record.output_type,
            encoded.error,
            record.next_task,
            record.step_count,
            record.request_id,
            encoded.totals,
            encoded.retry_state,
            record.lease_owner,
            expires,
            ttl_us,
        )

        def insert(cur: sqlite3.Cursor) -> None:
            if cur.execute("SELECT 1 FROM te_runs WHERE run_id = ?", (rid,)).fetchone():
                raise ConflictError(f"run {rid} already exists", run_id=rid)
            cur.execute(INSERT_RUN, params)
            cur.execute(INSERT_RUN_DATA, encoded.data)

        await self._write_grouped(insert)

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
        """Record the end of a run; with `owner`, only while that owner still holds the lease."""
        check_status(status, run_id=run_id)
        self._hot.pop(run_id, None)
        params = (
            status,
            dump_optional(output, what="output", run_id=run_id),
            output_type,
            dump_optional(error, what="error", run_id=run_id),
            dump_optional(totals, what="totals", run_id=run_id),
            now_us(),
            run_id,
            owner,
            owner,
        )

        def update(cur: sqlite3.Cursor) -> None:
            cur.execute(
                "UPDATE te_runs SET status = ?, output = ?, output_type = ?, error = ?, "
                "totals = COALESCE(?, totals), updated_at = ?, lease_owner = NULL, "
                "lease_expires_at = NULL, lease_ttl_us = NULL "
                "WHERE run_id = ? AND (? IS NULL OR lease_owner IS NULL OR lease_owner = ?)",
                params,
            )
            if cur.rowcount != 1:
                raise self._why_not(run_id, owner)

        await self._write_grouped(update)

    async def set_variables(
        self, run_id: str, values: dict[str, Any], *, owner: str | None = None
    ) -> int:
        delta = dump_json(check_values(values, run_id=run_id), what="variables", run_id=run_id)

        def append(cur: sqlite3.Cursor) -> int:
            now = now_us()
            row = cur.execute(
                "SELECT lease_owner, lease_expires_at FROM te_runs WHERE run_id = ?", (run_id,)
            ).fetchone()
            if row is None:
                raise run_not_found(run_id)
            if row[0] not in (None, owner) and row[1] is not None and row[1] >= now:
                raise lease_taken(run_id, row[0], from_us(row[1]))
            seq = cur.execute(
                "SELECT COALESCE(MAX(seq), 0) + 1 FROM te_steps WHERE run_id = ?", (run_id,)
            ).fetchone()[0]
            cur.execute(INSERT_STEP, (run_id, seq, SET_TASK_ID, "succeeded", None, delta, now))
            cur.execute("UPDATE te_runs SET updated_at = ? WHERE run_id = ?", (now, run_id))
            return seq

        return await self._write_grouped(append)

    async def append_meta(
        self, run_id: str, key: str, item: Any, *, keep: int, owner: str | None = None
    ) -> None:
        def append(cur: sqlite3.Cursor) -> None:
            row = cur.execute(
                "SELECT d.meta, r.lease_owner FROM te_run_data d JOIN te_runs r "
                "ON r.run_id = d.run_id WHERE d.run_id = ?",
                (run_id,),
            ).fetchone()
            if row is None:
                raise run_not_found(run_id)
            if owner is not None and row[1] != owner:
                raise self._why_not(run_id, owner)
            meta = appended_meta(json.loads(row[0]), key, item, keep, run_id=run_id)
            cur.execute("UPDATE te_run_data SET meta = ? WHERE run_id = ?", (meta, run_id))

        await self._write_grouped(append)

    async def get_run(self, run_id: str) -> RunRecord:
        rows = self._read(
            f"SELECT {RUN_COLS} FROM {RUNS_FROM} WHERE r.run_id = :rid",
            {"now": now_us(), "rid": run_id},
        )
        if not rows:
            raise run_not_found(run_id)
        return run_from_row(rows[0])

    async def list_runs(
        self,
        *,
        limit: int = 50,
        cursor: str | None = None,
        status: str | None = None,
        chain_id: str | None = None,
    ) -> Page[RunRecord]:
        limit = page_limit(limit)
        where = []
        params: dict[str, Any] = {"now": now_us(), "limit": limit + 1}
        if status is not None:
            where.append(f"{EFF_STATUS} = :status")
            params["status"] = status
        if chain_id is not None:
            where.append("r.chain_id = :chain_id")
            params["chain_id"] = chain_id
        if cursor:
            params["c_at"], params["c_id"] = decode_cursor(cursor, (int, str))
            where.append("(r.created_at, r.run_id) < (:c_at, :c_id)")
        sql = f"SELECT {RUN_COLS} FROM {RUNS_FROM}"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY r.created_at DESC, r.run_id DESC LIMIT :limit"
        return page_of(self._read(sql, params), limit, run_from_row, lambda r: (r[3], r[0]))

    async def get_steps(self, run_id: str) -> list[StepRecord]:
        rows = self._read(
            f"SELECT {STEP_COLS} FROM te_steps WHERE run_id = ? ORDER BY seq", (run_id,)
        )
        if not rows:
            await self.get_run(run_id)  # a run with no steps yet, or no such run
        return [step_from_row(r) for r in rows]

    async def load_state(self, run_id: str) -> RunState:
        cur = self._c()
        with self._lock:
            try:
                # One read transaction: the run row and its steps from the same snapshot.
                cur.execute("BEGIN")
                run_rows = cur.execute(
                    f"SELECT {RUN_COLS} FROM {RUNS_FROM} WHERE r.run_id = :rid",
                    {"now": now_us(), "rid": run_id},
                ).fetchall()
                step_rows = cur.execute(
                    f"SELECT {STEP_COLS} FROM te_steps WHERE run_id = ? ORDER BY seq", (run_id,)
                ).fetchall()
                cur.execute("COMMIT")
            except BaseException as exc:
                if self._conn is not None and self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error):
                    raise self._translate(exc) from exc
                raise
        if not run_rows:
            raise run_not_found(run_id)
        return fold_state(run_from_row(run_rows[0]), [step_from_row(r) for r in step_rows])

    async def mark_interrupted(self, older_than_s: float) -> list[str]:
        def mark(cur: sqlite3.Cursor) -> list[str]:
            now = now_us()
            cond = (
                "status = 'running' AND (lease_expires_at < :now "
                "OR (lease_owner IS NULL AND updated_at < :quiet))"
            )
            params = {"now": now, "quiet": now - int(older_than_s * 1e6)}
            ids = sorted(
                r[0] for r in cur.execute(f"SELECT run_id FROM te_runs WHERE {cond}", params)
            )
            cur.execute(
                f"UPDATE te_runs SET status = 'interrupted', updated_at = :now, lease_owner = NULL, "
                f"lease_expires_at = NULL, lease_ttl_us = NULL WHERE {cond}",
                params,
            )
            return ids

        return self._write(mark)
