"""Edge cases of the SQLite one-statement ("hot") checkpoints: runs from before schema 3, step rows
written by a schema-2 process, the lease margin a hot step leaves, and `dump_json` on cycles.

Each test states the property it holds the store to; they read raw rows only to set up or
to prove which path a write took.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time

from taskengine.store import RunRecord, open_store
from taskengine.store.sqlite.sql import RUN_COLS, RUNS_FROM, now_us

CHAIN = {"id": "old", "tasks": [{"id": "a", "handler": "noop"}]}
#: a step row as large as a typical one with model output (spills into overflow pages)
BIG_STEP = json.dumps({"taskID": "a", "taskHandler": "noop", "output": "x" * 3000})


def leased_run(owner: str) -> RunRecord:
    """Run "r" of CHAIN, running at task "a", its lease held by `owner`."""
    return RunRecord(
        run_id="r",
        chain_id="c",
        chain=CHAIN,
        input="x",
        status="running",
        next_task="a",
        lease_owner=owner,
    )


def vm_steps(store, call) -> int:
    """SQLite virtual-machine instructions `call()` executes on the store's connection."""
    count = [0]

    def tick() -> int:
        count[0] += 1
        return 0

    store._conn.set_progress_handler(tick, 1)
    try:
        call()
    finally:
        store._conn.set_progress_handler(None, 1)
    return count[0]


async def test_reading_a_run_from_before_schema_3_does_not_walk_all_its_steps(
    tmp_path, schema_2_file
):
    """A run written under schema 2 has synced_seq 0 and no hot rows: the overlay lookup must
    not visit every one of its step rows on every get_run/list_runs/load_state (it did: a
    5000-step run took ~20 ms per get_run, blocking the event loop)."""
    path = tmp_path / "v2.db"
    schema_2_file(path, "long", status="succeeded", next_task=None, steps=[(BIG_STEP, "{}")] * 2000)
    store = await open_store(f"sqlite:///{path}")
    try:
        await store.create_run(
            RunRecord(run_id="short", chain_id="c", chain=CHAIN, input="x", status="running")
        )
        await store.checkpoint(
            "short", seq=1, step=json.loads(BIG_STEP), next_task=None, status="running"
        )

        def get(run_id: str):
            return lambda: store._conn.execute(
                f"SELECT {RUN_COLS} FROM {RUNS_FROM} WHERE r.run_id = :rid",
                {"now": now_us(), "rid": run_id},
            ).fetchall()

        get("long")()  # prepare once, so both counts are of execution alone
        long_cost = vm_steps(store, get("long"))
        short_cost = vm_steps(store, get("short"))
        assert long_cost < 3 * short_cost, (long_cost, short_cost)
        run = await store.get_run("long")
        assert (run.step_count, run.next_task, run.status) == (2000, None, "succeeded")
    finally:
        await store.aclose()


async def test_a_plain_step_row_newer_than_the_hot_rows_is_not_overridden_by_them(tmp_path):
    """A process still running schema-2 code (it opened the file before the upgrade) writes a
    full checkpoint the old way: run row and a plain step row, synced_seq untouched. The run
    row is then current; readers must not overlay the older hot row's next task on it."""
    path = tmp_path / "runs.db"
    store = await open_store(f"sqlite:///{path}")
    try:
        await store.create_run(leased_run("new"), lease_ttl_s=30)
        for seq in (1, 2, 3):  # one full checkpoint, then two hot rows
            await store.checkpoint(
                "r", seq=seq, step={"taskID": "a"}, next_task="a", status="running", owner="new"
            )
        conn = sqlite3.connect(path)
        assert conn.execute("SELECT seq FROM te_steps WHERE run_steps IS NOT NULL").fetchall() == [
            (2,),
            (3,),
        ]
        # the schema-2 process takes the lease (the new one died) and checkpoints step 4 its way
        now = time.time_ns() // 1000
        conn.execute(
            "UPDATE te_runs SET lease_owner = 'old', next_task = 'b', step_count = step_count + 1, "
            "updated_at = ? WHERE run_id = 'r'",
            (now,),
        )
        conn.execute(
            "INSERT INTO te_steps (run_id, seq, task_id, status, step, vars_delta, created_at) "
            "VALUES ('r', 4, 'a', 'succeeded', '{\"taskID\":\"a\"}', '{}', ?)",
            (now,),
        )
        conn.commit()
        conn.close()
        run = await store.get_run("r")
        assert run.next_task == "b"  # what the newest checkpoint (step 4) recorded
        assert (await store.load_state("r")).next_task == "b"
    finally:
        await store.aclose()


async def test_every_checkpoint_by_the_owner_leaves_two_thirds_of_a_lease(tmp_path):
    """The documented bound: a hot checkpoint does not extend the lease, but one is only taken
    in the first third of a lease this store extended, so at least 2/3 of the TTL is left for
    the next step even if it blocks the loop (no heartbeat). The old full-checkpoint-only
    store left the whole TTL."""
    path = tmp_path / "runs.db"
    ttl = 3.0
    store = await open_store(f"sqlite:///{path}")
    try:
        await store.create_run(leased_run("me"), lease_ttl_s=ttl)
        least = ttl
        for seq in range(1, 13):
            before = time.time_ns() // 1000  # what the checkpoint leaves, from when it starts
            await store.checkpoint(
                "r", seq=seq, step={"taskID": "a"}, next_task="a", status="running", owner="me"
            )
            expires = (await store.get_run("r")).lease_expires_at
            least = min(least, expires.timestamp() - before / 1e6)
            time.sleep(ttl / 15)  # blocks the loop: no heartbeat renews the lease meanwhile
        conn = sqlite3.connect(path)
        kinds = [r[0] is None for r in conn.execute("SELECT run_steps FROM te_steps ORDER BY seq")]
        conn.close()
        assert any(kinds[1:]) and not all(kinds)  # both kinds were taken
        assert least > 2 / 3 * ttl - 0.05, least  # clock granularity
    finally:
        await store.aclose()


_CYCLE = """
import sys
from taskengine.store.base import dump_json
from taskengine.errors import StoreError
sys.setrecursionlimit(200_000)
value = {"a": 1}
value["self"] = value
try:
    dump_json(value, what="step")
except StoreError as exc:
    print("refused:", exc)
"""


def test_a_cyclic_value_is_refused_even_with_a_raised_recursion_limit():
    """json.dumps reports a cycle at once; the prebuilt encoder without cycle markers recursed
    until the recursion limit, so a program that raised the limit crashed (SIGSEGV)."""
    proc = subprocess.run(
        [sys.executable, "-c", _CYCLE], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, (proc.returncode, proc.stderr[-500:])
    assert "refused: step is not JSON-serializable" in proc.stdout
