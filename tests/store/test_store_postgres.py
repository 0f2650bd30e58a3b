"""PostgreSQL-only behaviour: schemas, foreign tables, concurrency over the pool, secrets in URLs."""

from __future__ import annotations

import asyncio
import uuid

import psycopg
import pytest

from taskengine.errors import StoreError
from taskengine.store import RunRecord, open_store
from taskengine.store.postgres import PostgresRunStore, redact_url


def new_run(run_id: str) -> RunRecord:
    return RunRecord(
        run_id=run_id,
        chain_id="c",
        chain={"id": "c"},
        input="x",
        input_type="string",
        status="running",
    )


async def test_a_missing_schema_is_created(pg_dsn):
    schema = f"te_test_{uuid.uuid4().hex[:10]}"
    try:
        async with await open_store(f"{pg_dsn}?schema={schema}") as store:
            await store.create_run(new_run("r"))
        async with await psycopg.AsyncConnection.connect(pg_dsn, autocommit=True) as conn:
            cur = await conn.execute(f'SELECT count(*) FROM "{schema}".te_runs')
            assert (await cur.fetchone())[0] == 1
    finally:
        async with await psycopg.AsyncConnection.connect(pg_dsn, autocommit=True) as conn:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


async def test_stores_opening_together_create_a_missing_schema_once(pg_dsn):
    # workers started at once on a fresh schema: each looks, finds none, and creates it
    schema = f"te_test_{uuid.uuid4().hex[:10]}"
    try:
        stores = await asyncio.gather(
            *(open_store(f"{pg_dsn}?schema={schema}") for _ in range(6)), return_exceptions=True
        )
        opened = [s for s in stores if not isinstance(s, BaseException)]
        for store in opened:
            await store.aclose()
        assert len(opened) == 6, [s for s in stores if isinstance(s, BaseException)]
    finally:
        async with await psycopg.AsyncConnection.connect(pg_dsn, autocommit=True) as conn:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


async def test_foreign_tables_with_our_names_are_refused(pg_dsn, pg_schema):
    async with await psycopg.AsyncConnection.connect(pg_dsn, autocommit=True) as conn:
        await conn.execute(f'CREATE TABLE "{pg_schema}".te_runs (id int)')
    with pytest.raises(StoreError, match="te_\\* tables but no te_schema_version"):
        await open_store(f"{pg_dsn}?schema={pg_schema}")


async def test_other_tables_in_the_schema_are_left_alone(pg_dsn, pg_schema):
    async with await psycopg.AsyncConnection.connect(pg_dsn, autocommit=True) as conn:
        await conn.execute(f'CREATE TABLE "{pg_schema}".users (id int)')
    async with await open_store(f"{pg_dsn}?schema={pg_schema}") as store:
        await store.create_run(new_run("r"))


async def test_stores_opening_together_migrate_once(pg_dsn, pg_schema):
    url = f"{pg_dsn}?schema={pg_schema}"
    stores = await asyncio.gather(*(open_store(url) for _ in range(4)))
    try:
        await stores[0].create_run(new_run("r"))
        assert (await stores[3].get_run("r")).chain_id == "c"
    finally:
        for store in stores:
            await store.aclose()


async def test_many_concurrent_checkpoints_share_a_small_pool(pg_dsn, pg_schema):
    async with PostgresRunStore(f"{pg_dsn}?schema={pg_schema}&pool_size=2") as store:
        await asyncio.gather(*(store.create_run(new_run(f"r{i}")) for i in range(20)))

        async def steps(run_id: str) -> None:
            for seq in range(1, 4):
                await store.checkpoint(
                    run_id, seq=seq, step={"taskID": f"t{seq}"}, next_task=None, status="running"
                )

        await asyncio.gather(*(steps(f"r{i}") for i in range(20)))
        counts = {r.run_id: r.step_count for r in (await store.list_runs(limit=100)).items}
        assert counts == {f"r{i}": 3 for i in range(20)}


async def test_cancelled_calls_do_not_poison_the_pool(pg_dsn, pg_schema):
    async with PostgresRunStore(f"{pg_dsn}?schema={pg_schema}&pool_size=2") as store:
        await store.create_run(new_run("r"))
        for _ in range(5):
            tasks = [asyncio.create_task(store.get_run("r")) for _ in range(6)]
            await asyncio.sleep(0)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        assert (await store.get_run("r")).run_id == "r"
        await store.checkpoint("r", seq=1, step={"taskID": "a"}, next_task=None, status="running")
        assert (await store.get_run("r")).step_count == 1


async def test_connection_errors_never_show_the_password():
    url = "postgresql://postgres:hunter2@127.0.0.1:1/test"
    assert "hunter2" not in redact_url(url) and "***" in redact_url(url)
    with pytest.raises(StoreError, match="cannot connect") as info:
        await open_store(url)
    assert "hunter2" not in str(info.value)


async def test_libpq_options_pass_through_the_url(pg_dsn, pg_schema):
    url = f"{pg_dsn}?schema={pg_schema}&options=-c%20synchronous_commit%3Doff"
    async with await open_store(url) as store, store._conn() as conn:
        cur = await conn.execute("SHOW synchronous_commit")
        assert (await cur.fetchone())[0] == "off"
        cur = await conn.execute("SELECT current_schema()")
        assert (await cur.fetchone())[0] == pg_schema


def test_a_bad_pool_size_is_a_clear_error():
    with pytest.raises(StoreError, match="pool_size must be a number"):
        PostgresRunStore("postgresql://u:pw@127.0.0.1/db?pool_size=lots")
