"""Three real workers, 200 queued runs, one worker SIGKILLed mid-way: nothing lost or doubled."""

from __future__ import annotations

import os
import signal

import pytest

from .conftest import CHAIN, STEPS
from .helpers import (
    client,
    in_process_outputs,
    runs_by_holder,
    submit_many,
    wait_for_runs_held_by,
    wait_statuses,
)

RUNS = 200


@pytest.mark.slow
async def test_sigkill_one_of_three_workers_loses_and_doubles_nothing(cluster):
    inputs = [f"item {i}" for i in range(RUNS)]
    expected = await in_process_outputs(cluster, CHAIN, inputs)
    workers = [cluster.start_worker("--concurrency", "10") for _ in range(3)]
    async with client(cluster) as (runtime, queue):
        store = runtime.store
        submitted = await submit_many(runtime, queue, CHAIN, inputs)
        run_ids = list(submitted)
        assert len(run_ids) == RUNS

        await wait_statuses(
            store, run_ids, lambda c: c["succeeded"] >= RUNS // 4, 90, "a quarter of the runs"
        )
        victim = workers[0]
        # frozen first, so the runs it holds can be listed exactly before it dies
        os.kill(victim.pid, signal.SIGSTOP)
        orphaned = (await runs_by_holder(store, run_ids)).get(victim.pid, [])
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait(timeout=10)
        assert orphaned, "the killed worker should have had runs in flight"

        counts = await wait_statuses(
            store,
            run_ids,
            lambda c: c["succeeded"] + c["failed"] == RUNS,
            120,
            "every run to end after the SIGKILL",
            queue,
        )
        assert counts == {"succeeded": RUNS}, counts

        for run_id, text in submitted.items():
            record = await store.get_run(run_id)
            assert record.output == expected[text], run_id
            steps = [s for s in await store.get_steps(run_id) if s.step is not None]
            # every task recorded exactly once, in order: nothing doubled, nothing skipped
            assert [s.task_id for s in steps] == [f"t{i}" for i in range(1, STEPS + 1)], run_id
            assert all(s.status == "succeeded" for s in steps)
            assert record.step_count == STEPS

        # the runs the victim held went back to the queue (stalled-job rescue) and ran again
        attempts = await _job_attempts(queue, orphaned)
        assert len(attempts) == len(orphaned)
        assert all(n >= 2 for n in attempts.values()), attempts
    assert all(w.poll() is None for w in workers if w is not victim)


async def _job_attempts(queue, run_ids):
    """{run_id: attempts} of the run jobs (a job retried after its worker died counts 2+)."""
    rows = await queue.app.connector.execute_query_all_async(
        "SELECT args->>'run_id' AS run_id, attempts FROM procrastinate_jobs "
        "WHERE task_name = 'taskengine.run'"
    )
    wanted = set(run_ids)
    return {row["run_id"]: row["attempts"] for row in rows if row["run_id"] in wanted}


@pytest.mark.slow
async def test_a_frozen_worker_loses_its_runs_after_its_lease_and_cannot_write_when_it_wakes(
    cluster,
):
    # a worker that stops answering but is alive (another machine's, as far as anyone can tell)
    cluster.env["TASKENGINE_LIMITS__LEASE_TTL"] = "3"
    inputs = [f"frozen {i}" for i in range(30)]
    expected = await in_process_outputs(cluster, CHAIN, inputs)
    frozen, other = (cluster.start_worker("--concurrency", "5") for _ in range(2))
    async with client(cluster) as (runtime, queue):
        store = runtime.store
        submitted = await submit_many(runtime, queue, CHAIN, inputs)
        run_ids = list(submitted)
        await wait_for_runs_held_by(store, run_ids, frozen.pid)
        os.kill(frozen.pid, signal.SIGSTOP)
        held = (await runs_by_holder(store, run_ids)).get(frozen.pid, [])
        assert held

        await wait_statuses(
            store, run_ids, lambda c: c["succeeded"] == len(run_ids), 60, "the other worker", queue
        )
        os.kill(frozen.pid, signal.SIGCONT)  # it wakes up with steps in flight
        frozen.send_signal(signal.SIGTERM)
        assert frozen.wait(timeout=30) == 0

        for run_id, text in submitted.items():
            record = await store.get_run(run_id)
            assert record.status == "succeeded" and record.output == expected[text]
            steps = [s for s in await store.get_steps(run_id) if s.step is not None]
            assert [s.task_id for s in steps] == [f"t{i}" for i in range(1, STEPS + 1)]
    assert other.poll() is None
