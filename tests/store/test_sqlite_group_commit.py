"""SQLite group commit: one loop turn's run writes share a transaction, each answered alone."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap

import pytest

from taskengine.errors import ConflictError, StoreError
from taskengine.store import RunRecord
from taskengine.store.sqlite import SQLiteRunStore


def new_run(run_id: str, **over) -> RunRecord:
    return RunRecord(
        run_id=run_id, chain_id="c", chain={"id": "c"}, input="x", input_type="string",
        status="running", **over,
    )  # fmt: skip


def _commits(store: SQLiteRunStore) -> list[int]:
    """Count the store's transactions (each `BEGIN IMMEDIATE` it sends)."""
    seen = [0]
    store._conn.set_trace_callback(  # type: ignore[union-attr]
        lambda sql: seen.__setitem__(0, seen[0] + 1) if sql == "BEGIN IMMEDIATE" else None
    )
    return seen


@pytest.fixture
async def store(tmp_path):
    opened = SQLiteRunStore(tmp_path / "runs.db")
    await opened.open()
    yield opened
    await opened.aclose()


async def test_concurrent_run_writes_share_one_transaction(store):
    begins = _commits(store)
    await asyncio.gather(*(store.create_run(new_run(f"r{i}")) for i in range(50)))
    assert begins[0] == 1
    await asyncio.gather(*(
        store.finish_run(f"r{i}", status="succeeded", output=i, output_type="number")
        for i in range(50)
    ))  # fmt: skip
    assert begins[0] == 2
    assert (await store.get_run("r7")).output == 7


async def test_a_failing_write_is_rolled_back_alone(store):
    await store.create_run(new_run("taken"))
    results = await asyncio.gather(
        store.create_run(new_run("a")),
        store.create_run(new_run("taken")),  # a duplicate: ConflictError, nothing written
        store.finish_run("ghost", status="succeeded"),  # no such run
        store.create_run(new_run("b")),
        return_exceptions=True,
    )
    assert results[0] is None and results[3] is None
    assert isinstance(results[1], ConflictError)
    assert isinstance(results[2], StoreError) and "ghost" in str(results[2])
    assert {r.run_id for r in (await store.list_runs()).items} == {"a", "b", "taken"}
    assert (await store.get_run("taken")).status == "running"


async def test_a_batch_without_failures_needs_no_savepoints(store):
    sent: list[str] = []
    store._conn.set_trace_callback(sent.append)  # type: ignore[union-attr]
    await asyncio.gather(*(store.create_run(new_run(f"r{i}")) for i in range(20)))
    assert sent.count("BEGIN IMMEDIATE") == 1
    assert not [sql for sql in sent if "SAVEPOINT" in sql]


async def test_a_write_failing_halfway_leaves_nothing_and_the_others_stand(store):
    await store.create_run(new_run("a"))

    def half_then_fail(cur: sqlite3.Cursor) -> None:
        cur.execute("UPDATE te_runs SET status = 'failed' WHERE run_id = 'a'")
        raise ValueError("broken after its first statement")

    sent: list[str] = []
    store._conn.set_trace_callback(sent.append)  # type: ignore[union-attr]
    results = await asyncio.gather(
        store.create_run(new_run("b")),
        store._write_grouped(half_then_fail),
        store.create_run(new_run("c")),
        return_exceptions=True,
    )
    assert results[0] is None and results[2] is None
    assert isinstance(results[1], ValueError)
    assert (await store.get_run("a")).status == "running"
    assert {r.run_id for r in (await store.list_runs()).items} == {"a", "b", "c"}
    assert "ROLLBACK" in sent and any("SAVEPOINT" in sql for sql in sent)


async def test_a_cancelled_caller_does_not_undo_the_others(store):
    first = asyncio.ensure_future(store.create_run(new_run("a")))
    second = asyncio.ensure_future(store.create_run(new_run("b")))
    await asyncio.sleep(0)  # both queued
    first.cancel()
    await second
    assert {r.run_id for r in (await store.list_runs()).items} == {"a", "b"}


_WRITER = textwrap.dedent(
    """
    import asyncio, sys
    from taskengine.store import RunRecord
    from taskengine.store.sqlite import SQLiteRunStore

    async def main(path):
        store = SQLiteRunStore(path)
        await store.open()

        async def one(i):
            rid = f"run-{i}"
            await store.create_run(RunRecord(run_id=rid, chain_id="c", chain={"id": "c"},
                                             input="x", status="running"))
            await store.checkpoint(rid, seq=1, step={"taskId": "t"}, next_task=None,
                                   status="running", vars_delta={"t": ["string", "v"]})
            await store.finish_run(rid, status="succeeded", output=i, output_type="number")
            print(rid, flush=True)  # acknowledged: its writes returned

        i = 0
        while True:
            await asyncio.gather(*(one(i + k) for k in range(40)))
            i += 40

    asyncio.run(main(sys.argv[1]))
    """
)


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_acknowledged_runs_survive_a_kill_9(tmp_path):
    path = tmp_path / "runs.db"
    proc = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(path)], stdout=subprocess.PIPE, text=True
    )
    acked: list[str] = []
    assert proc.stdout is not None
    for line in proc.stdout:
        acked.append(line.strip())
        if len(acked) >= 400:
            break
    os.kill(proc.pid, signal.SIGKILL)  # mid-batch: later writes are queued or half-done
    proc.wait()
    proc.stdout.close()
    conn = sqlite3.connect(path)
    rows = dict(conn.execute("SELECT run_id, status FROM te_runs").fetchall())
    steps = {r[0] for r in conn.execute("SELECT run_id FROM te_steps")}
    conn.close()
    assert len(acked) >= 400
    for rid in acked:
        assert rows.get(rid) == "succeeded", rid
        assert rid in steps
    # nothing half-written: a run on disk is either one of the loop's whole writes or absent
    assert set(rows.values()) <= {"running", "succeeded"}
