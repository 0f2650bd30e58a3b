"""The PostgreSQL store's connections: a tiny pool, the URL it is opened with, migrations.

Every other part of the PostgreSQL store (runs, checkpoints, leases, registries) is a mixin
of `PostgresConnection` that runs its SQL on a pooled connection from `_conn()`.
"""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager, suppress
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from taskengine.errors import StoreError
from taskengine.store.base import StoreBase
from taskengine.store.migrations import (
    COMPONENT,
    OWN_TABLES,
    POSTGRES_MIGRATIONS,
    SCHEMA_VERSION,
    VERSION_TABLE,
    newer_schema_message,
)
from taskengine.store.postgres.group_commit import GroupCommit
from taskengine.store.postgres.sql import utc
from taskengine.store.rules import lease_taken, run_not_found

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

    from psycopg import AsyncConnection

__all__ = ["PostgresConnection", "psycopg_module", "redact_url"]


def redact_url(url: str) -> str:
    """The URL with its password replaced, fit for error messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def psycopg_module():
    """The `psycopg` package, or a StoreError saying how to install it."""
    try:
        import psycopg
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise StoreError(
            "the PostgreSQL run store needs psycopg: pip install 'taskengine[postgres]'"
        ) from exc
    return psycopg


#: a session idle inside a transaction this long is ended by the server (see `_connect`)
IDLE_IN_TRANSACTION_MS = 10_000


class PostgresConnection(StoreBase):
    """A pool of autocommit connections to one database (and schema), migrated on open."""

    backend = "postgres"

    def __init__(self, url: str, *, pool_size: int | None = None) -> None:
        parts = urlsplit(url)
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        self.schema = query.pop("schema", None) or None
        raw_size = query.pop("pool_size", "") or "4"
        grouped = query.pop("group_commit", "on").lower() not in ("0", "off", "false", "no")
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
        #: concurrent runs' checkpoints share transactions (None: `?group_commit=off`)
        self._writes = (
            GroupCommit(self._conn, flushers=max(1, self._size // 2)) if grouped else None
        )

    # --- connections -----------------------------------------------------------------

    async def _connect(self) -> AsyncConnection:
        psycopg = psycopg_module()
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
            # A process frozen inside a transaction (a paused VM, SIGSTOP mid group commit)
            # would hold its runs' row locks, and no other worker could take them over after
            # their leases expire. Our transactions never wait on the client for long.
            await conn.execute(
                f"SET idle_in_transaction_session_timeout = {IDLE_IN_TRANSACTION_MS}"
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
        psycopg = psycopg_module()
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
        """Create the schema if asked for, then apply the pending migrations under a lock."""
        psycopg = psycopg_module()
        where = f"{self.url}" + (f" (schema {self.schema})" if self.schema else "")
        try:
            if self.schema:
                await _create_schema(conn, self.schema)
            async with conn.transaction():
                # Several processes may start at once: one migrates, the others wait here.
                await conn.execute(
                    "SELECT pg_advisory_xact_lock(hashtext('taskengine.store:' || coalesce(current_schema(), '')))"
                )
                current = await _schema_version(conn, where)
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
        if self._writes is not None:
            await self._writes.drain()
        self._open = False
        idle, self._idle = self._idle, []
        for conn in idle:
            await self._discard(conn)

    async def _write_one_row(
        self,
        sql: str,
        params: tuple,
        run_id: str,
        *,
        on_unique: Callable[[], Exception] | None = None,
    ) -> None:
        """Run a write that must change one row of `run_id`, grouped with other runs' writes
        (unless `?group_commit=off`); durable when it returns. No row: why (lease, not found).

        A unique violation raises `on_unique()` when given; other database errors StoreError.
        """
        psycopg = psycopg_module()
        if self._writes is None:
            async with self._conn() as conn:
                try:
                    cur = await conn.execute(sql, params)
                except psycopg.errors.UniqueViolation as exc:
                    if on_unique is None:
                        raise
                    raise on_unique() from exc
                if cur.rowcount != 1:
                    raise await self._why_not(conn, run_id)
            return
        if not self._open:
            raise StoreError(f"run store {self.url} is not open (call `await store.open()`)")
        try:
            rowcount = await self._writes.execute(sql, params)
        except psycopg.errors.UniqueViolation as exc:
            raise (self._translate(exc) if on_unique is None else on_unique()) from exc
        except psycopg.Error as exc:
            raise self._translate(exc) from exc
        if rowcount != 1:
            async with self._conn() as conn:
                raise await self._why_not(conn, run_id)

    async def _writes_rowcount(self, sql: str, params: tuple) -> int:
        """A grouped write's row count once committed; database errors as StoreError."""
        assert self._writes is not None
        if not self._open:
            raise StoreError(f"run store {self.url} is not open (call `await store.open()`)")
        try:
            return await self._writes.execute(sql, params)
        except psycopg_module().Error as exc:
            raise self._translate(exc) from exc

    async def _why_not(self, conn: AsyncConnection, run_id: str) -> StoreError:
        cur = await conn.execute(
            "SELECT lease_owner, lease_expires_at FROM te_runs WHERE run_id = %s", (run_id,)
        )
        row = await cur.fetchone()
        if row is None:
            return run_not_found(run_id)
        return lease_taken(run_id, row[0], utc(row[1]))


async def _create_schema(conn: AsyncConnection, schema: str) -> None:
    """Create `schema` unless it exists, also when other processes create it at the same time."""
    psycopg = psycopg_module()
    from psycopg import sql

    # Look first: CREATE SCHEMA needs a privilege a user of an existing one may lack.
    cur = await conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,))
    if await cur.fetchone() is not None:
        return
    # IF NOT EXISTS does not cover a concurrent CREATE: the loser fails; the schema is there
    with suppress(psycopg.errors.UniqueViolation, psycopg.errors.DuplicateSchema):
        await conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))


async def _schema_version(conn: AsyncConnection, where: str) -> int:
    """The schema's store version (0: empty); refuses foreign, damaged or newer schemas."""
    cur = await conn.execute(
        "SELECT to_regclass(%s) IS NOT NULL, "
        "(SELECT count(*) FROM unnest(%s::text[]) AS t(name) WHERE to_regclass(name) IS NOT NULL)",
        (VERSION_TABLE, list(OWN_TABLES)),
    )
    row = await cur.fetchone()
    assert row is not None  # an aggregate query answers one row
    has_version, own_tables = row
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
    return current
