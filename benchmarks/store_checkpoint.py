"""Microseconds per run-store checkpoint.

Times `await store.checkpoint(...)` as the engine calls it after every step: a realistic
CapturedStateUnit dict and a one-variable delta, by the run's lease owner. On SQLite that
is mostly the one-statement checkpoint (the step row alone); `sqlite_full` times the full
one (step row and run row in one transaction) by calling without a lease, as a run with no
owner does. SQLite runs in a temporary directory; PostgreSQL in a throwaway schema that is
dropped afterwards.

    python benchmarks/store_checkpoint.py [--n 5000] [--backend sqlite,postgres] [--json]
        [--pg-dsn postgresql://postgres@127.0.0.1:5432/test]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
import uuid

from taskengine.store import RunRecord, open_store

STEP = {
    "taskID": "classify",
    "taskHandler": "parse_key_value",
    "inputType": "string",
    "outputType": "json",
    "transition": "billing",
    "duration": 0.042,
    "error": {"error": None},
    "input": "",
    "output": "",
    "inputVar": "input",
}
DELTA = {"classify": ["json", {"category": "billing", "priority": "high"}]}


async def measure(
    url: str, n: int, warmup: int = 300, owner: str | None = "bench-owner"
) -> dict[str, float]:
    store = await open_store(url)
    try:
        await store.create_run(
            RunRecord(
                run_id="bench",
                chain_id="bench",
                chain={"id": "bench"},
                input="x",
                input_type="string",
                status="running",
                lease_owner=owner,
            ),
            lease_ttl_s=30,
        )
        timings: list[int] = []
        perf = time.perf_counter_ns
        for seq in range(1, warmup + n + 1):
            started = perf()
            await store.checkpoint(
                "bench",
                seq=seq,
                step=STEP,
                step_status="succeeded",
                vars_delta=DELTA,
                next_task="route",
                status="running",
                owner=owner,
            )
            timings.append(perf() - started)
        timings = sorted(timings[warmup:])
    finally:
        await store.aclose()
    us = [t / 1000 for t in timings]
    return {
        "n": n,
        "median_us": round(statistics.median(us), 1),
        "p90_us": round(us[int(len(us) * 0.90)], 1),
        "p99_us": round(us[int(len(us) * 0.99)], 1),
        "mean_us": round(statistics.fmean(us), 1),
        "checkpoints_per_s": round(1e6 / statistics.fmean(us)),
    }


async def bench_sqlite(n: int, owner: str | None = "bench-owner") -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        return await measure(f"sqlite:///{tmp}/bench.db", n, owner=owner)


async def bench_postgres(n: int, dsn: str) -> dict[str, float]:
    import psycopg

    schema = f"te_bench_{uuid.uuid4().hex[:8]}"
    try:
        return await measure(f"{dsn}{'&' if '?' in dsn else '?'}schema={schema}", n)
    finally:
        async with await psycopg.AsyncConnection.connect(
            dsn.split("?")[0], autocommit=True
        ) as conn:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5000, help="timed checkpoints per backend")
    parser.add_argument("--backend", default="sqlite,postgres")
    parser.add_argument(
        "--pg-dsn",
        default=os.environ.get(
            "TASKENGINE_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test"
        ),
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    results: dict[str, dict[str, float] | str] = {}
    for backend in args.backend.split(","):
        try:
            if backend == "sqlite":
                results[backend] = await bench_sqlite(args.n)
                results["sqlite_full"] = await bench_sqlite(args.n, owner=None)
            elif backend == "postgres":
                results[backend] = await bench_postgres(args.n // 5 or 1, args.pg_dsn)
            else:
                sys.exit(f"unknown backend {backend!r}")
        except Exception as exc:  # report an unavailable backend and go on
            results[backend] = f"skipped: {exc}"
    if args.json:
        print(json.dumps(results))
        return
    for backend, res in results.items():
        if isinstance(res, str):
            print(f"{backend:11} {res}")
        else:
            print(
                f"{backend:11} n={res['n']:<6} median {res['median_us']:7.1f} µs  p90 {res['p90_us']:7.1f}  "
                f"p99 {res['p99_us']:7.1f}  mean {res['mean_us']:7.1f}  ({res['checkpoints_per_s']}/s)"
            )


if __name__ == "__main__":
    asyncio.run(main())
