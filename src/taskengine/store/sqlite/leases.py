"""The SQLite store's run leases: who may resume a run, and until when."""

from __future__ import annotations

import sqlite3
from datetime import datetime

from taskengine.store.records import from_us
from taskengine.store.sqlite.connection import SQLiteConnection
from taskengine.store.sqlite.sql import now_us

__all__ = ["SQLiteLeases"]


class SQLiteLeases(SQLiteConnection):
    """Taking, renewing and releasing a run's lease (a lost one also ends its hot path)."""

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
