"""Group commit for the SQLite store: the run writes of one event-loop turn share one transaction.

Under hundreds of concurrent runs most of a write's cost is its own `BEGIN IMMEDIATE` and
`COMMIT` (file locks, the WAL header, the commit record), not its rows. `GroupCommit.write`
queues `fn(cursor)` and waits: the first write of a loop turn schedules a flush on the loop's
next turn, which runs every queued write in one transaction, commits once, and only then
answers the callers. When a write of the batch raises (a lost lease, a duplicate run), the
transaction is rolled back and the batch written again with each write in its own savepoint,
so the failing write is rolled back alone and raises to its caller only; writes are functions
of the database state, so writing them again is the same as writing them once. (Savepoints
for every write cost two more statements each; failures are rare.) A write is therefore committed
(durable as every SQLite store write is: `synchronous=NORMAL` in WAL mode) before the call
returns, exactly as before; the transaction still never spans an `await`, so readers on the
same connection never see uncommitted rows. One write alone in its turn commits on its own,
without a savepoint.

Writes from a loop other than the one that queued the pending batch (a sync bridge's thread)
are written at once in their own transaction.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from taskengine.store.sqlite.connection import SQLiteConnection

__all__ = ["GroupCommit"]

_Write = tuple[Callable[..., Any], tuple[Any, ...], "asyncio.Future[Any]"]


class GroupCommit:
    """The queue of one connection's pending run writes, flushed once per loop turn."""

    def __init__(self, conn: SQLiteConnection) -> None:
        self._conn = conn
        self._queue: list[_Write] = []
        self._loop: asyncio.AbstractEventLoop | None = None

    async def write(self, fn: Callable[..., Any], *args: Any) -> Any:
        """`fn(cursor, *args)` in a transaction shared with this loop turn's other writes;
        returns its result once that transaction is committed."""
        loop = asyncio.get_running_loop()
        if self._queue and self._loop is not loop:
            return self._conn._write(fn, *args)
        future: asyncio.Future[Any] = loop.create_future()
        if not self._queue:
            self._loop = loop
            loop.call_soon(self.flush)
        self._queue.append((fn, args, future))
        return await future

    def flush(self) -> None:
        """Write and commit every queued write now (also called when the store closes)."""
        batch, self._queue = self._queue, []
        if not batch:
            return
        if len(batch) == 1:
            fn, args, future = batch[0]
            _answer(future, self._conn._write, fn, *args)
            return
        try:
            try:
                outcomes = self._conn._write(_all_at_once, batch)
            except _WriteFailed:  # rolled back: write them again, each in its own savepoint
                outcomes = self._conn._write(_each_in_savepoint, batch, self._conn)
        except BaseException as exc:  # the transaction itself failed: nothing was written
            for _, _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        for (_, _, future), (ok, value) in zip(batch, outcomes, strict=True):
            if future.done():  # its caller was cancelled: the write stands, nobody waits
                continue
            if ok:
                future.set_result(value)
            else:
                future.set_exception(value)


class _WriteFailed(Exception):
    """A write of the batch raised: the shared transaction is rolled back and redone."""


def _all_at_once(cur: sqlite3.Cursor, batch: list[_Write]) -> list[tuple[bool, Any]]:
    """Every write, without savepoints: the common case, where none of them fails."""
    outcomes: list[tuple[bool, Any]] = []
    for fn, args, _ in batch:
        try:
            outcomes.append((True, fn(cur, *args)))
        except Exception as exc:
            raise _WriteFailed from exc
    return outcomes


def _each_in_savepoint(
    cur: sqlite3.Cursor, batch: list[_Write], conn: SQLiteConnection
) -> list[tuple[bool, Any]]:
    """Run each write under a savepoint; one that raises is rolled back alone."""
    outcomes: list[tuple[bool, Any]] = []
    for fn, args, _ in batch:
        cur.execute("SAVEPOINT te_write")
        try:
            value = fn(cur, *args)
        except Exception as exc:
            cur.execute("ROLLBACK TO te_write")
            cur.execute("RELEASE te_write")
            if isinstance(exc, sqlite3.Error):
                exc = conn._translate(exc)
            outcomes.append((False, exc))
            continue
        cur.execute("RELEASE te_write")
        outcomes.append((True, value))
    return outcomes


def _answer(future: asyncio.Future[Any], call: Callable[..., Any], *args: Any) -> None:
    try:
        value = call(*args)
    except Exception as exc:
        if not future.done():
            future.set_exception(exc)
        return
    if not future.done():
        future.set_result(value)
