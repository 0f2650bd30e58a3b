"""A database written by an older taskengine opens with its runs intact (migrations run on start)."""

from __future__ import annotations

import json
import sqlite3
import time

import psycopg
import pytest

from taskengine.store import open_store
from taskengine.store.migrations import (
    POSTGRES_MIGRATIONS,
    SCHEMA_VERSION,
    SQLITE_MIGRATIONS,
    VERSION_TABLE,
)

CHAIN = {"id": "old", "tasks": [{"id": "a", "handler": "noop"}]}


async def test_sqlite_version_1_database_is_migrated(tmp_path):
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    for statement in SQLITE_MIGRATIONS[0]:
        conn.execute(statement)
    now = time.time_ns() // 1000
    conn.execute(f"INSERT INTO {VERSION_TABLE} VALUES ('store', 1, ?)", (now,))
    conn.execute(
        "INSERT INTO te_runs (run_id, chain_id, status, created_at, updated_at, chain, input, "
        "input_type, meta) VALUES ('r1', 'old', 'succeeded', ?, ?, ?, '\"hi\"', 'string', "
        "'{\"k\": 1}')",
        (now, now, json.dumps(CHAIN)),
    )
    conn.commit()
    conn.close()
    store = await open_store(f"sqlite:///{path}")
    try:
        run = await store.get_run("r1")
        assert (run.chain, run.input, run.meta) == (CHAIN, "hi", {"k": 1})
    finally:
        await store.aclose()
    conn = sqlite3.connect(path)
    columns = {row[1] for row in conn.execute("PRAGMA table_info(te_runs)")}
    version = conn.execute(f"SELECT version FROM {VERSION_TABLE}").fetchone()[0]
    conn.close()
    assert "chain" not in columns and version == SCHEMA_VERSION


async def test_sqlite_version_2_run_in_flight_continues_after_the_upgrade(tmp_path, schema_2_file):
    """A run interrupted under schema 2 reads the same under 3 and counts its steps on."""
    path = tmp_path / "v2.db"
    schema_2_file(
        path,
        "r2",
        status="running",
        next_task="a",
        steps=[('{"taskID": "a"}', json.dumps({"a": ["int", seq]})) for seq in (1, 2)],
    )
    store = await open_store(f"sqlite:///{path}")
    try:
        run = await store.get_run("r2")
        assert (run.next_task, run.step_count, run.status) == ("a", 2, "running")
        await store.acquire_lease("r2", "me", 30)
        for seq in (3, 4, 5):  # a full checkpoint, then one-statement ones
            await store.checkpoint(
                "r2",
                seq=seq,
                step={"taskID": "a"},
                vars_delta={"a": ["int", seq]},
                next_task="a",
                status="running",
                owner="me",
            )
        state = await store.load_state("r2")
        assert (state.run.step_count, state.seq, state.variables["a"]) == (5, 5, 5)
    finally:
        await store.aclose()


async def test_postgres_version_1_database_is_migrated(pg_dsn, pg_schema):
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(f'SET search_path TO "{pg_schema}"')
        for statement in POSTGRES_MIGRATIONS[0]:
            conn.execute(statement)
        conn.execute(f"INSERT INTO {VERSION_TABLE} (component, version) VALUES ('store', 1)")
        conn.execute(
            "INSERT INTO te_runs (run_id, chain_id, status, created_at, updated_at, chain, input, "
            "input_type, meta) VALUES ('r1', 'old', 'succeeded', now(), now(), %s::json, "
            "'\"hi\"'::json, 'string', '{\"k\": 1}'::json)",
            (json.dumps(CHAIN),),
        )
    store = await open_store(f"{pg_dsn}?schema={pg_schema}")
    try:
        run = await store.get_run("r1")
        assert (run.chain, run.input, run.meta) == (CHAIN, "hi", {"k": 1})
    finally:
        await store.aclose()


@pytest.mark.parametrize("migrations", [SQLITE_MIGRATIONS, POSTGRES_MIGRATIONS])
def test_both_backends_share_one_schema_version(migrations):
    assert len(migrations) == SCHEMA_VERSION
