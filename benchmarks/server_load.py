"""Server load: N concurrent chain executions through `taskengine serve` vs FakeLLMServer directly.

Three processes: FakeLLMServer (answers after `--delay`, default 50 ms), the taskengine server
(uvicorn, one worker, SQLite run store, activity tracking on), and this client (aiohttp). Each
repetition fires `--concurrency` requests at once, first straight at the fake's
`/v1/chat/completions` (the floor), then as `POST /tasks` runs of a one-task `raw_string`
chain through the server, and (unless `--no-openai`) as `POST /openai/{chain}/v1/chat/completions`.
It prints requests/s, p50/p99 latency, the ratios to the direct calls, the errors (must be 0)
and the server's resident memory (peak, and after each repetition, to show it stays bounded).

    python benchmarks/server_load.py [--concurrency 500] [--repeat 3] [--delay 0.05] [--no-openai]

It is a benchmark, not a test: nothing here is timed by CI. Exit status 1 when any request failed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

CHAIN = {
    "id": "load",
    "tasks": [
        {"id": "answer", "handler": "raw_string", "prompt_template": "Answer briefly: {{.input}}"}
    ],
}


# --- child processes -------------------------------------------------------------------------


def _read_line(proc: subprocess.Popen[str], prefix: str, what: str) -> str:
    deadline = time.monotonic() + 30
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"{what} exited before it was ready (exit {proc.poll()})")
        if line.startswith(prefix):
            return line.strip()[len(prefix) :]
    raise RuntimeError(f"{what} did not start within 30 s")


@contextlib.contextmanager
def child(cmd: list[str], prefix: str, what: str) -> Iterator[tuple[subprocess.Popen[str], str]]:
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    try:
        yield proc, _read_line(proc, prefix, what)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def serve(llm_url: str, db_path: str, max_runs: int) -> None:
    """The server process: taskengine's app under uvicorn on a free 127.0.0.1 port."""
    import logging

    import uvicorn

    from taskengine.config import Settings
    from taskengine.server import create_app

    logging.getLogger("taskengine").setLevel(logging.WARNING)
    settings = Settings.model_validate({
        "providers": [{"name": "fake", "type": "openai_compatible", "base_url": llm_url + "/v1",
                       "models": ["fake-model"], "max_connections": 2000}],
        "default_provider": "fake",
        "default_model": "fake-model",
        "db": f"sqlite:///{db_path}",
        "kv": "memory://",
        "server": {"max_concurrent_runs": max_runs},
    })  # fmt: skip
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(4096)
    print(f"SERVER_PORT={sock.getsockname()[1]}", flush=True)
    # keep-alive beyond a round, so the client never reuses a connection the server just closed
    from taskengine.server.app import tune_gc_for_service

    app = create_app(settings)
    tune_gc_for_service()  # what `taskengine serve` does
    config = uvicorn.Config(
        app,
        log_level="warning",
        access_log=False,
        backlog=4096,
        timeout_keep_alive=120,
    )
    uvicorn.Server(config).run(sockets=[sock])


def rss_kb(pid: int) -> tuple[int, int]:
    """(current, peak) resident set size of a process in KiB, from /proc."""
    values = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0])
    return values.get("VmRSS", 0), values.get("VmHWM", 0)


# --- the load --------------------------------------------------------------------------------


@dataclass
class Round:
    name: str
    wall_s: float
    latencies: list[float]
    errors: dict[str, int] = field(default_factory=dict)

    @property
    def rps(self) -> float:
        return len(self.latencies) / self.wall_s

    def pct(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def fire(
    session: Any, name: str, url: str, bodies: list[dict[str, Any]], check: Any
) -> Round:
    """POST every body at once; latency per request, and what failed (status or exception)."""
    errors: dict[str, int] = {}
    latencies: list[float] = []

    async def one(body: dict[str, Any]) -> None:
        began = time.perf_counter()
        try:
            async with session.post(url, json=body) as response:
                payload = await response.read()
                if response.status != 200 or not check(json.loads(payload)):
                    key = f"HTTP {response.status}"
                    errors[key] = errors.get(key, 0) + 1
                    return
        except Exception as exc:
            key = type(exc).__name__
            errors[key] = errors.get(key, 0) + 1
            return
        latencies.append(time.perf_counter() - began)

    began = time.perf_counter()
    await asyncio.gather(*(one(b) for b in bodies))
    return Round(name, time.perf_counter() - began, latencies or [float("nan")], errors)


async def drive(args: argparse.Namespace, llm_url: str, server_url: str, server_pid: int) -> int:
    import aiohttp

    n = args.concurrency
    direct_bodies = [
        {"model": "fake-model", "messages": [{"role": "user", "content": f"q{i}"}]}
        for i in range(n)
    ]
    task_bodies = [{"input": f"q{i}", "chainId": "load"} for i in range(n)]
    openai_bodies = [
        {"model": "load", "messages": [{"role": "user", "content": f"q{i}"}]} for i in range(n)
    ]
    variants = [
        (
            "direct",
            f"{llm_url}/v1/chat/completions",
            direct_bodies,
            lambda p: bool(p.get("choices")),
        ),
        ("/tasks", f"{server_url}/tasks", task_bodies, lambda p: p.get("status") == "succeeded"),
    ]
    if not args.no_openai:
        variants.append(("/openai", f"{server_url}/openai/load/v1/chat/completions", openai_bodies,
                         lambda p: bool(p.get("choices"))))  # fmt: skip
    connector = aiohttp.TCPConnector(limit=0, force_close=False)
    timeout = aiohttp.ClientTimeout(total=120)
    rounds: dict[str, list[Round]] = {name: [] for name, *_ in variants}
    memory: list[int] = []
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        async with session.post(f"{server_url}/taskchains", json=CHAIN) as response:
            if response.status not in (201, 409):
                raise RuntimeError(
                    f"could not store the chain: HTTP {response.status} {await response.text()}"
                )
        # warm-up: imports, connection pools, the first SQLite pages
        for name, url, bodies, check in variants:
            await fire(session, name, url, bodies[:20], check)
        for _ in range(args.repeat):
            for name, url, bodies, check in variants:
                rounds[name].append(await fire(session, name, url, bodies, check))
            memory.append(rss_kb(server_pid)[0])
    peak = rss_kb(server_pid)[1]
    return report(args, rounds, memory, peak)


def report(
    args: argparse.Namespace, rounds: dict[str, list[Round]], memory: list[int], peak_kb: int
) -> int:
    med = statistics.median
    base = rounds["direct"]
    print(f"\n{args.concurrency} concurrent requests x {args.repeat} repetitions, "
          f"FakeLLMServer delay {args.delay * 1000:.0f} ms (medians)")  # fmt: skip
    print(f"{'variant':<9} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'wall s':>7} {'rps ratio':>10} "
          f"{'p99 ratio':>10} {'errors':>7}")  # fmt: skip
    failed = 0
    for name, runs in rounds.items():
        errors = sum(sum(r.errors.values()) for r in runs)
        failed += errors
        rps = med(r.rps for r in runs)
        p50 = med(r.pct(0.50) for r in runs) * 1000
        p99 = med(r.pct(0.99) for r in runs) * 1000
        wall = med(r.wall_s for r in runs)
        # ratios paired within each repetition, then the median
        rps_ratio = med(b.rps / r.rps for r, b in zip(runs, base, strict=True))
        p99_ratio = med(r.pct(0.99) / b.pct(0.99) for r, b in zip(runs, base, strict=True))
        print(f"{name:<9} {rps:>8.0f} {p50:>8.1f} {p99:>8.1f} {wall:>7.2f} {rps_ratio:>9.2f}x "
              f"{p99_ratio:>9.2f}x {errors:>7}")  # fmt: skip
        for r in runs:
            if r.errors:
                print(f"    errors in a {name} round: {r.errors}")
    print("(rps ratio = direct req/s / variant req/s; p99 ratio = variant p99 / direct p99)")
    print(f"server RSS after each repetition: {', '.join(f'{kb / 1024:.0f} MiB' for kb in memory)}; "
          f"peak {peak_kb / 1024:.0f} MiB")  # fmt: skip
    print(f"errors: {failed}")
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--delay", type=float, default=0.05, help="FakeLLMServer answer delay (s)")
    parser.add_argument(
        "--no-openai", action="store_true", help="skip the OpenAI-compatible endpoint"
    )
    parser.add_argument(
        "--serve", nargs=3, metavar=("LLM_URL", "DB", "MAX_RUNS"), help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)
    if args.serve:
        serve(args.serve[0], args.serve[1], int(args.serve[2]))
        return 0
    fake = [sys.executable, "-m", "taskengine.testing.fake_llm", "--delay", str(args.delay)]
    with (
        tempfile.TemporaryDirectory() as tmp,
        child(fake, "FAKE_LLM_URL=", "FakeLLMServer") as (_, llm_url),
    ):
        db = os.path.join(tmp, "load.db")
        server_cmd = [sys.executable, os.path.abspath(__file__), "--serve", llm_url, db,
                      str(max(1000, args.concurrency))]  # fmt: skip
        with child(server_cmd, "SERVER_PORT=", "taskengine server") as (proc, port):
            return asyncio.run(drive(args, llm_url, f"http://127.0.0.1:{port}", proc.pid))


if __name__ == "__main__":
    sys.exit(main())
