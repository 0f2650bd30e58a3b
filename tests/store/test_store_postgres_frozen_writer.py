"""A writer process frozen mid group commit holds none of its runs' rows.

A worker that stops answering (SIGSTOP here; a paused VM or a lost network elsewhere) must
not keep the rows of the runs it was checkpointing locked: once their leases expire another
worker takes them over, and its first write would wait on those locks for as long as the
frozen process keeps its connection open. The writer below checkpoints 20 runs without a
pause; it is frozen at random moments, and each time another session must be able to write
every run row, each within a few seconds.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time

import psycopg
import pytest

WRITER = textwrap.dedent(
    """
    import asyncio, sys
    from taskengine.store.postgres import PostgresRunStore
    from taskengine.store.records import RunRecord

    async def main(url):
        async with PostgresRunStore(url) as store:
            ids = [f"r{i}" for i in range(20)]
            for run_id in ids:
                record = RunRecord(run_id=run_id, chain_id="c", chain={"id": "c"}, input="x",
                                   input_type="string", status="running", lease_owner="me")
                await store.create_run(record, lease_ttl_s=600)
            print("ready", flush=True)

            async def keep_checkpointing(run_id):
                seq = 0
                while True:
                    seq += 1
                    await store.checkpoint(run_id, seq=seq, step={"taskID": f"t{seq}"},
                                           vars_delta={"v": ["string", "x" * 200]},
                                           next_task="t", status="running", owner="me")

            await asyncio.gather(*(keep_checkpointing(r) for r in ids))

    asyncio.run(main(sys.argv[1]))
    """
)

FREEZES = 25


@pytest.mark.slow
def test_a_writer_frozen_mid_group_commit_holds_no_row_lock(pg_dsn, pg_schema):
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, f"{pg_dsn}?schema={pg_schema}&pool_size=4"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert writer.stdout is not None and writer.stdout.readline().strip() == "ready"
        blocked = []
        with psycopg.connect(pg_dsn, autocommit=True) as other:
            other.execute(f'SET search_path TO "{pg_schema}"')
            # a batch the server is running finishes on its own in far less (its COMMIT)
            other.execute("SET lock_timeout = '3s'")
            for freeze in range(FREEZES):
                time.sleep(random.uniform(0.01, 0.05))
                os.kill(writer.pid, signal.SIGSTOP)
                try:
                    blocked += _rows_still_locked(other, freeze)
                finally:
                    os.kill(writer.pid, signal.SIGCONT)
            steps = other.execute("SELECT count(*) FROM te_steps").fetchone()
        assert blocked == [], f"run rows left locked by the frozen writer: {blocked}"
        assert steps is not None and steps[0] > 20 * 3  # the writer was really writing
        assert writer.poll() is None
    finally:
        writer.kill()
        writer.wait()
        if writer.stdout is not None:
            writer.stdout.close()


def _rows_still_locked(conn: psycopg.Connection, freeze: int) -> list[str]:
    """Write each run row, one at a time (no deadlock with the writer's batch); the first
    row whose lock could not be had, as `freeze N: rK`."""
    for i in range(20):
        try:
            touched = conn.execute(
                "UPDATE te_runs SET updated_at = now() WHERE run_id = %s", (f"r{i}",)
            ).rowcount
        except psycopg.errors.LockNotAvailable:
            return [f"freeze {freeze}: r{i}"]
        assert touched == 1
    return []
