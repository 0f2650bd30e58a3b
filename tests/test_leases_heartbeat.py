"""The run heartbeat: a timer until its first beat, then renewals every third of the lease."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from taskengine.engine.leases import Heartbeat
from taskengine.store import RunRecord
from taskengine.store.sqlite import SQLiteRunStore


async def _expiry(store: SQLiteRunStore, run_id: str) -> datetime:
    record = await store.get_run(run_id)
    assert record.lease_expires_at is not None
    return record.lease_expires_at


async def test_the_heartbeat_renews_a_lease_until_cancelled(tmp_path):
    store = SQLiteRunStore(tmp_path / "runs.db")
    await store.open()
    try:
        ttl = 0.3
        await store.create_run(
            RunRecord(run_id="r", chain_id="c", chain={"id": "c"}, input="x", status="running",
                      lease_owner="me"),
            lease_ttl_s=ttl,
        )  # fmt: skip
        first = await _expiry(store, "r")
        beat = Heartbeat(store, "r", "me", ttl)
        await asyncio.sleep(ttl * 1.5)  # past the first beat (ttl / 3) and the original expiry
        renewed = await _expiry(store, "r")
        assert renewed > first and renewed > datetime.now(UTC)
        beat.cancel()
        await asyncio.sleep(ttl * 1.5)
        assert await _expiry(store, "r") < datetime.now(UTC)  # no beats after cancel
    finally:
        await store.aclose()


async def test_a_heartbeat_cancelled_before_its_first_beat_never_writes(tmp_path):
    store = SQLiteRunStore(tmp_path / "runs.db")
    await store.open()
    try:
        await store.create_run(
            RunRecord(run_id="r", chain_id="c", chain={"id": "c"}, input="x", status="running",
                      lease_owner="me"),
            lease_ttl_s=0.3,
        )  # fmt: skip
        first = await _expiry(store, "r")
        Heartbeat(store, "r", "me", 0.3).cancel()
        await asyncio.sleep(0.25)
        assert await _expiry(store, "r") == first
    finally:
        await store.aclose()
