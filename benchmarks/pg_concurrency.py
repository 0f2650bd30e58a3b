"""PostgreSQL under concurrency: R concurrent runs × 3 LLM steps with a durable commit per step.

The chain and the FakeLLMServer (50 ms answers, in its own process) are those of
``benchmarks/concurrency.py``. Variants, each repetition in a fresh subprocess:

* ``memory``: ``SimpleEnv.exec_env`` with no store (the baseline every ratio is against).
* ``sqlite``: the same with the SQLite store (a file in a temporary directory).
* ``postgres``: the same with the PostgreSQL store, in a throwaway schema: the run row, a
  durable checkpoint after each of the 3 steps, the finished run (5 commits a run).
* ``langgraph_pg``: a compiled 3-node StateGraph with ``AsyncPostgresSaver`` (own throwaway
  schema, a pool as large as the store's), a new ``thread_id`` per run and
  ``durability="sync"`` (each step's checkpoint written before the next step starts).

``postgres`` and ``langgraph_pg`` need ``TASKENGINE_TEST_PG_DSN`` (or ``--pg-dsn``);
``langgraph_pg`` needs ``langgraph`` and ``langgraph-checkpoint-postgres``. A variant that
cannot run is skipped with a note. Medians of the repetitions; ratios paired per repetition.

    python -m benchmarks.pg_concurrency [--runs 500] [--reps 5] [--only postgres,memory]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from benchmarks import ROOT, has_module, median, no_tracing_env, percentile, worker_env
from benchmarks.concurrency import (
    MODEL,
    REPLY,
    _cpus,
    _pinned,
    _raw_caller,
    _sdk_client,
    _ServerProcess,
    _Three,
)

__all__ = ["VARIANTS", "run"]

VARIANTS = ("memory", "sqlite", "postgres", "langgraph_pg")
_REQUIRES = {"langgraph_pg": ("langgraph", "langgraph.checkpoint.postgres", "psycopg_pool")}
_NEEDS_PG = ("postgres", "langgraph_pg")
_MARK = "BENCH_RESULT "
DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/test"
PROMPTS = ("Question {{ .input }}", "Improve: {{ .t1 }}", "Summarise: {{ .t2 }}")

Setup = tuple[Callable[[int], Awaitable[str]], Callable[[], Awaitable[None]]]


def _with_query(dsn: str, **extra: str) -> str:
    parts = urlsplit(dsn)
    query = dict(parse_qsl(parts.query, keep_blank_values=True), **extra)
    # quote, not quote_plus: libpq decodes %20 in `options=-c a=b`, but not +.
    return urlunsplit(parts._replace(query=urlencode(query, quote_via=quote)))


def _chain() -> Any:
    from taskengine.chain import load_chain

    llm = {"provider": "fake", "model": MODEL}
    tasks: list[dict[str, Any]] = []
    for index, prompt in enumerate(PROMPTS, start=1):
        task: dict[str, Any] = {
            "id": f"t{index}",
            "handler": "raw_string",
            "prompt_template": prompt,
            "execute_config": llm,
        }
        if index < len(PROMPTS):
            task["transition"] = {"branches": [{"operator": "default", "goto": f"t{index + 1}"}]}
        tasks.append(task)
    return load_chain({"id": "three-calls", "tasks": tasks})


async def _taskengine(base_url: str, store_url: str | None) -> Setup:
    from taskengine.engine import SimpleEnv
    from taskengine.providers.config import ProviderConfig
    from taskengine.providers.registry import ProviderRegistry
    from taskengine.providers.resolver import ModelResolver
    from taskengine.store import open_store

    config = ProviderConfig(
        name="fake", type="openai_compatible", base_url=base_url, models=[MODEL]
    )
    registry = ProviderRegistry.from_settings([config], environ={}, default_provider="fake")
    store = await open_store(store_url) if store_url else None
    env = SimpleEnv(resolver=ModelResolver(registry), store=store)
    chain = _chain()

    async def one_run(i: int) -> str:
        return (await env.exec_env(chain, str(i))).output

    async def close() -> None:
        await registry.aclose()
        if store is not None:
            await store.aclose()

    return one_run, close


async def _langgraph_pg(base_url: str, conninfo: str, pool_size: int) -> Setup:
    no_tracing_env()
    from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
    from langgraph.graph import END, START, StateGraph
    from psycopg.rows import dict_row
    from psycopg_pool import AsyncConnectionPool

    client = _sdk_client(base_url)
    call = _raw_caller(client)
    pool = AsyncConnectionPool(
        conninfo,
        min_size=pool_size,
        max_size=pool_size,
        open=False,
        kwargs={"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row},
    )
    await pool.open(wait=True)
    saver = AsyncPostgresSaver(pool)  # type: ignore[arg-type]
    await saver.setup()

    async def ask_a(state: _Three) -> dict[str, str]:
        return {"a": await call(f"Question {state['question']}")}

    async def ask_b(state: _Three) -> dict[str, str]:
        return {"b": await call(f"Improve: {state['a']}")}

    async def ask_c(state: _Three) -> dict[str, str]:
        return {"c": await call(f"Summarise: {state['b']}")}

    graph = StateGraph(_Three)
    for name, node in (("ask_a", ask_a), ("ask_b", ask_b), ("ask_c", ask_c)):
        graph.add_node(name, node)
    graph.add_edge(START, "ask_a")
    graph.add_edge("ask_a", "ask_b")
    graph.add_edge("ask_b", "ask_c")
    graph.add_edge("ask_c", END)
    app = graph.compile(checkpointer=saver)

    async def one_run(i: int) -> str:
        config = {"configurable": {"thread_id": f"run-{i}-{uuid.uuid4().hex}"}}
        state = await app.ainvoke({"question": str(i)}, config, durability="sync")  # type: ignore[arg-type]
        return state["c"]

    async def close() -> None:
        await client.close()
        await pool.close()

    return one_run, close


class _Schema:
    """A throwaway PostgreSQL schema for one worker (created on enter, dropped on exit)."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.name = f"bench_{uuid.uuid4().hex[:12]}"

    def _exec(self, statement: str) -> None:
        import psycopg

        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute(statement)

    def __enter__(self) -> _Schema:
        self._exec(f"CREATE SCHEMA {self.name}")
        return self

    def __exit__(self, *exc: object) -> None:
        self._exec(f"DROP SCHEMA IF EXISTS {self.name} CASCADE")


async def _timed_runs(setup: Setup, runs: int) -> dict[str, Any]:
    one_run, close = setup
    try:
        if await one_run(-1) != REPLY:  # warm-up: lazy imports, first connections
            raise RuntimeError("unexpected reply in the warm-up run")
        latencies: list[float] = []

        async def timed(i: int) -> str:
            started = time.perf_counter()
            out = await one_run(i)
            latencies.append(time.perf_counter() - started)
            return out

        cpu_started = time.process_time()
        started = time.perf_counter()
        outputs = await asyncio.gather(*(timed(i) for i in range(runs)))
        wall = time.perf_counter() - started
        cpu = time.process_time() - cpu_started
    finally:
        await close()
    bad = sum(1 for out in outputs if out != REPLY)
    if bad:
        raise RuntimeError(f"{bad} of {runs} runs returned an unexpected answer")
    return {
        "runs": runs,
        "wall_s": wall,
        "runs_per_s": runs / wall,
        "cpu_s": cpu,
        "p50_ms": percentile(latencies, 50) * 1000.0,  # type: ignore[operator]
        "p99_ms": percentile(latencies, 99) * 1000.0,  # type: ignore[operator]
    }


async def _work(variant: str, base_url: str, runs: int, dsn: str, pool_size: int) -> dict:
    if variant == "memory":
        return await _timed_runs(await _taskengine(base_url, None), runs)
    if variant == "sqlite":
        with tempfile.TemporaryDirectory() as tmp:
            url = f"sqlite:///{os.path.join(tmp, 'runs.db')}"
            return await _timed_runs(await _taskengine(base_url, url), runs)
    with _Schema(dsn) as schema:
        if variant == "postgres":
            extra = {"pool_size": str(pool_size)} if pool_size else {}
            url = _with_query(dsn, schema=schema.name, **extra)
            return await _timed_runs(await _taskengine(base_url, url), runs)
        conninfo = _with_query(dsn, options=f"-c search_path={schema.name}")
        setup = await _langgraph_pg(base_url, conninfo, pool_size or 4)
        return await _timed_runs(setup, runs)


def worker_main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--worker", required=True, choices=VARIANTS)
    parser.add_argument("--url", required=True)
    parser.add_argument("--runs", type=int, default=500)
    parser.add_argument("--pg-dsn", default=DEFAULT_DSN)
    parser.add_argument("--pool-size", type=int, default=0)
    args = parser.parse_args(argv)
    result = asyncio.run(_work(args.worker, args.url, args.runs, args.pg_dsn, args.pool_size))
    print(_MARK + json.dumps(dict(result, variant=args.worker)), flush=True)


# --- the parent --------------------------------------------------------------------------


def _run_worker(variant: str, url: str, runs: int, dsn: str, pool_size: int) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "benchmarks.pg_concurrency", "--worker", variant, "--url", url]
    cmd += ["--runs", str(runs), "--pg-dsn", dsn, "--pool-size", str(pool_size)]
    cpus = _cpus()
    proc = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=worker_env(),
        timeout=600,
        check=False,
        preexec_fn=_pinned(cpus[0] if cpus else None),
    )
    for line in proc.stdout.splitlines():
        if line.startswith(_MARK):
            return json.loads(line[len(_MARK) :])
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
    raise RuntimeError(f"{variant} worker failed (exit {proc.returncode}): " + " | ".join(tail))


def _pg_reachable(dsn: str) -> str | None:
    """None when the database answers, else why not."""
    try:
        import psycopg

        with psycopg.connect(dsn, connect_timeout=5) as conn:
            conn.execute("SELECT 1")
    except Exception as exc:
        return f"PostgreSQL at {dsn} not reachable: {exc}".splitlines()[0]
    return None


def _skipped(names: list[str], dsn: str) -> dict[str, str]:
    skipped: dict[str, str] = {}
    pg_problem = _pg_reachable(dsn) if any(n in _NEEDS_PG for n in names) else None
    for name in names:
        missing = [m for m in _REQUIRES.get(name, ()) if not has_module(m)]
        if missing:
            skipped[name] = (
                f"not installed: {', '.join(missing)} "
                "(pip install langgraph langgraph-checkpoint-postgres)"
            )
        elif name in _NEEDS_PG and pg_problem:
            skipped[name] = pg_problem
    return skipped


def _ratios(samples: dict[str, list[dict[str, Any]]]) -> dict[str, float | None]:
    pairs = {
        "postgres/memory": ("postgres", "memory"),
        "sqlite/memory": ("sqlite", "memory"),
        "langgraph_pg/memory": ("langgraph_pg", "memory"),
        "postgres/langgraph_pg": ("postgres", "langgraph_pg"),
    }
    ratios: dict[str, float | None] = {}
    for label, (top, bottom) in pairs.items():
        both = list(zip(samples.get(top, []), samples.get(bottom, []), strict=False))
        ratios[label] = median([a["wall_s"] / b["wall_s"] for a, b in both])
    return ratios


def run(
    runs: int = 500,
    reps: int = 5,
    *,
    delay: float = 0.05,
    variants: list[str] | None = None,
    dsn: str | None = None,
    pool_size: int = 0,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Every variant `reps` times, interleaved; medians and paired wall-clock ratios."""
    dsn = dsn or os.environ.get("TASKENGINE_TEST_PG_DSN") or DEFAULT_DSN
    names = list(variants or VARIANTS)
    skipped = _skipped(names, dsn)
    for name, why in skipped.items():
        log(f"  skip {name}: {why}")
    active = [n for n in names if n not in skipped]
    samples: dict[str, list[dict[str, Any]]] = {n: [] for n in names}
    with _ServerProcess(delay) as server:
        for rep in range(reps):
            shift = rep % len(active) if active else 0
            for name in active[shift:] + active[:shift]:
                result = _run_worker(name, server.url + "/v1", runs, dsn, pool_size)
                samples[name].append(result)
                log(
                    f"  repetition {rep + 1}/{reps} {name}: {result['wall_s']:.3f} s, "
                    f"p50 {result['p50_ms']:.0f} ms, p99 {result['p99_ms']:.0f} ms"
                )
    metrics = ("wall_s", "runs_per_s", "cpu_s", "p50_ms", "p99_ms")
    medians = {name: {m: median([s[m] for s in samples[name]]) for m in metrics} for name in names}
    return {
        "runs": runs,
        "steps_per_run": 3,
        "delay_ms": delay * 1000.0,
        "reps": reps,
        "pool_size": pool_size or "store default",
        "median": medians,
        "ratios": _ratios(samples),
        "skipped": skipped,
    }


def _print_table(result: dict[str, Any]) -> None:
    print(f"\n{result['runs']} runs × 3 steps, {result['reps']} repetitions (medians)")
    print(f"{'variant':<14}{'wall s':>9}{'runs/s':>9}{'cpu s':>8}{'p50 ms':>9}{'p99 ms':>9}")
    for name, row in result["median"].items():
        if row["wall_s"] is None:
            print(f"{name:<14}  skipped: {result['skipped'].get(name, '')}")
            continue
        print(
            f"{name:<14}{row['wall_s']:>9.3f}{row['runs_per_s']:>9.0f}{row['cpu_s']:>8.2f}"
            f"{row['p50_ms']:>9.0f}{row['p99_ms']:>9.0f}"
        )
    for label, value in result["ratios"].items():
        if value is not None:
            print(f"{label:<24}{value:6.2f}×")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=500)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--delay", type=float, default=0.05)
    parser.add_argument("--only", default="", help="comma-separated variants")
    parser.add_argument("--pg-dsn", default=None, help="default: $TASKENGINE_TEST_PG_DSN")
    parser.add_argument("--pool-size", type=int, default=0, help="0: the store's default")
    parser.add_argument("--json", action="store_true", help="also print the result as JSON")
    parser.add_argument("--json-out", metavar="PATH", help="also write the result JSON to PATH")
    args = parser.parse_args()
    only = [v.strip() for v in args.only.split(",") if v.strip()] or None
    result = run(
        args.runs,
        args.reps,
        delay=args.delay,
        variants=only,
        dsn=args.pg_dsn,
        pool_size=args.pool_size,
    )
    _print_table(result)
    if args.json:
        print(json.dumps(result, indent=2))
    if args.json_out:
        with open(args.json_out, "w", encoding="utf-8") as out:
            json.dump(result, out, indent=2)


if __name__ == "__main__":
    if "--worker" in sys.argv:
        worker_main()
    else:
        main()
