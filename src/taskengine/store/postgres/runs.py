"""The PostgreSQL store's runs: creating, finishing, editing, reading and listing them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from taskengine.errors import ConflictError
from taskengine.store.codec import decode_cursor, dump_json, dump_optional, page_limit, page_of
from taskengine.store.postgres.connection import PostgresConnection
from taskengine.store.postgres.sql import (
    CREATE_RUN,
    EFF_STATUS,
    FINISH_RUN,
    INSERT_RUN,
    INSERT_RUN_DATA,
    INSERT_STEP,
    RUN_COLS,
    RUNS_JOIN,
    STEP_COLS,
    run_from_row,
    step_from_row,
    utc,
)
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

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from psycopg import AsyncConnection

__all__ = ["PostgresRuns"]


class PostgresRuns(PostgresConnection):
    """Every run operation but checkpoints and leases."""

    async def create_run(
        self,
        record: RunRecord,
        *,
        lease_ttl_s: float | None = None,
        then: Callable[[AsyncConnection], Awaitable[Any]] | None = None,
    ) -> None:
        """Insert a new run; `then(conn)` runs in the same transaction (e.g. enqueue its job)."""
        check_status(record.status, run_id=record.run_id)
        rid = record.run_id
        ttl = (lease_ttl_s or DEFAULT_LEASE_TTL_S) if record.lease_owner is not None else None
        encoded = new_run_json(record)
        params = (
            rid,
            record.chain_id,
            record.status,
            record.created_at,
            record.updated_at or record.created_at,
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
            ttl,
            ttl,
        )
        if then is None and self._writes is not None:
            # One statement, grouped with other runs' writes: both rows, or neither.
            inserted = await self._writes_rowcount(CREATE_RUN, params + encoded.data[1:])
            if inserted != 1:
                raise ConflictError(f"run {rid} already exists", run_id=rid)
            return
        async with self._conn() as conn, conn.transaction():
            cur = await conn.execute(INSERT_RUN, params)
            if cur.rowcount != 1:
                raise ConflictError(f"run {rid} already exists", run_id=rid)
            await conn.execute(INSERT_RUN_DATA, encoded.data)
            if then is not None:
                await then(conn)

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
        params = (
            status,
            dump_optional(output, what="output", run_id=run_id),
            output_type,
            dump_optional(error, what="error", run_id=run_id),
            dump_optional(totals, what="totals", run_id=run_id),
            run_id,
            owner,
            owner,
        )
        await self._write_one_row(FINISH_RUN, params, run_id)

    async def set_variables(
        self, run_id: str, values: dict[str, Any], *, owner: str | None = None
    ) -> int:
        delta = dump_json(check_values(values, run_id=run_id), what="variables", run_id=run_id)
        async with self._conn() as conn, conn.transaction():
            # The row lock serializes concurrent edits, so each gets its own seq.
            cur = await conn.execute(
                "SELECT lease_owner, lease_expires_at, lease_expires_at >= now() FROM te_runs "
                "WHERE run_id = %s FOR UPDATE",
                (run_id,),
            )
            row = await cur.fetchone()
            if row is None:
                raise run_not_found(run_id)
            if row[0] not in (None, owner) and row[2]:
                raise lease_taken(run_id, row[0], utc(row[1]))
            cur = await conn.execute(
                "SELECT COALESCE(MAX(seq), 0) + 1 FROM te_steps WHERE run_id = %s", (run_id,)
            )
            row = await cur.fetchone()
            assert row is not None  # an aggregate query answers one row
            seq = row[0]
            await conn.execute(INSERT_STEP, (run_id, seq, SET_TASK_ID, delta))
            await conn.execute("UPDATE te_runs SET updated_at = now() WHERE run_id = %s", (run_id,))
            return seq

    async def append_meta(
        self, run_id: str, key: str, item: Any, *, keep: int, owner: str | None = None
    ) -> None:
        async with self._conn() as conn, conn.transaction():
            cur = await conn.execute(
                "SELECT d.meta, r.lease_owner, r.lease_expires_at FROM te_run_data d "
                "JOIN te_runs r ON r.run_id = d.run_id WHERE d.run_id = %s FOR UPDATE OF d",
                (run_id,),
            )
            row = await cur.fetchone()
            if row is None:
                raise run_not_found(run_id)
            if owner is not None and row[1] != owner:
                raise lease_taken(run_id, row[1], utc(row[2]))
            meta = appended_meta(row[0], key, item, keep, run_id=run_id)
            await conn.execute(
                "UPDATE te_run_data SET meta = %s::json WHERE run_id = %s", (meta, run_id)
            )

    async def get_run(self, run_id: str) -> RunRecord:
        async with self._conn() as conn:
            cur = await conn.execute(
                f"SELECT {RUN_COLS} FROM {RUNS_JOIN} WHERE run_id = %s", (run_id,)
            )
            row = await cur.fetchone()
        if row is None:
            raise run_not_found(run_id)
        return run_from_row(row)

    async def list_runs(
        self,
        *,
        limit: int = 50,
        cursor: str | None = None,
        status: str | None = None,
        chain_id: str | None = None,
    ) -> Page[RunRecord]:
        limit = page_limit(limit)
        where: list[str] = []
        params: list[Any] = []
        if status is not None:
            where.append(f"{EFF_STATUS} = %s")
            params.append(status)
        if chain_id is not None:
            where.append("chain_id = %s")
            params.append(chain_id)
        if cursor:
            c_at, c_id = decode_cursor(cursor, (int, str))
            where.append("(created_at, run_id) < (%s, %s)")
            params += [from_us(c_at), c_id]
        sql = f"SELECT {RUN_COLS} FROM {RUNS_JOIN}"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY created_at DESC, run_id DESC LIMIT %s"
        params.append(limit + 1)
        async with self._conn() as conn:
            cur = await conn.execute(sql, params)
            rows = await cur.fetchall()
        return page_of(rows, limit, run_from_row, lambda r: (to_us(r[3]), r[0]))

    async def get_steps(self, run_id: str) -> list[StepRecord]:
        async with self._conn() as conn:
            cur = await conn.execute(
                f"SELECT {STEP_COLS} FROM te_steps WHERE run_id = %s ORDER BY seq", (run_id,)
            )
            rows = await cur.fetchall()
        if not rows:
            await self.get_run(run_id)  # a run with no steps yet, or no such run
        return [step_from_row(r) for r in rows]

    async def load_state(self, run_id: str) -> RunState:
        async with self._conn() as conn, conn.transaction():
            # One snapshot for the run row and its steps.
            await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            cur = await conn.execute(
                f"SELECT {RUN_COLS} FROM {RUNS_JOIN} WHERE run_id = %s", (run_id,)
            )
            run_row = await cur.fetchone()
            cur = await conn.execute(
                f"SELECT {STEP_COLS} FROM te_steps WHERE run_id = %s ORDER BY seq", (run_id,)
            )
            step_rows = await cur.fetchall()
        if run_row is None:
            raise run_not_found(run_id)
        return fold_state(run_from_row(run_row), [step_from_row(r) for r in step_rows])

    async def mark_interrupted(self, older_than_s: float) -> list[str]:
        async with self._conn() as conn:
            cur = await conn.execute(
                "UPDATE te_runs SET status = 'interrupted', updated_at = now(), lease_owner = NULL, "
                "lease_expires_at = NULL, lease_ttl_s = NULL WHERE status = 'running' AND "
                "(lease_expires_at < now() OR (lease_owner IS NULL AND "
                "updated_at < now() - %s * interval '1 second')) RETURNING run_id",
                (float(older_than_s),),
            )
            return sorted(r[0] for r in await cur.fetchall())
