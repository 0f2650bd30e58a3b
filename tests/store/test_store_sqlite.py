"""SQLite-only behaviour: foreign and corrupt files, URLs, locking, a real second process."""

from __future__ import annotations

import re
import sqlite3
import subprocess
import sys
import textwrap

import pytest

from taskengine.errors import RunLeaseError, StoreError
from taskengine.store import RunRecord, default_db_url, open_store, store_from_url
from taskengine.store.sqlite import SQLiteRunStore


def new_run(run_id: str = "run-1", **over) -> RunRecord:
    return RunRecord(
        run_id=run_id,
        chain_id="c",
        chain={"id": "c"},
        input="x",
        input_type="string",
        status="running",
        **over,
    )


async def test_a_corrupted_file_is_a_clear_error(tmp_path):
    path = tmp_path / "runs.db"
    path.write_bytes(b"\x8f garbage that is no database \x00\x01" * 300)
    with pytest.raises(StoreError, match="not a readable SQLite database") as info:
        await open_store(f"sqlite:///{path}")
    assert str(path) in str(info.value)


async def test_another_programs_database_is_refused_untouched(tmp_path):
    path = tmp_path / "app.db"
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT)")
    conn.close()
    with pytest.raises(StoreError, match="another program's database") as info:
        await open_store(f"sqlite:///{path}")
    assert str(path) in str(info.value) and "users" in str(info.value)
    conn = sqlite3.connect(path)
    tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    conn.close()
    assert tables == ["users"]  # nothing of ours was created in it


async def test_a_version_table_without_our_row_is_refused(tmp_path):
    path = tmp_path / "odd.db"
    async with await open_store(f"sqlite:///{path}"):
        pass
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("DELETE FROM te_schema_version")
    conn.close()
    with pytest.raises(StoreError, match="no valid store version"):
        await open_store(f"sqlite:///{path}")


async def test_opens_in_wal_mode_and_creates_only_its_own_directory(tmp_path):
    path = tmp_path / "own" / "runs.db"
    async with await open_store(f"sqlite:///{path}") as store:
        await store.create_run(new_run())
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()
    deeper = tmp_path / "deep" / "er" / "runs.db"
    with pytest.raises(StoreError, match=f"directory {tmp_path / 'deep'} does not exist"):
        await open_store(f"sqlite:///{deeper}")
    assert not (tmp_path / "deep").exists()


async def test_a_plain_path_is_an_sqlite_store(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    async with await open_store(str(tmp_path / "abs.db")) as store:
        await store.create_run(new_run())
    async with await open_store("rel.db") as store:
        assert store.path == str(tmp_path / "rel.db")
    assert (tmp_path / "abs.db").exists() and (tmp_path / "rel.db").exists()
    with pytest.raises(
        StoreError, match=re.escape("sqlite:///abs/path.db, sqlite://rel/path.db, a plain")
    ):
        await open_store("mysql://x/y")
    for misspelt in ("postgresql:/h/db", "sqlite:runs.db"):
        with pytest.raises(StoreError, match=re.escape("is not one of: sqlite:///abs/path.db")):
            await open_store(misspelt)
    assert not list(tmp_path.glob("*:*"))


async def test_a_closed_store_says_so(tmp_path):
    store = SQLiteRunStore(tmp_path / "runs.db")
    with pytest.raises(StoreError, match="not open"):
        await store.get_run("x")
    await store.open()
    await store.aclose()
    with pytest.raises(StoreError, match="not open"):
        await store.list_runs()


async def test_a_writer_in_another_connection_times_out_clearly(tmp_path):
    fresh = tmp_path / "fresh.db"
    blocker = sqlite3.connect(fresh, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(StoreError, match="locked by another process"):
            await SQLiteRunStore(
                fresh, busy_timeout_s=0.05
            ).open()  # creating tables needs the lock
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()

    path = tmp_path / "runs.db"
    async with await open_store(f"sqlite:///{path}") as store:
        await store.create_run(new_run())
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        # An up-to-date file opens without the write lock, and WAL readers are not blocked.
        async with SQLiteRunStore(path, busy_timeout_s=0.05) as store:
            with pytest.raises(StoreError, match="locked by another process"):
                await store.checkpoint(
                    "run-1", seq=1, step={"taskID": "a"}, next_task=None, status="running"
                )
            assert (await store.get_run("run-1")).step_count == 0
            blocker.execute("ROLLBACK")
            await store.checkpoint(
                "run-1", seq=1, step={"taskID": "a"}, next_task=None, status="running"
            )
            assert (await store.get_run("run-1")).step_count == 1
    finally:
        blocker.close()


CHILD = textwrap.dedent(
    """
    import asyncio, sys
    from taskengine.store import open_store

    async def main(url):
        store = await open_store(url)
        await store.acquire_lease("run-1", "child-process", ttl_s=60)
        await store.checkpoint("run-1", seq=1, step={"taskID": "a"}, vars_delta={"a": ["string", "from child"]},
                               next_task="b", status="running", owner="child-process")
        await store.aclose()

    asyncio.run(main(sys.argv[1]))
    """
)


async def test_a_second_process_sees_writes_and_holds_the_lease(tmp_path):
    url = f"sqlite:///{tmp_path}/runs.db"
    async with await open_store(url) as store:
        await store.create_run(new_run())
        done = subprocess.run(
            [sys.executable, "-c", CHILD, url], capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stderr
        state = await store.load_state("run-1")
        assert state.variables["a"] == "from child" and state.next_task == "b"
        with pytest.raises(RunLeaseError, match="already being resumed by child-process"):
            await store.acquire_lease("run-1", "parent-process", ttl_s=60)


def test_urls(tmp_path, monkeypatch):
    assert store_from_url(f"sqlite:///{tmp_path}/a.db").path == f"{tmp_path}/a.db"
    assert store_from_url(f"sqlite:////{tmp_path}/a.db").path == f"{tmp_path}/a.db"
    assert store_from_url("postgresql://u:pw@127.0.0.1/db?schema=s").backend == "postgres"
    with pytest.raises(StoreError, match="unsupported store URL"):
        store_from_url("mysql://localhost/db")
    with pytest.raises(StoreError, match="names no database file"):
        store_from_url("sqlite:///:memory:")
    monkeypatch.setenv("TASKENGINE_DB", f"sqlite:///{tmp_path}/env.db")
    assert default_db_url() == f"sqlite:///{tmp_path}/env.db"
    assert store_from_url().path == f"{tmp_path}/env.db"
    monkeypatch.delenv("TASKENGINE_DB")
    default = default_db_url()
    assert default.startswith("sqlite:///") and default.endswith("taskengine.db")
