"""The PostgreSQL store's run leases, timed by the database clock (`now()`)."""

from __future__ import annotations

from datetime import datetime

from taskengine.store.postgres.connection import PostgresConnection
from taskengine.store.postgres.sql import utc

__all__ = ["PostgresLeases"]


class PostgresLeases(PostgresConnection):
    """Taking, renewing and releasing a run's lease."""

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
            return utc(row[0])

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
            return utc(row[0])

    async def release_lease(self, run_id: str, owner: str) -> bool:
        async with self._conn() as conn:
            cur = await conn.execute(
                "UPDATE te_runs SET lease_owner = NULL, lease_expires_at = NULL, lease_ttl_s = NULL "
                "WHERE run_id = %s AND lease_owner = %s",
                (run_id, owner),
            )
            return cur.rowcount == 1
