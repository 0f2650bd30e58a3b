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


async def wait_statuses(store: Any, run_ids: list[str], done: Any, timeout: float, what: str):
    """Poll until `done(Counter of statuses)` is true; returns the last Counter."""
    deadline = time.monotonic() + timeout
    while True:
        counts = await statuses(store, run_ids)
        if done(counts):
            return counts
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: still {dict(counts)} after {timeout:g} s")
        await asyncio.sleep(0.1)


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
