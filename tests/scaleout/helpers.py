"""What the scale-out tests share beyond fixtures: a client runtime, submitting, waiting."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from contextlib import asynccontextmanager
from typing import Any

from taskengine.config import load_settings
from taskengine.runtime import open_runtime
from taskengine.workers.app import QueueApp
from taskengine.workers.submit import submit_run


@asynccontextmanager
async def client(cluster: Any):
    """A submitting process's view: runtime (engine + store) and the queue."""
    settings = load_settings(cluster.env["TASKENGINE_CONFIG"], environ=cluster.env)
    runtime = await open_runtime(settings)
    async with runtime, QueueApp(settings.db, settings.queue) as queue:
        yield runtime, queue


async def submit_many(runtime: Any, queue: Any, chain: Any, inputs: list[str]) -> dict[str, str]:
    """Queue one run per input; returns {run_id: input}."""
    gate = asyncio.Semaphore(16)

    async def one(text: str) -> tuple[str, str]:
        async with gate:
            return await submit_run(runtime.env, queue, chain, text), text

    return dict(await asyncio.gather(*(one(text) for text in inputs)))


async def statuses(store: Any, run_ids: list[str]) -> Counter:
    records = await asyncio.gather(*(store.get_run(r) for r in run_ids))
    return Counter(r.status for r in records)


async def wait_statuses(
    store: Any, run_ids: list[str], done: Any, timeout: float, what: str, queue: Any = None
):
    """Poll until `done(Counter of statuses)` is true; returns the last Counter.

    With `queue`, a timeout also says where the unfinished runs and their jobs stand."""
    deadline = time.monotonic() + timeout
    while True:
        counts = await statuses(store, run_ids)
        if done(counts):
            return counts
        if time.monotonic() > deadline:
            where = "" if queue is None else await _unfinished(store, queue, run_ids)
            raise AssertionError(f"{what}: still {dict(counts)} after {timeout:g} s{where}")
        await asyncio.sleep(0.1)


async def job_rows(queue: Any, run_id: str) -> list[dict[str, Any]]:
    """The queue's job rows of run `run_id`: id, status, attempts, scheduled_at, worker_id."""
    return await queue.app.connector.execute_query_all_async(
        "SELECT id, status::text AS status, attempts, scheduled_at, worker_id "
        "FROM procrastinate_jobs WHERE args->>'run_id' = %(run_id)s",
        run_id=run_id,
    )


async def _unfinished(store: Any, queue: Any, run_ids: list[str]) -> str:
    """A line per run not yet succeeded (five at most): its record's lease and its jobs."""
    lines = []
    for run_id in run_ids:
        record = await store.get_run(run_id)
        if record.status == "succeeded":
            continue
        jobs = await job_rows(queue, run_id)
        lines.append(
            f"\n  run {run_id}: {record.status}, next {record.next_task}, lease "
            f"{record.lease_owner} until {record.lease_expires_at}; jobs {jobs}"
        )
        if len(lines) == 5:
            break
    return "".join(lines)


async def runs_by_holder(store: Any, run_ids: list[str]) -> dict[int, list[str]]:
    """{worker pid: ids of the runs it holds a lease on right now}."""
    records = await asyncio.gather(*(store.get_run(r) for r in run_ids))
    held: dict[int, list[str]] = {}
    for rec in records:
        parts = (rec.lease_owner or "").split(":")
        if rec.status == "running" and len(parts) > 1 and parts[1].isdigit():
            held.setdefault(int(parts[1]), []).append(rec.run_id)
    return held


async def in_process_outputs(cluster: Any, chain: Any, inputs: list[str]) -> dict[str, Any]:
    """The same runs in this process without a store: the outputs queued runs must match."""
    settings = load_settings(cluster.env["TASKENGINE_CONFIG"], environ=cluster.env)
    async with await open_runtime(settings, use_store=False) as runtime:
        results = await asyncio.gather(*(runtime.env.exec_env(chain, t) for t in inputs))
    return {text: result.output for text, result in zip(inputs, results, strict=True)}


async def wait_for_runs_held_by(store: Any, run_ids: list[str], pid: int) -> list[str]:
    """Poll until worker `pid` holds a lease on one of these runs; returns the ones it holds."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        held = (await runs_by_holder(store, run_ids)).get(pid)
        if held:
            return held
        await asyncio.sleep(0.02)
    raise AssertionError(f"worker {pid} never held a run")
