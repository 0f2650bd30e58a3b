"""A failing queued run is retried with backoff up to `queue.max_attempts`, then stays failed."""

from __future__ import annotations

import json

from .conftest import CHAIN, STEPS
from .helpers import job_rows, submit_many
from .test_batch import write_chain


async def _attempts(cluster, run_id: str) -> tuple[int, str]:
    from .helpers import client

    async with client(cluster) as (_runtime, queue):
        return await _attempts_in(queue, run_id)


async def _attempts_in(queue, run_id: str) -> tuple[int, str]:
    """(attempts, status) of the run's one job."""
    rows = await job_rows(queue, run_id)
    assert len(rows) == 1
    return rows[0]["attempts"], rows[0]["status"]


async def test_a_run_that_keeps_failing_is_retried_then_marked_failed(cluster, tmp_path):
    chain = write_chain(tmp_path)
    cluster.start_worker("--concurrency", "2")
    out = cluster.cli("submit", chain, "--input", "flaky", "--wait", "--json")
    assert out.returncode == 1
    assert out.stderr.count("\n") == 1 and "overloaded" in out.stderr  # one line
    view = json.loads(out.stdout)
    assert view["status"] == "failed"
    assert "overloaded" in view["error"]["message"] and view["error"]["task_id"] == "t1"
    # three attempts, each a failed step of t1 recorded once
    assert [(s["taskID"], bool(s["error"]["error"])) for s in view["state"]] == [("t1", True)] * 3
    assert await _attempts(cluster, view["runId"]) == (3, "failed")


async def test_a_run_that_fails_twice_then_works_succeeds_on_its_third_attempt(cluster, tmp_path):
    chain = write_chain(tmp_path)
    cluster.start_worker("--concurrency", "2")
    out = cluster.cli("submit", chain, "--input", "transient", "--wait", "--json")
    assert out.returncode == 0, out.stderr
    view = json.loads(out.stdout)
    assert view["status"] == "succeeded"
    tasks = [s["taskID"] for s in view["state"]]
    assert tasks == ["t1", "t1", *(f"t{i}" for i in range(1, STEPS + 1))]
    assert await _attempts(cluster, view["runId"]) == (3, "succeeded")


async def test_an_error_no_retry_can_fix_fails_at_once(cluster, tmp_path):
    chain = write_chain(tmp_path)
    cluster.start_worker("--concurrency", "2")
    out = cluster.cli("submit", chain, "--input", "explode", "--wait", "--json")
    assert out.returncode == 1
    view = json.loads(out.stdout)
    assert view["status"] == "failed" and "bad prompt" in view["error"]["message"]
    assert len(view["state"]) == 1
    assert await _attempts(cluster, view["runId"]) == (1, "failed")
    assert CHAIN["id"] == view["chainId"]


async def test_a_run_between_attempts_reads_queued_never_failed(cluster, tmp_path):
    """A watcher polling the store must not take a failure the queue will retry for the end."""
    import asyncio

    from taskengine.chain import load_chain

    from .helpers import client

    chain = load_chain(write_chain(tmp_path))
    cluster.start_worker("--concurrency", "2")
    seen: list[str] = []
    async with client(cluster) as (runtime, queue):
        (run_id,) = await submit_many(runtime, queue, chain, ["watched"])
        deadline = asyncio.get_running_loop().time() + 60  # a slow worker start on a busy machine
        while asyncio.get_running_loop().time() < deadline:
            status = (await runtime.store.get_run(run_id)).status
            if not seen or seen[-1] != status:
                seen.append(status)
            if status in ("succeeded", "failed"):
                break
            await asyncio.sleep(0.005)
    assert seen[-1] == "succeeded", seen
    assert "failed" not in seen, seen
    # and it did fail twice on the way: three attempts
    assert await _attempts(cluster, run_id) == (3, "succeeded")


async def test_a_run_another_process_holds_is_waited_for_past_max_attempts(cluster, tmp_path):
    """A lease held elsewhere (a frozen worker, a `taskengine resume`) is not a failure: the job
    looks again each half lease, however many looks that takes, and runs the run once it lapses."""
    import asyncio

    from taskengine.chain import load_chain

    from .helpers import client, wait_statuses

    cluster.env["TASKENGINE_LIMITS__LEASE_TTL"] = "1"
    chain = load_chain(write_chain(tmp_path))
    holder = "another-host:1:holder"  # not a pid of this host: never taken over as a dead one
    async with client(cluster) as (runtime, queue):
        store = runtime.store
        (run_id,) = await submit_many(runtime, queue, chain, ["held elsewhere"])
        await store.acquire_lease(run_id, holder, 2)
        cluster.start_worker("--concurrency", "2")
        deadline = asyncio.get_running_loop().time() + 60
        # renewed until the job has looked more often than max_attempts (3) would allow
        while (attempts := (await _attempts_in(queue, run_id))[0]) < 3:
            assert asyncio.get_running_loop().time() < deadline, "the worker never looked"
            await store.renew_lease(run_id, holder, 2)
            await asyncio.sleep(0.2)
        assert (await store.get_run(run_id)).status == "queued"  # untouched while held
        await store.release_lease(run_id, holder)
        await wait_statuses(store, [run_id], lambda c: c["succeeded"] == 1, 60, "the held run")
        steps = [s.task_id for s in await store.get_steps(run_id) if s.step is not None]
    assert steps == [f"t{i}" for i in range(1, STEPS + 1)]
    assert attempts >= 3
