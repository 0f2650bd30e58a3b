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
sqlite/sql.py). A background checkpointer thread was tried and dropped: its PASSIVE
checkpoints never catch up with a busy writer, so the WAL never resets and grows
without bound.

The store is one class assembled from one mixin per concern: `connection` (opening,
migrating, transactions), `runs`, `checkpoint` (the full and the one-statement hot
checkpoint), `leases`, `registry` (chains, remote hooks, secret blobs), over the SQL text
and row mapping in `sql`.
"""

from __future__ import annotations

from taskengine.store.sqlite.checkpoint import SQLiteCheckpoints
from taskengine.store.sqlite.leases import SQLiteLeases
from taskengine.store.sqlite.registry import SQLiteRegistry
from taskengine.store.sqlite.runs import SQLiteRuns
from taskengine.store.sqlite.sql import CONNECTION_PRAGMAS

__all__ = ["CONNECTION_PRAGMAS", "SQLiteRunStore"]


class SQLiteRunStore(SQLiteCheckpoints, SQLiteRuns, SQLiteLeases, SQLiteRegistry):
    """Runs, checkpoints, registries and secret blobs in one SQLite file."""

    def __repr__(self) -> str:
        return f"SQLiteRunStore({self.path!r})"
