"""The SQLite store's connection: opening and migrating the file, and its transactions.

Every other part of the SQLite store (runs, checkpoints, leases, registries) is a mixin of
`SQLiteConnection` that runs its SQL through `_write` (one write transaction),
`_write_grouped` (a run write committed together with the others of its loop turn), `_read`,
or `_c()` plus `_lock` when it manages a transaction itself.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from typing import Any

from taskengine.errors import StoreError
from taskengine.store.base import StoreBase
from taskengine.store.migrations import (
    COMPONENT,
    SCHEMA_VERSION,
    SQLITE_MIGRATIONS,
    VERSION_TABLE,
    newer_schema_message,
)
from taskengine.store.paths import prepare_sqlite_dir
from taskengine.store.records import from_us
from taskengine.store.rules import lease_taken, run_not_found
from taskengine.store.sqlite.group_commit import GroupCommit
from taskengine.store.sqlite.sql import CONNECTION_PRAGMAS, now_us

__all__ = ["SQLiteConnection"]


class SQLiteConnection(StoreBase):
    """One SQLite connection in WAL mode, called synchronously on the event loop."""

    backend = "sqlite"

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        busy_timeout_s: float = 10.0,
        create_tree: bool = False,
    ) -> None:
        self.path = os.fspath(path)
        self.busy_timeout_s = busy_timeout_s
        #: create every missing directory above the file (the default location), not just its own
        self.create_tree = create_tree
        self._conn: sqlite3.Connection | None = None
        self._cur: sqlite3.Cursor | None = None
        # Only one thread may be inside a transaction on this connection (a sync bridge
        # may run the store from another thread); uncontended it costs ~0.1 µs.
        self._lock = threading.Lock()
        #: run id → [lease owner, hot-path deadline (µs), step count] for the runs whose last
        #: full checkpoint this store wrote while holding their lease
        self._hot: dict[str, list[Any]] = {}
        #: run writes (create, checkpoint, finish) of one loop turn share one transaction
        self._group = GroupCommit(self)

    # --- lifecycle -------------------------------------------------------------------

    async def open(self) -> None:
        if self._conn is not None:
            return
        prepare_sqlite_dir(self.path, create_tree=self.create_tree)
        try:
            conn = sqlite3.connect(
                self.path,
                timeout=self.busy_timeout_s,
                isolation_level=None,
                check_same_thread=False,
            )
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot open run store {self.path}: {exc}") from exc
        try:
            # The first read of the file: garbage bytes fail here ("file is not a database").
            for pragma in CONNECTION_PRAGMAS:
                conn.execute(pragma)
            self._migrate(conn)
        except sqlite3.DatabaseError as exc:
            conn.close()
            if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc):
                raise self._translate(exc) from exc
            raise StoreError(
                f"cannot use {self.path} as a run store: it is not a readable SQLite database "
                f"({exc}); it may be corrupted or belong to another program. Move it away or "
                "point TASKENGINE_DB elsewhere"
            ) from exc
        except BaseException:
            conn.close()
            raise
        self._conn = conn
        self._cur = conn.cursor()

    def _migrate(self, conn: sqlite3.Connection) -> None:
        """Bring the schema up to date; an up-to-date file needs no write lock to open."""
        if self._schema_version(conn) == SCHEMA_VERSION:
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            # Re-read under the write lock: another process may have just migrated.
            current = self._schema_version(conn)
            for version in range(current + 1, SCHEMA_VERSION + 1):
                for statement in SQLITE_MIGRATIONS[version - 1]:
                    conn.execute(statement)
                conn.execute(
                    f"INSERT INTO {VERSION_TABLE} (component, version, applied_at) VALUES (?, ?, ?) "
                    "ON CONFLICT (component) DO UPDATE SET version = excluded.version, "
                    "applied_at = excluded.applied_at",
                    (COMPONENT, version, now_us()),
                )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def _schema_version(self, conn: sqlite3.Connection) -> int:
        """The file's store version (0: empty); refuses foreign, damaged or newer files."""
        tables = {
            r[0]
            for r in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            )
        }
        if VERSION_TABLE not in tables:
            if tables:
                names = ", ".join(sorted(tables)[:8])
                raise StoreError(
                    f"cannot use {self.path} as a run store: it is another program's database "
                    f"(tables {names}; no {VERSION_TABLE}). Point TASKENGINE_DB at a new file"
                )
            return 0
        row = conn.execute(
            f"SELECT version FROM {VERSION_TABLE} WHERE component = ?", (COMPONENT,)
        ).fetchone()
        if row is None or not isinstance(row[0], int):
            raise StoreError(
                f"cannot use {self.path} as a run store: its {VERSION_TABLE} table has "
                "no valid store version (a damaged or foreign database)"
            )
        if row[0] > SCHEMA_VERSION:
            raise StoreError(newer_schema_message(self.path, row[0]))
        return row[0]

    async def aclose(self) -> None:
        if self._conn is not None:
            self._group.flush()
        conn, self._conn, self._cur = self._conn, None, None
        if conn is not None:
            conn.close()

    def _c(self) -> sqlite3.Cursor:
        if self._cur is None:
            raise StoreError(f"run store {self.path} is not open (call `await store.open()`)")
        return self._cur

    def _write(self, fn, *args: Any) -> Any:
        """Run `fn(cursor, *args)` in one write transaction; SQLite errors become StoreError."""
        cur = self._c()
        with self._lock:
            try:
                cur.execute("BEGIN IMMEDIATE")
                result = fn(cur, *args)
                cur.execute("COMMIT")
                return result
            except BaseException as exc:
                if self._conn is not None and self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error):
                    raise self._translate(exc) from exc
                raise

    async def _write_grouped(self, fn, *args: Any) -> Any:
        """`_write`, in one transaction with the other run writes of this loop turn
        (`group_commit`); returns once that transaction is committed."""
        return await self._group.write(fn, *args)

    def _read(self, sql: str, params: Any = ()) -> list[tuple]:
        cur = self._c()
        with self._lock:
            try:
                return cur.execute(sql, params).fetchall()
            except sqlite3.Error as exc:
                raise self._translate(exc) from exc

    def _translate(self, exc: sqlite3.Error) -> StoreError:
        if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc):
            return StoreError(
                f"run store {self.path} is locked by another process "
                f"(waited {self.busy_timeout_s:g} s): {exc}"
            )
        return StoreError(f"run store {self.path}: {exc}")

    def _why_not(self, run_id: str, owner: str | None) -> StoreError:
        """Why a conditional update of a run touched nothing: no such run, or a lost lease."""
        row = (
            self._c()
            .execute(
                "SELECT lease_owner, lease_expires_at FROM te_runs WHERE run_id = ?", (run_id,)
            )
            .fetchone()
        )
        if row is None:
            return run_not_found(run_id)
        return lease_taken(run_id, row[0], from_us(row[1]))
