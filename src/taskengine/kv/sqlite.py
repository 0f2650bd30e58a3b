"""KV store in one SQLite file (WAL mode): the embedded default, shared by local processes.

Calls are synchronous `sqlite3` on the event loop thread, on purpose: each operation is a
handful of indexed statements on a local file that take microseconds, while handing them to a
thread (`asyncio.to_thread`) costs more than the work itself. With WAL and
`synchronous=NORMAL` a commit does not fsync; a writer from another process can make us wait
for up to `timeout` seconds (the busy timeout), which only happens under cross-process load.
TTL is stored as a wall-clock deadline so every process agrees on it; expired keys read as
missing and are deleted by the next write that touches them (and swept on open).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, suppress
from pathlib import Path

from taskengine.errors import StoreError
from taskengine.kv.base import SyncBackedKV, kind_error, slice_bounds
from taskengine.store.paths import prepare_sqlite_dir

__all__ = ["SQLiteKV"]

_FORMAT = "taskengine-kv"
_VERSION = 1

_SCHEMA = (
    "CREATE TABLE kv_meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE kv_keys (key TEXT PRIMARY KEY, kind TEXT NOT NULL, value BLOB,"
    " expires_at REAL) WITHOUT ROWID",
    "CREATE INDEX kv_keys_expiry ON kv_keys (expires_at) WHERE expires_at IS NOT NULL",
    "CREATE TABLE kv_list (key TEXT NOT NULL, pos INTEGER NOT NULL, value BLOB NOT NULL,"
    " PRIMARY KEY (key, pos)) WITHOUT ROWID",
    "CREATE TABLE kv_set (key TEXT NOT NULL, member BLOB NOT NULL,"
    " PRIMARY KEY (key, member)) WITHOUT ROWID",
)

_LIST_STATE = (
    "SELECT kind, expires_at, (SELECT MIN(pos) FROM kv_list WHERE key = ?1),"
    " (SELECT MAX(pos) FROM kv_list WHERE key = ?1) FROM kv_keys WHERE key = ?1"
)

#: Every this many write transactions, expired keys nobody touches again are swept out.
_SWEEP_EVERY = 512


class SQLiteKV(SyncBackedKV):
    """A KV store in a SQLite file; tables are created on open, foreign files are refused."""

    def __init__(self, path: str | Path, *, namespace: str = "", timeout: float = 5.0) -> None:
        self.namespace = namespace
        self.path = Path(path)
        self._depth = 0
        self._writes = 0
        #: list bounds looked up in the current transaction (a batch touches a list twice)
        self._bounds_seen: dict[str, tuple[int, int] | None] = {}
        self._conn: sqlite3.Connection | None = _connect(self.path, timeout)

    def __repr__(self) -> str:
        return f"SQLiteKV({str(self.path)!r}, namespace={self.namespace!r})"

    @property
    def conn(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StoreError(f"KV database {self.path} is closed")
        return self._conn

    # --- transactions ---------------------------------------------------------------------

    @contextmanager
    def _tx(self, begin: str) -> Iterator[None]:
        if self._depth:  # already inside a batch's transaction
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        conn = self.conn
        try:
            conn.execute(begin)
        except sqlite3.Error as exc:
            raise self._error(exc) from exc
        self._depth = 1
        try:
            yield
        except sqlite3.Error as exc:
            _rollback(conn)
            raise self._error(exc) from exc
        except BaseException:
            _rollback(conn)
            raise
        else:
            try:
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                _rollback(conn)
                raise self._error(exc) from exc
        finally:
            self._depth = 0
            self._bounds_seen.clear()

    def _reading(self) -> AbstractContextManager[None]:
        return self._tx("BEGIN")

    def _writing(self) -> AbstractContextManager[None]:
        if not self._depth:
            self._writes += 1
            if self._writes % _SWEEP_EVERY == 0:
                self._sweep()
        return self._tx("BEGIN IMMEDIATE")

    def _error(self, exc: sqlite3.Error) -> StoreError:
        return StoreError(f"KV database {self.path}: {exc}")

    def _sweep(self) -> None:
        try:
            with self._tx("BEGIN IMMEDIATE"):
                _purge_expired(self.conn, time.time())
        except StoreError:
            pass  # housekeeping only; the next sweep tries again

    # --- primitives -------------------------------------------------------------------------

    def _kind(self, k: str, *, purge: bool = False) -> str | None:
        """The live kind of `k`; an expired key reads as missing (and is deleted on writes)."""
        row = self.conn.execute(
            "SELECT kind, expires_at FROM kv_keys WHERE key = ?", (k,)
        ).fetchone()
        if row is None:
            return None
        if row[1] is not None and row[1] <= time.time():
            if purge:
                self._remove(k)
            return None
        return row[0]

    def _check(self, k: str, wants: str, *, purge: bool = False) -> bool:
        kind = self._kind(k, purge=purge)
        if kind is None:
            return False
        if kind != wants:
            raise kind_error(self._strip(k), kind, wants)
        return True

    def _remove(self, k: str) -> None:
        self._bounds_seen.pop(k, None)
        conn = self.conn
        conn.execute("DELETE FROM kv_keys WHERE key = ?", (k,))
        conn.execute("DELETE FROM kv_list WHERE key = ?", (k,))
        conn.execute("DELETE FROM kv_set WHERE key = ?", (k,))

    def _x_get(self, k: str) -> bytes | None:
        if not self._check(k, "string"):
            return None
        row = self.conn.execute("SELECT value FROM kv_keys WHERE key = ?", (k,)).fetchone()
        return bytes(row[0])

    def _x_set(self, k: str, v: bytes, ttl: float | None) -> None:
        self._bounds_seen.pop(k, None)
        if self._kind(k, purge=True) not in (None, "string"):
            self._remove(k)
        deadline = None if ttl is None else time.time() + ttl
        self.conn.execute(
            "INSERT INTO kv_keys (key, kind, value, expires_at) VALUES (?, 'string', ?, ?)"
            " ON CONFLICT (key) DO UPDATE SET kind = 'string', value = excluded.value,"
            " expires_at = excluded.expires_at",
            (k, v, deadline),
        )

    def _x_delete(self, ks: tuple[str, ...]) -> int:
        removed = 0
        for k in ks:
            if self._kind(k, purge=True) is not None:
                self._remove(k)
                removed += 1
        return removed

    def _x_exists(self, k: str) -> bool:
        return self._kind(k) is not None

    def _x_expire(self, k: str, ttl: float) -> bool:
        if self._kind(k, purge=True) is None:
            return False
        if ttl <= 0:
            self._remove(k)
        else:
            self.conn.execute(
                "UPDATE kv_keys SET expires_at = ? WHERE key = ?", (time.time() + ttl, k)
            )
        return True

    # A list's positions are always contiguous (items only enter and leave at the ends), so
    # index i is position MIN(pos) + i and every list operation is an index range, not a scan.

    def _bounds(self, k: str, *, purge: bool = False) -> tuple[int, int] | None:
        """(first, last) position of the live list at `k`, None when there is none."""
        seen = self._bounds_seen
        if k in seen:
            return seen[k]
        row = self.conn.execute(_LIST_STATE, (k,)).fetchone()
        bounds = None
        if row is not None:
            if row[1] is not None and row[1] <= time.time():
                if purge:
                    self._remove(k)
            elif row[0] != "list":
                raise kind_error(self._strip(k), row[0], "list")
            elif row[2] is not None:
                bounds = (row[2], row[3])
        seen[k] = bounds
        return bounds

    def _x_push(self, k: str, vs: list[bytes], left: bool) -> int:
        bounds = self._bounds(k, purge=True)
        if not vs:
            return 0 if bounds is None else bounds[1] - bounds[0] + 1
        conn = self.conn
        if bounds is None:
            conn.execute("INSERT INTO kv_keys (key, kind) VALUES (?, 'list')", (k,))
            bounds = (1, 0)  # empty: the first item lands on position 0 from either end
        lo, hi = bounds
        step, first = (-1, lo - 1) if left else (1, hi + 1)
        conn.executemany(
            "INSERT INTO kv_list (key, pos, value) VALUES (?, ?, ?)",
            [(k, first + i * step, v) for i, v in enumerate(vs)],
        )
        lo, hi = (lo - len(vs), hi) if left else (lo, hi + len(vs))
        self._bounds_seen[k] = (lo, hi)
        return hi - lo + 1

    def _x_lrange(self, k: str, start: int, stop: int) -> list[bytes]:
        bounds = self._bounds(k)
        if bounds is None:
            return []
        base = bounds[0]
        lo, hi = slice_bounds(start, stop, bounds[1] - base + 1)
        if hi <= lo:
            return []
        rows = self.conn.execute(
            "SELECT value FROM kv_list WHERE key = ? AND pos BETWEEN ? AND ? ORDER BY pos",
            (k, base + lo, base + hi - 1),
        )
        return [bytes(r[0]) for r in rows]

    def _x_ltrim(self, k: str, start: int, stop: int) -> None:
        bounds = self._bounds(k, purge=True)
        if bounds is None:
            return
        base, top = bounds
        lo, hi = slice_bounds(start, stop, top - base + 1)
        if hi <= lo:
            self._remove(k)
            return
        conn = self.conn
        if lo > 0:
            conn.execute("DELETE FROM kv_list WHERE key = ? AND pos < ?", (k, base + lo))
        if base + hi - 1 < top:
            conn.execute("DELETE FROM kv_list WHERE key = ? AND pos > ?", (k, base + hi - 1))
        self._bounds_seen[k] = (base + lo, base + hi - 1)

    def _x_llen(self, k: str) -> int:
        bounds = self._bounds(k)
        return 0 if bounds is None else bounds[1] - bounds[0] + 1

    def _x_sadd(self, k: str, ms: list[bytes]) -> int:
        conn = self.conn
        if not self._check(k, "set", purge=True):
            if not ms:
                return 0
            conn.execute("INSERT INTO kv_keys (key, kind) VALUES (?, 'set')", (k,))
            self._bounds_seen.pop(k, None)
        before = conn.total_changes
        conn.executemany(
            "INSERT OR IGNORE INTO kv_set (key, member) VALUES (?, ?)", [(k, m) for m in ms]
        )
        return conn.total_changes - before

    def _x_srem(self, k: str, ms: list[bytes]) -> int:
        if not self._check(k, "set", purge=True):
            return 0
        conn = self.conn
        before = conn.total_changes
        conn.executemany("DELETE FROM kv_set WHERE key = ? AND member = ?", [(k, m) for m in ms])
        removed = conn.total_changes - before
        if conn.execute("SELECT 1 FROM kv_set WHERE key = ? LIMIT 1", (k,)).fetchone() is None:
            self._remove(k)
        return removed

    def _x_smembers(self, k: str) -> set[bytes]:
        if not self._check(k, "set"):
            return set()
        return {
            bytes(r[0]) for r in self.conn.execute("SELECT member FROM kv_set WHERE key = ?", (k,))
        }

    def _x_keys(self, prefix: str) -> list[str]:
        # Range scan instead of LIKE so `%` and `_` in keys are not wildcards.
        rows = self.conn.execute(
            "SELECT key FROM kv_keys WHERE key >= ? AND key < ? AND (expires_at IS NULL OR expires_at > ?)",
            (prefix, prefix + "\U0010ffff", time.time()),
        )
        return [r[0] for r in rows]

    async def aclose(self) -> None:
        """Close the connection (idempotent)."""
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()


def _rollback(conn: sqlite3.Connection) -> None:
    """Roll back if a transaction is still open (SQLite may already have ended it)."""
    if conn.in_transaction:
        with suppress(sqlite3.Error):
            conn.execute("ROLLBACK")


def _purge_expired(conn: sqlite3.Connection, now: float) -> None:
    expired = [r[0] for r in conn.execute("SELECT key FROM kv_keys WHERE expires_at <= ?", (now,))]
    for table in ("kv_keys", "kv_list", "kv_set"):
        conn.executemany(f"DELETE FROM {table} WHERE key = ?", [(k,) for k in expired])


def _connect(path: Path, timeout: float) -> sqlite3.Connection:
    """Open (creating if needed) and verify that the file is a taskengine KV database."""
    prepare_sqlite_dir(str(path))
    try:
        conn = sqlite3.connect(path, timeout=timeout, isolation_level=None, check_same_thread=False)
    except (OSError, sqlite3.Error) as exc:
        raise StoreError(f"cannot open KV database {path}: {exc}") from exc
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("BEGIN IMMEDIATE")
        try:
            _ensure_schema(conn, path)
            _purge_expired(conn, time.time())
        except BaseException:
            _rollback(conn)
            raise
        conn.execute("COMMIT")
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise StoreError(
            f"{path} is not a usable taskengine KV database (corrupted, or not a SQLite file): {exc}"
        ) from exc
    except BaseException:
        conn.close()
        raise
    return conn


def _ensure_schema(conn: sqlite3.Connection, path: Path) -> None:
    tables = {
        r[0]
        for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        if not r[0].startswith("sqlite_")
    }
    if not tables:
        for statement in _SCHEMA:
            conn.execute(statement)
        conn.executemany(
            "INSERT INTO kv_meta (name, value) VALUES (?, ?)",
            [("format", _FORMAT), ("version", str(_VERSION))],
        )
        return
    meta = {}
    if "kv_meta" in tables:
        meta = dict(conn.execute("SELECT name, value FROM kv_meta").fetchall())
    if meta.get("format") != _FORMAT:
        found = ", ".join(sorted(tables)[:8])
        raise StoreError(
            f"{path} is a SQLite database but not a taskengine KV store (tables: {found});"
            " point the KV URL at a new file"
        )
    try:
        version = int(meta.get("version", "0"))
    except ValueError:
        raise StoreError(f"{path}: unreadable KV format version {meta.get('version')!r}") from None
    if version > _VERSION:
        raise StoreError(
            f"{path} was written by a newer taskengine (KV format {version}, this version reads {_VERSION})"
        )
