"""Group commit: concurrent runs' one-statement writes share a transaction and its COMMIT.

A caller hands `GroupCommit.execute` one statement and waits. A flusher takes every
statement waiting at that moment and sends them to the server in one message (one round
trip), which runs them in one implicit transaction and COMMITs: one WAL flush for the whole
batch instead of one per statement. Each caller's await returns (the statement's row count)
only after that COMMIT succeeded, so a write is acknowledged only once it is durable.

One message, not a pipeline: the server receives the whole batch before it takes a lock, so a
process frozen mid-batch (SIGSTOP, a paused VM) or cut off from the network never holds its
runs' rows. In a pipeline the server waits for the client's next statement inside the open
transaction, and `idle_in_transaction_session_timeout` does not apply there (it starts only
at a Sync): another worker taking over those runs would wait on their row locks for as long
as the frozen process keeps its socket open.

A statement that fails (a step row already taken, …) must not undo the others: when the
transaction fails on a statement error, it is rolled back (nothing was committed)
and the batch runs again with each statement inside its own SAVEPOINT, so the failing one
is rolled back alone and its error raised in its caller only. A failure of the connection or
of the COMMIT itself raises in every caller of the batch (their outcome is unknown).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from psycopg import AsyncConnection

__all__ = ["GroupCommit"]

#: statements in one transaction at most (a batch holds its rows' locks until it commits)
MAX_BATCH = 256


@dataclass
class _Write:
    sql: str
    params: tuple
    done: asyncio.Future[int] = field(repr=False)


class GroupCommit:
    """Batches one-statement writes into shared transactions (see the module docstring).

    `connection` is the store's pooled-connection context manager; `flushers` is how many
    batches may be in flight at once (each on its own connection).
    """

    def __init__(
        self,
        connection: Callable[[], AbstractAsyncContextManager[AsyncConnection]],
        *,
        flushers: int = 1,
    ) -> None:
        self._connection = connection
        self._flushers = max(1, flushers)
        self._waiting: list[_Write] = []
        self._tasks: set[asyncio.Task[None]] = set()
        # Counted by the flushers themselves: a finished task leaves `_tasks` only later
        # (a done callback), and a write handed in meanwhile must still start a flusher.
        self._running = 0

    async def execute(self, sql: str, params: tuple) -> int:
        """Run `sql` in the next batch; its row count once the batch has committed.

        Raises the statement's own psycopg error, or the batch's (connection, COMMIT).
        """
        write = _Write(sql, params, asyncio.get_running_loop().create_future())
        self._waiting.append(write)
        if self._running < self._flushers:
            self._running += 1
            task = asyncio.get_running_loop().create_task(self._flush_while_waiting())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return await write.done

    async def drain(self) -> None:
        """Wait until every statement handed in so far has been flushed."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _flush_while_waiting(self) -> None:
        try:
            await self._flush_batches()
        finally:
            self._running -= 1

    async def _flush_batches(self) -> None:
        while self._waiting:
            # A caller cancelled before its batch started is left out (nothing was sent).
            batch = [w for w in self._waiting[:MAX_BATCH] if not w.done.done()]
            del self._waiting[:MAX_BATCH]
            if not batch:
                continue
            try:
                counts = await self._run_batch(batch)
            except BaseException as exc:
                for write in batch:
                    if not write.done.done():
                        write.done.set_exception(exc)
                if not isinstance(exc, Exception):
                    raise
                continue
            for write, outcome in zip(batch, counts, strict=True):
                if write.done.done():
                    continue
                if isinstance(outcome, BaseException):
                    write.done.set_exception(outcome)
                else:
                    write.done.set_result(outcome)

    async def _run_batch(self, batch: list[_Write]) -> list[int | BaseException]:
        from psycopg import OperationalError

        async with self._connection() as conn:
            try:
                return await _in_one_message(conn, batch)
            except OperationalError:
                raise  # the connection or the COMMIT failed: every caller learns it
            except Exception:
                if conn.closed or conn.broken:
                    raise
        # A statement failed and the whole transaction rolled back: again, one SAVEPOINT each.
        async with self._connection() as conn:
            return await _one_by_one(conn, batch)


async def _in_one_message(conn: AsyncConnection, batch: list[_Write]) -> list[int | BaseException]:
    """Every statement in one simple-protocol message (one implicit transaction); their row
    counts after its COMMIT. The values are bound client-side, as quoted literals."""
    from psycopg import AsyncClientCursor

    cursor = AsyncClientCursor(conn)
    await cursor.execute(";\n".join(cursor.mogrify(w.sql, w.params) for w in batch))
    counts: list[int | BaseException] = [cursor.rowcount]
    while cursor.nextset():
        counts.append(cursor.rowcount)
    return counts


async def _one_by_one(conn: AsyncConnection, batch: list[_Write]) -> list[int | BaseException]:
    """Each statement inside its own SAVEPOINT: a failing one is rolled back alone.

    Statement by statement, each ended by a Sync: a client frozen between two of them leaves
    the session idle in its transaction, which the server ends after IDLE_IN_TRANSACTION_MS."""
    from psycopg import Error, OperationalError

    outcomes: list[Any] = []
    async with conn.transaction():
        for write in batch:
            await conn.execute("SAVEPOINT te_group_write")
            try:
                cur = await conn.execute(write.sql, write.params)
            except OperationalError:
                raise
            except Error as exc:
                await conn.execute("ROLLBACK TO SAVEPOINT te_group_write")
                outcomes.append(exc)
                continue
            await conn.execute("RELEASE SAVEPOINT te_group_write")
            outcomes.append(cur.rowcount)
    return outcomes
