"""The embedded run store: one SQLite file in WAL mode, called synchronously on the loop.

Why synchronous: a checkpoint is a ~20 µs transaction; handing it to a thread (aiosqlite,
`asyncio.to_thread`) would add more than that per call. Transactions never span an
`await`, so coroutines sharing one store cannot interleave inside one. Other processes
wait for the write lock up to `busy_timeout_s` (this blocks the loop meanwhile: writers
hold the lock for microseconds).

Durability: `synchronous=NORMAL` in WAL mode survives the process being killed at any
point (kill -9); a power loss or OS crash may lose the last few commits, never corrupt.
SQLite's own WAL autocheckpoint (every ~1000 pages) runs inside a commit, with an
fsync: a checkpoint in ~400 pays ~1-4 ms. A background checkpointer thread was tried
and dropped: its PASSIVE checkpoints never catch up with a busy writer, so the WAL
never resets and grows without bound.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
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
from taskengine.store.sqlite_registry import SQLiteRegistry

__all__ = ["SQLiteRunStore"]

_EFF_STATUS = (
    "CASE WHEN status = 'running' AND lease_expires_at < :now THEN 'interrupted' ELSE status END"
)
_RUN_COLS = (
    f"run_id, chain_id, {_EFF_STATUS}, created_at, updated_at, chain, input, input_type, output, "
    "output_type, error, next_task, step_count, request_id, totals, retry_state, lease_owner, "
    "lease_expires_at, meta"
)
_CHECKPOINT = (
    "UPDATE te_runs SET next_task = ?, step_count = step_count + ?, status = ?, updated_at = ?, "
    "retry_state = COALESCE(?, retry_state), totals = COALESCE(?, totals), "
    "lease_expires_at = CASE WHEN lease_owner IS NULL THEN NULL ELSE ? + lease_ttl_us END "
    "WHERE run_id = ? AND (? IS NULL OR lease_owner = ?)"
)
_INSERT_STEP = (
    "INSERT INTO te_steps (run_id, seq, task_id, status, step, vars_delta, created_at) "
    "VALUES (?, ?, ?, ?, ?, ?, ?)"
)
_INSERT_RUN = (
    "INSERT INTO te_runs (run_id, chain_id, status, created_at, updated_at, "
    "input_type, output, output_type, error, next_task, step_count, request_id, totals, "
    "retry_state, lease_owner, lease_expires_at, lease_ttl_us) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_INSERT_RUN_DATA = "INSERT INTO te_run_data (run_id, chain, input, meta) VALUES (?, ?, ?, ?)"
_STEP_COLS = "run_id, seq, task_id, status, step, vars_delta, created_at"
#: runs with the data that never changes after they start (kept apart so checkpoints stay cheap)
_RUNS_JOIN = "te_runs JOIN te_run_data USING (run_id)"


def _now_us() -> int:
    return time.time_ns() // 1000


def _loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def _run_from_row(row: tuple) -> RunRecord:
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


def _step_from_row(row: tuple) -> StepRecord:
    return StepRecord(
        run_id=row[0],
        seq=row[1],
        task_id=row[2],
        status=row[3],
        step=_loads(row[4]),
        vars_delta=json.loads(row[5]),
        created_at=from_us(row[6]),
    )


class SQLiteRunStore(SQLiteRegistry, StoreBase):
    """Runs, checkpoints, registries and secret blobs in one SQLite file."""

    backend = "sqlite"

    def __init__(self, path: str | os.PathLike[str], *, busy_timeout_s: float = 10.0) -> None:
        self.path = os.fspath(path)
        self.busy_timeout_s = busy_timeout_s
        self._conn: sqlite3.Connection | None = None
        self._cur: sqlite3.Cursor | None = None
        # Only one thread may be inside a transaction on this connection (a sync bridge
        # may run the store from another thread); uncontended it costs ~0.1 µs.
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"SQLiteRunStore({self.path!r})"

    # --- lifecycle -------------------------------------------------------------------

    async def open(self) -> None:
        if self._conn is not None:
            return
        parent = os.path.dirname(self.path)
        try:
            if parent:
                os.makedirs(parent, exist_ok=True)
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
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
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
                    (COMPONENT, version, _now_us()),
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
            expires = _now_us() + ttl_us
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
            cur.execute(_INSERT_RUN, params)
            cur.execute(_INSERT_RUN_DATA, data)

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
        now = _now_us()
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
        update = (
            next_task,
            0 if step is None else 1,
            status,
            now,
            retry_json,
            totals_json,
            now,
            run_id,
            owner,
            owner,
        )
        row = None
        if step is not None or vars_delta:
            task_id = step.get("taskID", "") if step is not None else VARS_TASK_ID
            row = (run_id, seq, task_id, step_status, step_json, delta_json, now)
        cur = self._c()
        with self._lock:
            try:
                cur.execute("BEGIN IMMEDIATE")
                cur.execute(_CHECKPOINT, update)
                if cur.rowcount != 1:
                    cur.execute("ROLLBACK")
                    raise self._why_not(run_id, owner)
                if row is not None:
                    cur.execute(_INSERT_STEP, row)
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
        params = (
            status,
            None if output is None else dump_json(output, what="output", run_id=run_id),
            output_type,
            None if error is None else dump_json(error, what="error", run_id=run_id),
            None if totals is None else dump_json(totals, what="totals", run_id=run_id),
            _now_us(),
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
            now = _now_us()
            row = cur.execute(
                "SELECT lease_owner, lease_expires_at FROM te_runs WHERE run_id = ?", (run_id,)
            ).fetchone()
            if row is None:
                raise RunNotFoundError(f"run {run_id} not found", run_id=run_id)
            if (
                owner is not None
                and row[0] not in (None, owner)
                and row[1] is not None
                and row[1] >= now
            ):
                raise lease_taken(run_id, row[0], from_us(row[1]))
            seq = cur.execute(
                "SELECT COALESCE(MAX(seq), 0) + 1 FROM te_steps WHERE run_id = ?", (run_id,)
            ).fetchone()[0]
            cur.execute(_INSERT_STEP, (run_id, seq, SET_TASK_ID, "succeeded", None, delta, now))
            cur.execute("UPDATE te_runs SET updated_at = ? WHERE run_id = ?", (now, run_id))
            return seq

        return self._write(append)

    async def get_run(self, run_id: str) -> RunRecord:
        rows = self._read(
            f"SELECT {_RUN_COLS} FROM {_RUNS_JOIN} WHERE run_id = :rid",
            {"now": _now_us(), "rid": run_id},
        )
        if not rows:
            raise RunNotFoundError(f"run {run_id} not found", run_id=run_id)
        return _run_from_row(rows[0])

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
        params: dict[str, Any] = {"now": _now_us(), "limit": limit + 1}
        if status is not None:
            where.append(f"{_EFF_STATUS} = :status")
            params["status"] = status
        if chain_id is not None:
            where.append("chain_id = :chain_id")
            params["chain_id"] = chain_id
        if cursor:
            params["c_at"], params["c_id"] = decode_cursor(cursor, (int, str))
            where.append("(created_at, run_id) < (:c_at, :c_id)")
        sql = f"SELECT {_RUN_COLS} FROM {_RUNS_JOIN}"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY created_at DESC, run_id DESC LIMIT :limit"
        rows = self._read(sql, params)
        items = [_run_from_row(r) for r in rows[:limit]]
        next_cursor = None
        if len(rows) > limit:
            last = rows[limit - 1]
            next_cursor = encode_cursor(last[3], last[0])
        return Page(items, next_cursor)

    async def get_steps(self, run_id: str) -> list[StepRecord]:
        rows = self._read(
            f"SELECT {_STEP_COLS} FROM te_steps WHERE run_id = ? ORDER BY seq", (run_id,)
        )
        if not rows:
            await self.get_run(run_id)  # a run with no steps yet, or no such run
        return [_step_from_row(r) for r in rows]

    async def load_state(self, run_id: str) -> RunState:
        cur = self._c()
        with self._lock:
            try:
                # One read transaction: the run row and its steps from the same snapshot.
                cur.execute("BEGIN")
                run_rows = cur.execute(
                    f"SELECT {_RUN_COLS} FROM {_RUNS_JOIN} WHERE run_id = :rid",
                    {"now": _now_us(), "rid": run_id},
                ).fetchall()
                step_rows = cur.execute(
                    f"SELECT {_STEP_COLS} FROM te_steps WHERE run_id = ? ORDER BY seq", (run_id,)
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
        return fold_state(_run_from_row(run_rows[0]), [_step_from_row(r) for r in step_rows])

    async def mark_interrupted(self, older_than_s: float) -> list[str]:
        def mark(cur: sqlite3.Cursor) -> list[str]:
            now = _now_us()
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
        def take(cur: sqlite3.Cursor) -> int:
            now = _now_us()
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
            now = _now_us()
            ttl = int(ttl_s * 1e6)
            cur.execute(
                "UPDATE te_runs SET lease_expires_at = ?, lease_ttl_us = ? WHERE run_id = ? AND lease_owner = ?",
                (now + ttl, ttl, run_id, owner),
            )
            if cur.rowcount != 1:
                raise self._why_not(run_id, owner)
            return now + ttl

        return from_us(self._write(renew))

    async def release_lease(self, run_id: str, owner: str) -> bool:
        def release(cur: sqlite3.Cursor) -> bool:
            cur.execute(
                "UPDATE te_runs SET lease_owner = NULL, lease_expires_at = NULL, lease_ttl_us = NULL "
                "WHERE run_id = ? AND lease_owner = ?",
                (run_id, owner),
            )
            return cur.rowcount == 1

        return self._write(release)
