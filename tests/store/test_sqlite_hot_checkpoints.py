"""SQLite one-statement ("hot") checkpoints: the run row lags, every reader still sees the truth.

While a store holds a run's lease, a step is written as its step row alone, carrying the run's
next task and step count; the run row catches up at the next full checkpoint. These tests look
at the raw rows to prove which path was taken, and read through a second store (as another
process would) to prove that nothing is lost in between.
"""

from __future__ import annotations

import asyncio
import sqlite3

import pytest

from taskengine.chain import TaskChainDefinition
from taskengine.datatypes import DataType
from taskengine.engine import SimpleEnv
from taskengine.errors import RunLeaseError
from taskengine.executor import SimpleExec
from taskengine.store import RunRecord, open_store

STEP = {"taskID": "tick", "taskHandler": "noop"}


def new_run(run_id: str = "run-1", owner: str | None = "me") -> RunRecord:
    return RunRecord(
        run_id=run_id,
        chain_id="c",
        chain={"id": "c"},
        input="x",
        input_type="string",
        status="running",
        next_task="tick",
        lease_owner=owner,
    )


def raw_rows(path, run_id: str = "run-1") -> list[tuple]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(
            "SELECT seq, next_task, run_steps FROM te_steps WHERE run_id = ? ORDER BY seq",
            (run_id,),
        ).fetchall()
    finally:
        conn.close()


def raw_run(path, run_id: str = "run-1") -> tuple:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(
            "SELECT next_task, step_count, synced_seq, lease_expires_at FROM te_runs "
            "WHERE run_id = ?",
            (run_id,),
        ).fetchone()
    finally:
        conn.close()


async def checkpoint(store, seq: int, next_task: str | None, owner: str = "me", **over):
    await store.checkpoint(
        "run-1",
        seq=seq,
        step={**STEP, "n": seq},
        vars_delta={"tick": ["int", seq]},
        next_task=next_task,
        status="running",
        owner=owner,
        **over,
    )


async def test_steps_after_the_first_write_only_their_row_and_readers_overlay_them(tmp_path):
    path = tmp_path / "runs.db"
    store = await open_store(f"sqlite:///{path}")
    other = await open_store(f"sqlite:///{path}")  # another process's view of the same file
    try:
        await store.create_run(new_run(), lease_ttl_s=30)
        for seq in range(1, 6):
            await checkpoint(store, seq, "tick" if seq < 5 else "done")
        rows = raw_rows(path)
        # the first checkpoint is a full one; the next four are hot rows
        assert rows == [
            (1, None, None),
            (2, "tick", 2),
            (3, "tick", 3),
            (4, "tick", 4),
            (5, "done", 5),
        ]
        assert raw_run(path)[:3] == ("tick", 1, 1)  # the run row lags on purpose
        for reader in (store, other):
            run = await reader.get_run("run-1")
            assert (run.next_task, run.step_count, run.status) == ("done", 5, "running")
            listed = (await reader.list_runs()).items
            assert [(r.run_id, r.next_task, r.step_count) for r in listed] == [("run-1", "done", 5)]
            state = await reader.load_state("run-1")
            assert state.next_task == "done" and state.seq == 5 and state.variables["tick"] == 5
        steps = await other.get_steps("run-1")
        assert run.updated_at == steps[-1].created_at

        # a full checkpoint (retry state makes it one) brings the run row up to date
        await checkpoint(store, 6, "tick", retry_state={"task": "tick", "attempt": 1, "seq": 7})
        assert raw_run(path)[:3] == ("tick", 6, 6)
        await checkpoint(store, 7, None)
        assert raw_rows(path)[-1] == (7, None, 7)  # hot again; "no next task" is kept as such
        run = await other.get_run("run-1")
        assert (run.next_task, run.step_count) == (None, 7)
        await store.finish_run("run-1", status="succeeded", output=7, output_type="int", owner="me")
        run = await other.get_run("run-1")
        assert (run.status, run.step_count, run.next_task, run.lease_owner) == (
            "succeeded",
            7,
            None,
            None,
        )
    finally:
        await store.aclose()
        await other.aclose()


async def test_a_run_left_with_hot_rows_resumes_from_its_last_step(tmp_path):
    path = tmp_path / "runs.db"
    store = await open_store(f"sqlite:///{path}")
    try:
        await store.create_run(new_run(), lease_ttl_s=30)
        for seq in range(1, 5):
            await checkpoint(store, seq, "tick")
    finally:
        await store.aclose()  # the process "dies": its lease stays, its run row lags
    assert raw_run(path)[1] == 1

    store = await open_store(f"sqlite:///{path}")
    try:
        await store.acquire_lease("run-1", "resumer", 30, replacing="me")
        state = await store.load_state("run-1")
        assert (state.seq, state.next_task, state.run.step_count) == (4, "tick", 4)
        # the resumer's first checkpoint is a full one that counts on from the hot rows
        await checkpoint(store, 5, "tick", owner="resumer")
        assert raw_run(path)[:3] == ("tick", 5, 5)
        await checkpoint(store, 6, "tick", owner="resumer")
        assert (await store.get_run("run-1")).step_count == 6
        with pytest.raises(RunLeaseError):  # the old owner lost the run
            await checkpoint(store, 7, "tick", owner="me")
    finally:
        await store.aclose()


async def test_a_hot_step_is_refused_once_another_owner_holds_the_lease(tmp_path):
    path = tmp_path / "runs.db"
    store = await open_store(f"sqlite:///{path}")
    other = await open_store(f"sqlite:///{path}")
    try:
        await store.create_run(new_run(), lease_ttl_s=30)
        await checkpoint(store, 1, "tick")
        await checkpoint(store, 2, "tick")  # hot
        await other.acquire_lease("run-1", "thief", 30, replacing="me")
        with pytest.raises(RunLeaseError, match="thief"):
            await checkpoint(store, 3, "tick")  # would be hot: the guard still sees the thief
        assert [r[0] for r in raw_rows(path)] == [1, 2]  # nothing written
        with pytest.raises(RunLeaseError):
            await checkpoint(store, 3, "tick")  # and the full path refuses it too
    finally:
        await store.aclose()
        await other.aclose()


async def test_a_loop_that_never_yields_still_extends_its_lease(tmp_path):
    """No heartbeat runs while a loop never awaits anything slow: full checkpoints renew.

    Nothing here depends on how fast the machine is: a stall longer than the lease (an fsync
    on a busy disk) only makes the run read as interrupted for a moment, never changes which
    rows are written or who owns the run.
    """
    path = tmp_path / "runs.db"
    store = await open_store(f"sqlite:///{path}")
    try:
        await store.create_run(new_run(), lease_ttl_s=0.3)
        first_expiry = raw_run(path)[3]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 0.6  # twice the lease: it would have expired without renewal
        seq = 0
        while loop.time() < deadline:
            seq += 1
            await checkpoint(store, seq, "tick")
        rows = raw_rows(path)
        full = [r[0] for r in rows if r[2] is None]
        assert len(full) >= 3 and len(full) < len(rows) / 2  # mostly hot, renewed every ~0.1 s
        assert raw_run(path)[3] > first_expiry + 400_000  # µs: extended well past the first lease
        run = await store.get_run("run-1")
        assert run.lease_owner == "me" and run.step_count == seq
    finally:
        await store.aclose()


async def test_steps_without_a_lease_or_with_totals_take_the_full_path(tmp_path):
    path = tmp_path / "runs.db"
    store = await open_store(f"sqlite:///{path}")
    try:
        await store.create_run(new_run(owner=None))
        for seq in range(1, 4):
            await store.checkpoint("run-1", seq=seq, step=STEP, next_task="tick", status="running")
        assert all(r[2] is None for r in raw_rows(path)) and raw_run(path)[1] == 3
        await store.create_run(new_run("run-2"), lease_ttl_s=30)
        for seq in range(1, 4):
            await store.checkpoint(
                "run-2",
                seq=seq,
                step=STEP,
                next_task="tick",
                status="running",
                totals={"tokens": seq},
                owner="me",
            )
        assert all(r[2] is None for r in raw_rows(path, "run-2"))
        assert (await store.get_run("run-2")).totals == {"tokens": 3}
    finally:
        await store.aclose()


async def test_an_engine_run_reads_its_own_progress_mid_run(tmp_path):
    """A handler that looks at the store mid-run sees every earlier step, hot or not."""
    store = await open_store(f"sqlite:///{tmp_path / 'runs.db'}")
    seen: list[tuple[str | None, int]] = []

    async def count(ctx, task, value, value_type):
        run = await store.get_run(ctx.run.run_id)
        seen.append((run.next_task, run.step_count))
        n = value + 1
        return n, DataType.INT, "done" if n >= 6 else "more"

    chain = TaskChainDefinition.model_validate(
        {
            "id": "counter",
            "tasks": [
                {
                    "id": "tick",
                    "handler": "count",
                    "transition": {
                        "branches": [
                            {"operator": "equals", "when": "done", "goto": "end"},
                            {"operator": "default", "goto": "tick"},
                        ]
                    },
                }
            ],
        }
    )
    try:
        env = SimpleEnv(SimpleExec(handlers={"count": count}), store=store)
        result = await env.exec_env(chain, 0, DataType.INT)
        assert result.output == 6
        assert seen == [("tick", n) for n in range(6)]
        run = await store.get_run(result.run_id)
        assert (run.status, run.step_count, run.next_task) == ("succeeded", 6, None)
    finally:
        await store.aclose()
