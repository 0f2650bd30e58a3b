"""The shared run store on PostgreSQL (psycopg 3, async), for several processes or machines.

Same schema and behaviour as the SQLite store. Leases and `updated_at` use the database
clock (`now()`), so machines with skewed clocks still agree on who holds a run. A
checkpoint is a single statement (a data-modifying CTE): one round trip, atomic.

URL: `postgresql://user:pass@host:port/db` plus optional `?schema=NAME` (created if
missing; the store's tables live there) and `?pool_size=N` (default 4). Any libpq option
passes through, e.g. `options=-c synchronous_commit=off` to trade the last commits on a
server crash for faster checkpoints.

The store is one class assembled from one mixin per concern: `connection` (the pool, the
URL, migrations), `runs`, `checkpoint`, `leases`, `registry` (chains, remote hooks, secret
blobs), over the SQL text and row mapping in `sql`.
"""

from __future__ import annotations

from taskengine.store.postgres.checkpoint import PostgresCheckpoints
from taskengine.store.postgres.connection import redact_url
from taskengine.store.postgres.leases import PostgresLeases
from taskengine.store.postgres.registry import PostgresRegistry
from taskengine.store.postgres.runs import PostgresRuns

__all__ = ["PostgresRunStore", "redact_url"]


class PostgresRunStore(PostgresCheckpoints, PostgresRuns, PostgresLeases, PostgresRegistry):
    """Runs, checkpoints, registries and secret blobs in PostgreSQL, over a tiny pool."""

    def __repr__(self) -> str:
        return f"PostgresRunStore({self.url!r})"
