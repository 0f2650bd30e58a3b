"""The embedded run store: one SQLite file in WAL mode, called synchronously on the loop.

Why synchronous: a checkpoint is a ~20 µs transaction; handing it to a thread (aiosqlite,
`asyncio.to_thread`) would add more than that per call. Transactions never span an
`await`, so coroutines sharing one store cannot interleave inside one. Other processes
wait for the write lock up to `busy_timeout_s` (this blocks the loop meanwhile: writers
hold the lock for microseconds).

Durability: `synchronous=NORMAL` in WAL mode survives the process being killed at any
point (kill -9); a power loss or OS crash may lose the last few commits, never corrupt.
SQLite's WAL autocheckpoint runs inside a commit, with two fsyncs (1-7 ms here). At
SQLite's default of 1000 pages it ran every ~1000 steps and made up ~30% of the mean
cost of a checkpoint; at 10 000 pages it runs a tenth as often, and a page rewritten
by many steps is copied back once. The price: each one holds the event loop longer
(~30 ms here instead of a few; a few hundred on a congested disk). The WAL file is cut
back to 64 MiB after a checkpoint, so disk use stays bounded (`CONNECTION_PRAGMAS` in
sqlite_sql.py). A background checkpointer thread was tried and dropped: its PASSIVE
checkpoints never catch up with a busy writer, so the WAL never resets and grows
without bound.

Checkpoints come in two kinds. A full one updates the run row and inserts the step row
in one transaction. While this store holds a run's lease and a third of the lease has
not yet passed since it last extended it, a step whose run stays "running" is written
as one lease-guarded INSERT of its step row alone (one page written instead of two),
carrying the run's next task and step count; readers overlay the newest such row on the
run row (see migration 3), and the next full checkpoint brings the run row up to date.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from datetime import datetime
from typing import Any

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
    SCHEMA_VERSION,
    SQLITE_MIGRATIONS,
    VERSION_TABLE,
    newer_schema_message,
)
from taskengine.store.paths import prepare_sqlite_dir
from taskengine.store.sqlite_registry import SQLiteRegistry
from taskengine.store.sqlite_sql import (
    CHECKPOINT,
    CONNECTION_PRAGMAS,
    EFF_STATUS,
    HOT_STEP,
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

__all__ = ["CONNECTION_PRAGMAS", "SQLiteRunStore"]


class SQLiteRunStore(SQLiteRegistry, StoreBase):
    """Runs, checkpoints, registries and secret blobs in one SQLite file."""

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

    def __repr__(self) -> str:
        return f"SQLiteRunStore({self.path!r})"

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

    # --- runs ------------------------------------------------------------------------

    async def create_run(self, record: RunRecord, *, lease_ttl_s: float | None = None) -> None:
        check_status(record.status, run_id=record.run_id)
        rid = record.run_id
        ttl_us = expires = None
        if record.lease_owner is not None:
            ttl_us = int((lease_ttl_s or DEFAULT_LEASE_TTL_S) * 1e6)
            expires = now_us() + ttl_us
        params = (
            rid,
            record.chain_id,
            record.status,
            to_us(record.created_at),
            to_us(record.updated_at or record.created_at),
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
            expires,
            ttl_us,
        )
        data = (
            rid,
            dump_json(record.chain, what="chain definition", run_id=rid),
            dump_json(record.input, what="run input", run_id=rid),
            dump_json(record.meta or {}, what="meta", run_id=rid),
        )

        def insert(cur: sqlite3.Cursor) -> None:
            if cur.execute("SELECT 1 FROM te_runs WHERE run_id = ?", (rid,)).fetchone():
                raise ConflictError(f"run {rid} already exists", run_id=rid)
            cur.execute(INSERT_RUN, params)
            cur.execute(INSERT_RUN_DATA, data)

        self._write(insert)

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
        if step_status is None:  # no step row, or a variables-only row
            step_status = "succeeded"
        elif step_status not in STEP_STATUSES:
            raise StoreError(f"unknown step status {step_status!r}", run_id=run_id)
        row = None
        if step is not None or vars_delta:
            task_id = step.get("taskID", "") if step is not None else VARS_TASK_ID
            row = (run_id, seq, task_id, step_status, step_json, delta_json, now)
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
        cur = self._c()
        with self._lock:
            try:
                cur.execute("BEGIN IMMEDIATE")
                synced = cur.execute(CHECKPOINT, update).fetchone()
                if synced is None:
                    cur.execute("ROLLBACK")
                    self._hot.pop(run_id, None)
                    raise self._why_not(run_id, owner)
                if row is not None:
                    cur.execute(INSERT_STEP, row)
                cur.execute("COMMIT")
            except BaseException as exc:
                if self._conn is not None and self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                if isinstance(exc, sqlite3.IntegrityError):
                    raise StoreError(
                        f"run {run_id}: step {seq} is already checkpointed", run_id=run_id
                    ) from exc
                if isinstance(exc, sqlite3.Error):
                    raise self._translate(exc) from exc
                raise
            step_count, ttl_us = synced
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
                raise StoreError(
                    f"run {run_id}: step {seq} is already checkpointed", run_id=run_id
                ) from exc
            except sqlite3.Error as exc:
                raise self._translate(exc) from exc
            if cur.rowcount != 1:
                self._hot.pop(run_id, None)
                raise self._why_not(run_id, owner)
            hot[2] = steps

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
            return RunNotFoundError(f"run {run_id} not found", run_id=run_id)
        return lease_taken(run_id, row[0], from_us(row[1]))

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
            None if output is None else dump_json(output, what="output", run_id=run_id),
            output_type,
            None if error is None else dump_json(error, what="error", run_id=run_id),
            None if totals is None else dump_json(totals, what="totals", run_id=run_id),
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

        self._write(update)

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
                raise RunNotFoundError(f"run {run_id} not found", run_id=run_id)
            if row[0] not in (None, owner) and row[1] is not None and row[1] >= now:
                raise lease_taken(run_id, row[0], from_us(row[1]))
            seq = cur.execute(
                "SELECT COALESCE(MAX(seq), 0) + 1 FROM te_steps WHERE run_id = ?", (run_id,)
            ).fetchone()[0]
            cur.execute(INSERT_STEP, (run_id, seq, SET_TASK_ID, "succeeded", None, delta, now))
            cur.execute("UPDATE te_runs SET updated_at = ? WHERE run_id = ?", (now, run_id))
            return seq

        return self._write(append)

    async def get_run(self, run_id: str) -> RunRecord:
        rows = self._read(
            f"SELECT {RUN_COLS} FROM {RUNS_FROM} WHERE r.run_id = :rid",
            {"now": now_us(), "rid": run_id},
        )
        if not rows:
            raise RunNotFoundError(f"run {run_id} not found", run_id=run_id)
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
        rows = self._read(sql, params)
        items = [run_from_row(r) for r in rows[:limit]]
        next_cursor = None
        if len(rows) > limit:
            last = rows[limit - 1]
            next_cursor = encode_cursor(last[3], last[0])
        return Page(items, next_cursor)

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
            raise RunNotFoundError(f"run {run_id} not found", run_id=run_id)
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

    # --- leases ----------------------------------------------------------------------

    async def acquire_lease(
        self, run_id: str, owner: str, ttl_s: float, *, replacing: str | None = None
    ) -> datetime:
        self._hot.pop(run_id, None)

        def take(cur: sqlite3.Cursor) -> int:
            now = now_us()
            ttl = int(ttl_s * 1e6)
            cur.execute(
                "UPDATE te_runs SET lease_owner = ?, lease_expires_at = ?, lease_ttl_us = ? "
                "WHERE run_id = ? AND (lease_owner IS NULL OR lease_expires_at < ? OR lease_owner = ? "
                "OR lease_owner = ?)",
                (owner, now + ttl, ttl, run_id, now, owner, replacing),
            )
            if cur.rowcount != 1:
                raise self._why_not(run_id, None)
            return now + ttl

        return from_us(self._write(take))

    async def renew_lease(self, run_id: str, owner: str, ttl_s: float) -> datetime:
        def renew(cur: sqlite3.Cursor) -> int:
            now = now_us()
            ttl = int(ttl_s * 1e6)
            cur.execute(
                "UPDATE te_runs SET lease_expires_at = ?, lease_ttl_us = ? WHERE run_id = ? AND lease_owner = ?",
                (now + ttl, ttl, run_id, owner),
            )
            if cur.rowcount != 1:
                self._hot.pop(run_id, None)
                raise self._why_not(run_id, owner)
            hot = self._hot.get(run_id)
            if hot is not None and hot[0] == owner:
                hot[1] = now + ttl // 3
            return now + ttl

        return from_us(self._write(renew))

    async def release_lease(self, run_id: str, owner: str) -> bool:
        self._hot.pop(run_id, None)

        def release(cur: sqlite3.Cursor) -> bool:
            # A run without an owner goes quiet from its last step (see mark_interrupted).
            cur.execute(
                "UPDATE te_runs SET lease_owner = NULL, lease_expires_at = NULL, lease_ttl_us = NULL, "
                "updated_at = MAX(updated_at, COALESCE((SELECT s.created_at FROM te_steps s "
                "WHERE s.run_id = te_runs.run_id ORDER BY s.seq DESC LIMIT 1), 0)) "
                "WHERE run_id = ? AND lease_owner = ?",
                (run_id, owner),
            )
            return cur.rowcount == 1

        return self._write(release)
