"""Scale-out: runs/s through the queue with 1, 2 and 4 worker processes vs one in-process batch.

Processes: FakeLLMServer (answers after `--delay`, default 50 ms), `taskengine worker`
processes, and this client. Every run is the same LLM-bound chain of `--steps` tasks (default 5)
checkpointed in a PostgreSQL run store (a fresh database, dropped at the end). It prints:

* runs/s of `--runs` runs (default 400) through one in-process batch (`run_batch`, the same
  store, `--concurrency` runs at once) and through the queue with 1, 2 and 4 workers
  (`--concurrency` each), with the ratio of each to the in-process batch, measured in this run;
* the queue's own overhead per run: enqueue → start latency (the job's `deferred` and
  `started` events, both stamped by the database clock), median and p99, for runs queued one
  at a time to an idle worker, so the figure is the queue's pick-up time, not time spent
  waiting for a free slot (target: median under 10 ms).

    python benchmarks/queue_scaleout.py [--runs 400] [--concurrency 20] [--workers 1,2,4]

Needs a PostgreSQL server (`TASKENGINE_TEST_PG_DSN`, default postgres@127.0.0.1/test) and the
`queue` extra. It is a benchmark, not a test: nothing here is timed by CI. Figures depend on the
machine and its load; on 2 cores, 4 worker processes compete with the client and the fake model.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

PG_DSN = os.environ.get("TASKENGINE_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")
EXE = Path(sys.executable).with_name("taskengine")


def make_chain(steps: int) -> dict[str, Any]:
    tasks = []
    for i in range(1, steps + 1):
        task: dict[str, Any] = {
            "id": f"t{i}",
            "handler": "raw_string",
            "prompt_template": f"step {i}: {{{{ .previous_output }}}}",
        }
        if i < steps:
            task["transition"] = {"branches": [{"operator": "default", "goto": f"t{i + 1}"}]}
        tasks.append(task)
    return {"id": "bench_scaleout", "tasks": tasks}


def start_fake_llm(delay: float) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "taskengine.testing.fake_llm", "--delay", str(delay)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("FAKE_LLM_URL="):
        proc.kill()
        raise RuntimeError(f"the fake model did not start: {line!r}")
    return proc, line.strip().split("=", 1)[1]


class Database:
    """A database of this benchmark's own, dropped at the end."""

    def __init__(self) -> None:
        self.name = f"bench_queue_{uuid.uuid4().hex[:8]}"
        self.url = f"{PG_DSN.rsplit('/', 1)[0]}/{self.name}"

    def __enter__(self) -> Database:
        import psycopg

        with psycopg.connect(PG_DSN, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{self.name}"')
        return self

    def __exit__(self, *exc: object) -> None:
        import psycopg

        with psycopg.connect(PG_DSN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


def write_config(path: Path, llm_url: str) -> Path:
    path.write_text(
        json.dumps(
            {
                "providers": [
                    {
                        "name": "fake",
                        "type": "openai_compatible",
                        "base_url": llm_url + "/v1",
                        "max_connections": 1000,
                    }
                ],
                "default_provider": "fake",
                "default_model": "fake-model",
                "logging": {"level": "WARNING"},
            }
        )
    )
    return path


class Workers:
    def __init__(self, env: dict[str, str], count: int, concurrency: int) -> None:
        self.procs = [
            subprocess.Popen(
                [str(EXE), "worker", "--concurrency", str(concurrency)],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for _ in range(count)
        ]

    def stop(self) -> None:
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


async def wait_all(store: Any, run_ids: list[str], timeout: float = 600) -> None:
    pending = set(run_ids)
    deadline = time.monotonic() + timeout
    while pending:
        records = await asyncio.gather(*(store.get_run(r) for r in list(pending)[:200]))
        for rec in records:
            if rec.status == "succeeded":
                pending.discard(rec.run_id)
            elif rec.status == "failed":
                raise RuntimeError(f"run {rec.run_id} failed: {rec.error}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{len(pending)} runs unfinished after {timeout} s")
        await asyncio.sleep(0.05)


async def through_queue(runtime: Any, queue: Any, chain: Any, runs: int, tag: str) -> float:
    """Runs/s from the first enqueue to the last run's end."""
    from taskengine.workers.submit import submit_run

    gate = asyncio.Semaphore(16)

    async def one(i: int) -> str:
        async with gate:
            return await submit_run(runtime.env, queue, chain, f"{tag} {i}")

    started = time.perf_counter()
    run_ids = await asyncio.gather(*(one(i) for i in range(runs)))
    await wait_all(runtime.store, list(run_ids))
    return runs / (time.perf_counter() - started)


async def in_process(runtime: Any, chain: Any, runs: int, concurrency: int) -> float:
    from taskengine.batch import BatchItem, BatchTally, run_batch

    items = [BatchItem(str(i), f"inproc {i}", i) for i in range(runs)]
    tally = BatchTally(total=runs)
    started = time.perf_counter()
    await run_batch(
        runtime.env, chain, items, concurrency=concurrency, on_result=lambda row: None, tally=tally
    )
    if tally.failed:
        raise RuntimeError(f"{tally.failed} in-process runs failed")
    return runs / (time.perf_counter() - started)


async def pickup_latency(runtime: Any, queue: Any, chain: Any, samples: int) -> list[float]:
    """Enqueue → start (ms) of runs queued one at a time to an idle worker."""
    from taskengine.workers.submit import submit_run, wait_for_run

    run_ids = []
    for i in range(samples):
        run_id = await submit_run(runtime.env, queue, chain, f"latency {i}")
        await wait_for_run(runtime.store, run_id, timeout=60)
        run_ids.append(run_id)
    rows = await queue.app.connector.execute_query_all_async(
        "SELECT j.args->>'run_id' AS run_id, "
        "EXTRACT(EPOCH FROM (s.at - d.at)) * 1000 AS ms FROM procrastinate_jobs j "
        "JOIN procrastinate_events d ON d.job_id = j.id AND d.type = 'deferred' "
        "JOIN procrastinate_events s ON s.job_id = j.id AND s.type = 'started' "
        "WHERE j.task_name = 'taskengine.run'"
    )
    wanted = set(run_ids)
    return [float(row["ms"]) for row in rows if row["run_id"] in wanted]


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    from taskengine.config import load_settings
    from taskengine.runtime import open_runtime
    from taskengine.workers.app import QueueApp

    chain = make_chain(args.steps)
    llm, llm_url = start_fake_llm(args.delay)
    results: dict[str, Any] = {"runs": args.runs, "steps": args.steps, "delay_s": args.delay}
    try:
        with Database() as db, tempfile.TemporaryDirectory() as tmp:
            config = write_config(Path(tmp) / "taskengine.json", llm_url)
            env = {**os.environ, "TASKENGINE_DB": db.url, "TASKENGINE_CONFIG": str(config)}
            settings = load_settings(str(config), environ=env)
            store_url = f"{db.url}?pool_size=16"
            runtime = await open_runtime(settings, store_url=store_url)
            async with runtime, QueueApp(db.url, settings.queue) as queue:
                base = await in_process(runtime, chain, args.runs, args.concurrency)
                results["in_process_runs_per_s"] = base
                print(f"in-process batch (concurrency {args.concurrency}): {base:7.1f} runs/s")
                results["queue"] = {}
                for count in args.workers:
                    workers = Workers(env, count, args.concurrency)
                    try:
                        await through_queue(runtime, queue, chain, count * 4, f"warm{count}")
                        rate = await through_queue(runtime, queue, chain, args.runs, f"w{count}")
                    finally:
                        workers.stop()
                    results["queue"][count] = {"runs_per_s": rate, "vs_in_process": rate / base}
                    print(
                        f"queue, {count} worker(s) × {args.concurrency}: {rate:7.1f} runs/s "
                        f"({rate / base:.2f}× the in-process batch)"
                    )
                workers = Workers(env, 1, args.concurrency)
                try:
                    await through_queue(runtime, queue, chain, 4, "warm-latency")
                    latencies = await pickup_latency(runtime, queue, chain, args.samples)
                finally:
                    workers.stop()
        p50, p99 = statistics.median(latencies), pct(latencies, 0.99)
        results["pickup_ms"] = {"median": p50, "p99": p99, "samples": len(latencies)}
        verdict = "met" if p50 < 10 else "NOT met"
        print(
            f"enqueue → start, idle worker ({len(latencies)} runs): median {p50:.1f} ms, "
            f"p99 {p99:.1f} ms (target median < 10 ms: {verdict})"
        )
    finally:
        llm.terminate()
        llm.wait(10)
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=400)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--delay", type=float, default=0.05, help="fake model reply delay (s)")
    parser.add_argument("--concurrency", type=int, default=20, help="runs at once per process")
    parser.add_argument("--workers", default="1,2,4", help="worker counts to measure")
    parser.add_argument("--samples", type=int, default=100, help="runs for the pick-up latency")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args(argv)
    args.workers = [int(x) for x in args.workers.split(",") if x.strip()]
    results = asyncio.run(main_async(args))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
