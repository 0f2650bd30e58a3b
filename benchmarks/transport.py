"""Transport comparison: N concurrent x 3 sequential chat calls against FakeLLMServer (50 ms each).

Compares (a) bare aiohttp, (b) the openai SDK on its default httpx client, (c) the openai SDK on
its aiohttp-backed client, and (d) taskengine's OpenAICompatProvider (the SDK on aiohttp, through
the SDK's raw `client.post` path). The ideal wall time is 3 x 50 ms = 0.15 s plus overhead;
"cpu" is this process's CPU time, the cost that grows when a pool is quadratic.

    python benchmarks/transport.py [--concurrency 100,250,500] [--calls 3] [--delay 0.05]
                                   [--only a,b,c,d] [--repeat 3] [--server thread|process]

`--server process` runs FakeLLMServer in a child process, so the server's CPU does not compete
with the client for this process's GIL; `thread` (the default) is how tests use it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from types import SimpleNamespace
from typing import Any

from taskengine.testing.fake_llm import FakeLLMServer

MESSAGES = [{"role": "user", "content": "hello"}]
Call = Callable[[], Awaitable[Any]]


@contextlib.contextmanager
def server_in_process(delay: float) -> Iterator[Any]:
    """FakeLLMServer in a child process; yields an object with `url` and `openai_base_url`."""
    cmd = [
        sys.executable,
        "-m",
        "taskengine.testing.fake_llm",
        "--reply",
        "hello there",
        "--delay",
        str(delay),
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip().split("=", 1)[1]
        yield SimpleNamespace(url=url, openai_base_url=url + "/v1", clear=lambda: None)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()


@contextlib.contextmanager
def server_in_thread(delay: float) -> Iterator[Any]:
    with FakeLLMServer(default_reply="hello there") as srv:
        srv.add_rule(delay=delay)
        yield srv


@contextlib.asynccontextmanager
async def bare_aiohttp(base_url: str) -> AsyncIterator[Call]:
    import aiohttp

    url = base_url + "/chat/completions"
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1000)) as session:

        async def call() -> Any:
            async with session.post(url, json={"model": "m", "messages": MESSAGES}) as resp:
                return await resp.json()

        yield call


@contextlib.asynccontextmanager
async def sdk(base_url: str, transport: str) -> AsyncIterator[Call]:
    import httpx2
    import openai

    limits = httpx2.Limits(max_connections=1000, max_keepalive_connections=1000)
    factory = (
        openai.DefaultAioHttpClient if transport == "aiohttp" else openai.DefaultAsyncHttpxClient
    )
    client = openai.AsyncOpenAI(
        api_key="x",
        base_url=base_url,
        max_retries=0,
        http_client=factory(limits=limits, timeout=60),
    )
    try:

        async def call() -> Any:
            return await client.chat.completions.create(model="m", messages=MESSAGES)  # type: ignore[arg-type]

        yield call
    finally:
        await client.close()


@contextlib.asynccontextmanager
async def provider(base_url: str) -> AsyncIterator[Call]:
    from taskengine.datatypes import Message
    from taskengine.providers.openai_compat import OpenAICompatProvider

    prov = OpenAICompatProvider("bench", base_url=base_url, timeout=60)
    messages = [Message(role="user", content="hello")]
    try:

        async def call() -> Any:
            return await prov.chat(messages, model="m")

        yield call
    finally:
        await prov.aclose()


VARIANTS: dict[str, tuple[str, Callable[[str], Any]]] = {
    "a": ("bare aiohttp", bare_aiohttp),
    "b": ("openai SDK + httpx (default)", lambda url: sdk(url, "httpx")),
    "c": ("openai SDK + aiohttp client", lambda url: sdk(url, "aiohttp")),
    "d": ("taskengine OpenAICompatProvider", provider),
}


async def measure(
    make: Callable[[str], Any], base_url: str, n: int, calls: int
) -> tuple[float, float]:
    """Wall and CPU seconds for n concurrent workers each making `calls` sequential calls."""
    async with make(base_url) as call:

        async def worker() -> None:
            for _ in range(calls):
                await call()

        wall, cpu = time.perf_counter(), time.process_time()
        await asyncio.gather(*(worker() for _ in range(n)))
        return time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--concurrency", default="500", help="comma-separated, e.g. 100,250,500")
    parser.add_argument("--calls", type=int, default=3)
    parser.add_argument("--delay", type=float, default=0.05)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--only", default="a,b,c,d")
    parser.add_argument("--server", choices=("thread", "process"), default="thread")
    args = parser.parse_args()
    keys = [k.strip() for k in args.only.split(",") if k.strip()]
    levels = [int(x) for x in args.concurrency.split(",")]
    serve = server_in_thread if args.server == "thread" else server_in_process
    print(
        f"{args.calls} sequential calls per worker, {args.delay * 1000:.0f} ms each "
        f"(ideal wall {args.calls * args.delay:.2f} s), median of {args.repeat}, server in a {args.server}"
    )
    with serve(args.delay) as srv:
        for n in levels:
            results: dict[str, list[tuple[float, float]]] = {k: [] for k in keys}
            for _ in range(args.repeat):
                for key in keys:  # interleave variants within each repetition
                    results[key].append(
                        asyncio.run(measure(VARIANTS[key][1], srv.openai_base_url, n, args.calls))
                    )
                    srv.clear()
            print(f"concurrency {n} ({n * args.calls} calls)")
            base = statistics.median(w for w, _ in results[keys[0]])
            for key in keys:
                wall = statistics.median(w for w, _ in results[key])
                cpu = statistics.median(c for _, c in results[key])
                per_call_ms = cpu / (n * args.calls) * 1000
                print(
                    f"  ({key}) {VARIANTS[key][0]:34s} wall {wall:7.3f} s  x{wall / base:5.2f}   "
                    f"cpu {cpu:7.3f} s  ({per_call_ms:.2f} ms/call)"
                )


if __name__ == "__main__":
    main()
