"""The shared run store on PostgreSQL (psycopg 3, async), for several processes or machines.

Same schema and behaviour as the SQLite store. Leases and `updated_at` use the database
clock (`now()`), so machines with skewed clocks still agree on who holds a run. A
checkpoint is a single statement (a data-modifying CTE): one round trip, atomic.

URL: `postgresql://user:pass@host:port/db` plus optional `?schema=NAME` (created if
missing; the store's tables live there) and `?pool_size=N` (default 4). Any libpq option
passes through, e.g. `options=-c synchronous_commit=off` to trade the last commits on a
server crash for faster checkpoints.
"""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager, suppress
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from taskengine.errors import ConflictError, RunNotFoundError, StoreError
from taskengine.store.base import (
    DEFAULT_LEASE_TTL_S,
    RUN_STATUSES,
    SET_TASK_ID,
    STEP_STATUSES,
    VARS_TASK_ID,
    Page,
    RunRecord,
    RunState,
    StepRecord,
    StoreBase,
    check_status,
    check_values,
    decode_cursor,
    dump_json,
    encode_cursor,
    fold_state,
    from_us,
    lease_taken,
    page_limit,
    to_us,
)
from taskengine.store.migrations import (
    COMPONENT,
    OWN_TABLES,
    POSTGRES_MIGRATIONS,
    SCHEMA_VERSION,
    VERSION_TABLE,
    newer_schema_message,
)
from taskengine.store.postgres_registry import PostgresRegistry

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable

    from psycopg import AsyncConnection

__all__ = ["PostgresRunStore", "redact_url"]

_EFF_STATUS = (
    "CASE WHEN status = 'running' AND lease_expires_at < now() THEN 'interrupted' ELSE status END"
)
_RUN_COLS = (
    f"run_id, chain_id, {_EFF_STATUS}, created_at, updated_at, chain, input, input_type, output, "
    "output_type, error, next_task, step_count, request_id, totals, retry_state, lease_owner, "
    "lease_expires_at, meta"
)
_STEP_COLS = "run_id, seq, task_id, status, step, vars_delta, created_at"
#: runs with the data that never changes after they start (kept apart so checkpoints stay cheap)
_RUNS_JOIN = "te_runs JOIN te_run_data USING (run_id)"
_UPDATE_RUN = (
    "UPDATE te_runs SET next_task = %s, step_count = step_count + %s, status = %s, updated_at = now(), "
    "retry_state = COALESCE(%s::json, retry_state), totals = COALESCE(%s::json, totals), "
    "lease_expires_at = CASE WHEN lease_owner IS NULL THEN NULL "
    "ELSE now() + lease_ttl_s * interval '1 second' END "
    "WHERE run_id = %s AND (%s::text IS NULL OR lease_owner = %s)"
)
# The step row is inserted only when the run row was updated (it exists, the lease holds).
_CHECKPOINT_WITH_STEP = (
    f"WITH upd AS ({_UPDATE_RUN} RETURNING run_id) "
    "INSERT INTO te_steps (run_id, seq, task_id, status, step, vars_delta, created_at) "
    "SELECT run_id, %s, %s, %s, %s::json, %s::json, now() FROM upd"
)


def redact_url(url: str) -> str:
    """The URL with its password replaced, fit for error messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def _utc(when: datetime | None) -> datetime | None:
    return None if when is None else when.astimezone(UTC)


def _run_from_row(row: tuple) -> RunRecord:
    return RunRecord(
        run_id=row[0],
        chain_id=row[1],
        status=row[2],
        created_at=_utc(row[3]),
        updated_at=_utc(row[4]),
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
        lease_expires_at=_utc(row[17]),
        meta=row[18],
    )


def _step_from_row(row: tuple) -> StepRecord:
    return StepRecord(row[0], row[1], row[2], row[3], row[4], row[5], _utc(row[6]))


def _psycopg():
    try:
        import psycopg
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise StoreError(
            "the PostgreSQL run store needs psycopg: pip install 'taskengine[postgres]'"
        ) from exc
    return psycopg


class PostgresRunStore(PostgresRegistry, StoreBase):
    """Runs, checkpoints, registries and secret blobs in PostgreSQL, over a tiny pool."""

    backend = "postgres"

    def __init__(self, url: str, *, pool_size: int | None = None) -> None:
        parts = urlsplit(url)
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        self.schema = query.pop("schema", None) or None
        raw_size = query.pop("pool_size", "") or "4"
        if pool_size is None:
            if not raw_size.isdigit():
                raise StoreError(f"store URL {redact_url(url)!r}: pool_size must be a number")
            pool_size = int(raw_size)
        self.url = redact_url(url)
        # quote, not quote_plus: libpq decodes %20 in `options=-c a=b`, but not +.
        query_text = urlencode(query, quote_via=quote)
        self._conninfo = urlunsplit(("postgresql", parts.netloc, parts.path, query_text, ""))
        self._size = max(1, pool_size)
        self._idle: list[AsyncConnection] = []
        self._sem: asyncio.Semaphore | None = None
        self._open = False

    def __repr__(self) -> str:
        return f"PostgresRunStore({self.url!r})"

    # --- connections -----------------------------------------------------------------

    async def _connect(self) -> AsyncConnection:
        psycopg = _psycopg()
        from psycopg import sql

        try:
            conn = await psycopg.AsyncConnection.connect(self._conninfo, autocommit=True)
        except psycopg.Error as exc:
            raise StoreError(
                f"cannot connect to the PostgreSQL run store {self.url}: {exc}"
            ) from exc
        try:
            if self.schema:
                await conn.execute(
                    sql.SQL("SET search_path TO {}").format(sql.Identifier(self.schema))
                )
        except BaseException:
            await conn.close()
            raise
        return conn

    @asynccontextmanager
    async def _conn(self) -> AsyncIterator[AsyncConnection]:
        """A pooled connection (autocommit; use `conn.transaction()` for several statements)."""
        if not self._open or self._sem is None:
            raise StoreError(f"run store {self.url} is not open (call `await store.open()`)")
        psycopg = _psycopg()
        await self._sem.acquire()
        conn = None
        try:
            conn = self._idle.pop() if self._idle else await self._connect()
            yield conn
        except psycopg.Error as exc:
            raise self._translate(exc) from exc
        except BaseException:
            # Cancelled mid-query or broken: the connection's state is unknown, drop it.
            # (transaction_status 0 is IDLE: no query running, no transaction open.)
            if conn is not None and (conn.closed or conn.info.transaction_status != 0):
                await self._discard(conn)
                conn = None
            raise
        finally:
            if conn is not None:
                if conn.closed or conn.info.transaction_status != 0:
                    await self._discard(conn)
                else:
                    self._idle.append(conn)
            self._sem.release()

    async def _discard(self, conn: AsyncConnection) -> None:
        with suppress(Exception):
            await conn.close()

    def _translate(self, exc: Exception) -> StoreError:
        return StoreError(f"PostgreSQL run store {self.url}: {exc}")

    # --- lifecycle -------------------------------------------------------------------

    async def open(self) -> None:
        if self._open:
            return
        self._sem = asyncio.Semaphore(self._size)
        conn = await self._connect()
        try:
            await self._migrate(conn)
        except BaseException:
            await conn.close()
            raise
        self._idle.append(conn)
        self._open = True

    async def _migrate(self, conn: AsyncConnection) -> None:
        psycopg = _psycopg()
        from psycopg import sql

        where = f"{self.url}" + (f" (schema {self.schema})" if self.schema else "")
        try:
            if self.schema:
                # Look first: CREATE SCHEMA needs a privilege a user of an existing one may lack.
                cur = await conn.execute(
                    "SELECT 1 FROM pg_namespace WHERE nspname = %s", (self.schema,)
                )
                if await cur.fetchone() is None:
                    await conn.execute(
                        sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(
                            sql.Identifier(self.schema)
                        )
                    )
            async with conn.transaction():
                # Several processes may start at once: one migrates, the others wait here.
                await conn.execute(
                    "SELECT pg_advisory_xact_lock(hashtext('taskengine.store:' || coalesce(current_schema(), '')))"
                )
                cur = await conn.execute(
                    "SELECT to_regclass(%s) IS NOT NULL, "
                    "(SELECT count(*) FROM unnest(%s::text[]) AS t(name) WHERE to_regclass(name) IS NOT NULL)",
                    (VERSION_TABLE, list(OWN_TABLES)),
                )
                has_version, own_tables = await cur.fetchone()
                current = 0
                if has_version:
                    cur = await conn.execute(
                        f"SELECT version FROM {VERSION_TABLE} WHERE component = %s", (COMPONENT,)
                    )
                    row = await cur.fetchone()
                    if row is None:
                        raise StoreError(
                            f"{where}: {VERSION_TABLE} has no store version (a damaged or foreign database)"
                        )
                    current = row[0]
                elif own_tables:
                    raise StoreError(
                        f"{where} already has te_* tables but no {VERSION_TABLE}: they belong to "
                        "something else or were damaged; use another schema (?schema=NAME)"
                    )
                if current > SCHEMA_VERSION:
                    raise StoreError(newer_schema_message(where, current))
                for version in range(current + 1, SCHEMA_VERSION + 1):
                    for statement in POSTGRES_MIGRATIONS[version - 1]:
                        await conn.execute(statement)
                    await conn.execute(
                        f"INSERT INTO {VERSION_TABLE} (component, version) VALUES (%s, %s) "
                        "ON CONFLICT (component) DO UPDATE SET version = excluded.version, applied_at = now()",
                        (COMPONENT, version),
                    )
        except psycopg.Error as exc:
            raise StoreError(f"cannot prepare the run store in {where}: {exc}") from exc

    async def aclose(self) -> None:
        self._open = False
        idle, self._idle = self._idle, []
        for conn in idle:
            await self._discard(conn)

    async def _why_not(self, conn: AsyncConnection, run_id: str) -> StoreError:
        cur = await conn.execute(
            "SELECT lease_owner, lease_expires_at FROM te_runs WHERE run_id = %s", (run_id,)
        )
        row = await cur.fetchone()
        if row is None:
            return RunNotFoundError(f"run {run_id} not found", run_id=run_id)
        return lease_taken(run_id, row[0], _utc(row[1]))

    # --- runs ------------------------------------------------------------------------

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
        params = (
            rid,
            record.chain_id,
            record.status,
            record.created_at,
            record.updated_at or record.created_at,
            record.input_type,
            None if record.output is None else dump_json(record.output, what="output", run_id=rid),
            record.output_type,
            None if record.error is None else dump_json(record.error, what="error", run_id=rid),
            record.next_task,
            record.step_count,
            record.request_id,
            dump_json(record.totals or {}, what="totals", run_id=rid),
            dump_json(record.retry_state or {}, what="retry state", run_id=rid),
            record.lease_owner,
            ttl,
            ttl,
        )
        data = (
            rid,
            dump_json(record.chain, what="chain definition", run_id=rid),
            dump_json(record.input, what="run input", run_id=rid),
            dump_json(record.meta or {}, what="meta", run_id=rid),
        )
        async with self._conn() as conn, conn.transaction():
            cur = await conn.execute(
                "INSERT INTO te_runs (run_id, chain_id, status, created_at, updated_at, "
                "input_type, output, output_type, error, next_task, step_count, request_id, totals, "
                "retry_state, lease_owner, lease_expires_at, lease_ttl_s) VALUES (%s, %s, %s, %s, "
                "%s, %s, %s::json, %s, %s::json, %s, %s, %s, %s::json, %s::json, %s, "
                "now() + %s * interval '1 second', %s) ON CONFLICT (run_id) DO NOTHING",
                params,
            )
            if cur.rowcount != 1:
                raise ConflictError(f"run {rid} already exists", run_id=rid)
            await conn.execute(
                "INSERT INTO te_run_data (run_id, chain, input, meta) VALUES (%s, %s::json, %s::json, %s::json)",
                data,
            )
            if then is not None:
                await then(conn)

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
        if step_status is None:  # no step row, or a variables-only row
            step_status = "succeeded"
        elif step_status not in STEP_STATUSES:
            raise StoreError(f"unknown step status {step_status!r}", run_id=run_id)
        retry_json = (
            None
            if retry_state is None
            else dump_json(retry_state, what="retry state", run_id=run_id)
        )
        totals_json = None if totals is None else dump_json(totals, what="totals", run_id=run_id)
        params: tuple = (
            next_task,
            0 if step is None else 1,
            status,
            retry_json,
            totals_json,
            run_id,
            owner,
            owner,
        )
        sql = _UPDATE_RUN
        if step is not None or vars_delta:
            task_id = step.get("taskID", "") if step is not None else VARS_TASK_ID
            params += (
                seq,
                task_id,
                step_status,
                None if step is None else dump_json(step, what="step", run_id=run_id),
                dump_json(vars_delta, what="vars_delta", run_id=run_id) if vars_delta else "{}",
            )
            sql = _CHECKPOINT_WITH_STEP
        psycopg = _psycopg()
        async with self._conn() as conn:
            try:
                cur = await conn.execute(sql, params)
            except psycopg.errors.UniqueViolation as exc:
                raise StoreError(
                    f"run {run_id}: step {seq} is already checkpointed", run_id=run_id
                ) from exc
            if cur.rowcount != 1:
                raise await self._why_not(conn, run_id)

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
            None if output is None else dump_json(output, what="output", run_id=run_id),
            output_type,
            None if error is None else dump_json(error, what="error", run_id=run_id),
            None if totals is None else dump_json(totals, what="totals", run_id=run_id),
            run_id,
            owner,
            owner,
        )
        async with self._conn() as conn:
            cur = await conn.execute(
                "UPDATE te_runs SET status = %s, output = %s::json, output_type = %s, error = %s::json, "
                "totals = COALESCE(%s::json, totals), updated_at = now(), lease_owner = NULL, "
                "lease_expires_at = NULL, lease_ttl_s = NULL "
                "WHERE run_id = %s AND (%s::text IS NULL OR lease_owner IS NULL OR lease_owner = %s)",
                params,
            )
            if cur.rowcount != 1:
                raise await self._why_not(conn, run_id)

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
                raise RunNotFoundError(f"run {run_id} not found", run_id=run_id)
            if row[0] not in (None, owner) and row[2]:
                raise lease_taken(run_id, row[0], _utc(row[1]))
            cur = await conn.execute(
                "SELECT COALESCE(MAX(seq), 0) + 1 FROM te_steps WHERE run_id = %s", (run_id,)
            )
            seq = (await cur.fetchone())[0]
            await conn.execute(
                "INSERT INTO te_steps (run_id, seq, task_id, status, step, vars_delta, created_at) "
                "VALUES (%s, %s, %s, 'succeeded', NULL, %s::json, now())",
                (run_id, seq, SET_TASK_ID, delta),
            )
            await conn.execute("UPDATE te_runs SET updated_at = now() WHERE run_id = %s", (run_id,))
            return seq

    async def get_run(self, run_id: str) -> RunRecord:
        async with self._conn() as conn:
            cur = await conn.execute(
                f"SELECT {_RUN_COLS} FROM {_RUNS_JOIN} WHERE run_id = %s", (run_id,)
            )
            row = await cur.fetchone()
        if row is None:
            raise RunNotFoundError(f"run {run_id} not found", run_id=run_id)
        return _run_from_row(row)

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
            where.append(f"{_EFF_STATUS} = %s")
            params.append(status)
        if chain_id is not None:
            where.append("chain_id = %s")
            params.append(chain_id)
        if cursor:
            c_at, c_id = decode_cursor(cursor, (int, str))
            where.append("(created_at, run_id) < (%s, %s)")
            params += [from_us(c_at), c_id]
        sql = f"SELECT {_RUN_COLS} FROM {_RUNS_JOIN}"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY created_at DESC, run_id DESC LIMIT %s"
        params.append(limit + 1)
        async with self._conn() as conn:
            cur = await conn.execute(sql, params)
            rows = await cur.fetchall()
        items = [_run_from_row(r) for r in rows[:limit]]
        next_cursor = None
        if len(rows) > limit:
            next_cursor = encode_cursor(to_us(items[-1].created_at), items[-1].run_id)
        return Page(items, next_cursor)

    async def get_steps(self, run_id: str) -> list[StepRecord]:
        async with self._conn() as conn:
            cur = await conn.execute(
                f"SELECT {_STEP_COLS} FROM te_steps WHERE run_id = %s ORDER BY seq", (run_id,)
            )
            rows = await cur.fetchall()
        if not rows:
            await self.get_run(run_id)  # a run with no steps yet, or no such run
        return [_step_from_row(r) for r in rows]

    async def load_state(self, run_id: str) -> RunState:
        async with self._conn() as conn, conn.transaction():
            # One snapshot for the run row and its steps.
            await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            cur = await conn.execute(
                f"SELECT {_RUN_COLS} FROM {_RUNS_JOIN} WHERE run_id = %s", (run_id,)
            )
            run_row = await cur.fetchone()
            cur = await conn.execute(
                f"SELECT {_STEP_COLS} FROM te_steps WHERE run_id = %s ORDER BY seq", (run_id,)
            )
            step_rows = await cur.fetchall()
        if run_row is None:
            raise RunNotFoundError(f"run {run_id} not found", run_id=run_id)
        return fold_state(_run_from_row(run_row), [_step_from_row(r) for r in step_rows])

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

    # --- leases ----------------------------------------------------------------------

    async def acquire_lease(
        self, run_id: str, owner: str, ttl_s: float, *, replacing: str | None = None
    ) -> datetime:
        async with self._conn() as conn:
            # One conditional UPDATE: of two racing owners, the row lock lets exactly one in.
            cur = await conn.execute(
                "UPDATE te_runs SET lease_owner = %s, lease_expires_at = now() + %s * interval '1 second', "
                "lease_ttl_s = %s WHERE run_id = %s AND (lease_owner IS NULL OR lease_expires_at < now() "
                "OR lease_owner = %s OR lease_owner = %s) RETURNING lease_expires_at",
                (owner, float(ttl_s), float(ttl_s), run_id, owner, replacing),
            )
            row = await cur.fetchone()
            if row is None:
                raise await self._why_not(conn, run_id)
            return _utc(row[0])

    async def renew_lease(self, run_id: str, owner: str, ttl_s: float) -> datetime:
        async with self._conn() as conn:
            cur = await conn.execute(
                "UPDATE te_runs SET lease_expires_at = now() + %s * interval '1 second', lease_ttl_s = %s "
                "WHERE run_id = %s AND lease_owner = %s RETURNING lease_expires_at",
                (float(ttl_s), float(ttl_s), run_id, owner),
            )
            row = await cur.fetchone()
            if row is None:
                raise await self._why_not(conn, run_id)
            return _utc(row[0])

    async def release_lease(self, run_id: str, owner: str) -> bool:
        async with self._conn() as conn:
            cur = await conn.execute(
                "UPDATE te_runs SET lease_owner = NULL, lease_expires_at = NULL, lease_ttl_s = NULL "
                "WHERE run_id = %s AND lease_owner = %s",
                (run_id, owner),
            )
            return cur.rowcount == 1
