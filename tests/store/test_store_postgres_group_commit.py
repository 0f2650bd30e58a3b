"""Group commit on PostgreSQL: concurrent runs' checkpoints share a transaction, each fails alone."""

from __future__ import annotations

import asyncio

import psycopg
import pytest

from taskengine.errors import RunLeaseError, StoreError
from taskengine.store.postgres import PostgresRunStore, group_commit
from taskengine.store.records import RunRecord


def leased_run(run_id: str, owner: str = "me") -> RunRecord:
    return RunRecord(
        run_id=run_id,
        chain_id="c",
        chain={"id": "c"},
        input="x",
        input_type="string",
        status="running",
        lease_owner=owner,
    )


async def checkpoint(store: PostgresRunStore, run_id: str, seq: int, owner: str = "me") -> None:
    await store.checkpoint(
        run_id,
        seq=seq,
        step={"taskID": f"t{seq}"},
        vars_delta={f"t{seq}": ["string", "ok"]},
        next_task=None,
        status="running",
        owner=owner,
    )


async def committed_steps(pg_dsn: str, schema: str) -> dict[str, int]:
    """Step rows per run, read on a connection of its own (only committed rows show)."""
    async with await psycopg.AsyncConnection.connect(pg_dsn, autocommit=True) as conn:
        cur = await conn.execute(
            f'SELECT run_id, count(*) FROM "{schema}".te_steps GROUP BY run_id'
        )
        return dict(await cur.fetchall())


@pytest.fixture
def batches(monkeypatch):
    """Records the size of each in_one_message batch and of each SAVEPOINT fallback."""
    seen: dict[str, list[int]] = {"in_one_message": [], "one_by_one": []}
    for name in seen:
        original = getattr(group_commit, f"_{name}")

        async def spy(conn, batch, _original=original, _name=name):
            seen[_name].append(len(batch))
            return await _original(conn, batch)

        monkeypatch.setattr(group_commit, f"_{name}", spy)
    return seen


async def test_concurrent_checkpoints_all_land_and_are_durable(pg_dsn, pg_schema, batches):
    async with PostgresRunStore(f"{pg_dsn}?schema={pg_schema}&pool_size=4") as store:
        ids = [f"r{i}" for i in range(60)]
        await asyncio.gather(*(store.create_run(leased_run(i), lease_ttl_s=60) for i in ids))
        for seq in (1, 2, 3):
            await asyncio.gather(*(checkpoint(store, i, seq) for i in ids))
            # Awaited means committed: another session sees every step already.
            assert await committed_steps(pg_dsn, pg_schema) == dict.fromkeys(ids, seq)
        assert max(batches["in_one_message"]) > 1  # the runs did share transactions
        assert {(await store.get_run(i)).step_count for i in ids} == {3}
        await asyncio.gather(*(store.finish_run(i, status="succeeded", owner="me") for i in ids))
        assert {(await store.get_run(i)).status for i in ids} == {"succeeded"}


async def test_a_lost_lease_fails_alone_in_its_batch(pg_dsn, pg_schema, batches):
    async with PostgresRunStore(f"{pg_dsn}?schema={pg_schema}") as store:
        ids = [f"r{i}" for i in range(10)]
        await asyncio.gather(*(store.create_run(leased_run(i), lease_ttl_s=60) for i in ids))
        await store.acquire_lease("r3", "thief", 60, replacing="me")
        outcomes = await asyncio.gather(
            *(checkpoint(store, i, 1) for i in ids), return_exceptions=True
        )
        assert isinstance(outcomes[3], RunLeaseError)
        assert [o for n, o in enumerate(outcomes) if n != 3] == [None] * 9
        assert batches["in_one_message"][0] == 10
        steps = await committed_steps(pg_dsn, pg_schema)
        assert steps == {i: 1 for i in ids if i != "r3"}


async def test_a_taken_step_fails_alone_and_the_rest_of_the_batch_commits(
    pg_dsn, pg_schema, batches
):
    async with PostgresRunStore(f"{pg_dsn}?schema={pg_schema}") as store:
        ids = [f"r{i}" for i in range(8)]
        await asyncio.gather(*(store.create_run(leased_run(i), lease_ttl_s=60) for i in ids))
        await checkpoint(store, "r5", 1)
        outcomes = await asyncio.gather(
            *(checkpoint(store, i, 1) for i in ids), return_exceptions=True
        )
        assert isinstance(outcomes[5], StoreError)
        assert "step 1 is already checkpointed" in str(outcomes[5])
        assert [o for n, o in enumerate(outcomes) if n != 5] == [None] * 7
        assert batches["one_by_one"] == [8]  # the SAVEPOINT fallback ran the batch again
        assert await committed_steps(pg_dsn, pg_schema) == dict.fromkeys(ids, 1)
        assert (await store.get_run("r5")).step_count == 1  # not counted twice


async def test_a_failed_commit_raises_in_every_caller_of_the_batch(pg_dsn, pg_schema, monkeypatch):
    original = group_commit._in_one_message

    async def killed_first(conn, batch):
        # The server ends this backend before the batch runs: its outcome can't be known.
        async with await psycopg.AsyncConnection.connect(pg_dsn, autocommit=True) as admin:
            await admin.execute("SELECT pg_terminate_backend(%s)", (conn.info.backend_pid,))
        monkeypatch.setattr(group_commit, "_in_one_message", original)
        return await original(conn, batch)

    async with PostgresRunStore(f"{pg_dsn}?schema={pg_schema}") as store:
        ids = [f"r{i}" for i in range(6)]
        await asyncio.gather(*(store.create_run(leased_run(i), lease_ttl_s=60) for i in ids))
        monkeypatch.setattr(group_commit, "_in_one_message", killed_first)
        outcomes = await asyncio.gather(
            *(checkpoint(store, i, 1) for i in ids), return_exceptions=True
        )
        assert all(isinstance(o, StoreError) for o in outcomes), outcomes
        assert await committed_steps(pg_dsn, pg_schema) == {}
        # The broken connection was dropped: the store goes on working.
        await asyncio.gather(*(checkpoint(store, i, 1) for i in ids))
        assert await committed_steps(pg_dsn, pg_schema) == dict.fromkeys(ids, 1)


async def test_group_commit_can_be_turned_off(pg_dsn, pg_schema, batches):
    async with PostgresRunStore(f"{pg_dsn}?schema={pg_schema}&group_commit=off") as store:
        await store.create_run(leased_run("r"), lease_ttl_s=60)
        await checkpoint(store, "r", 1)
        with pytest.raises(StoreError, match="step 1 is already checkpointed"):
            await checkpoint(store, "r", 1)
        with pytest.raises(RunLeaseError):
            await checkpoint(store, "r", 2, owner="someone-else")
        assert batches == {"in_one_message": [], "one_by_one": []}
        assert await committed_steps(pg_dsn, pg_schema) == {"r": 1}
