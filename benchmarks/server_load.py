"""Server load: N concurrent chain executions through `taskengine serve` vs a relay floor.

Four processes: FakeLLMServer (answers after `--delay`, default 50 ms), the floor server, the
taskengine server (uvicorn, one worker, SQLite run store, activity tracking on: the defaults),
and this client (aiohttp). The floor is the same FastAPI + uvicorn stack with one route that
forwards the request to the fake through the provider's own SDK transport (the `openai` SDK on
its aiohttp client) and answers the model's JSON: what any server relaying to a model spends,
with no engine. Each repetition fires `--concurrency` requests at once, straight at the fake's
`/v1/chat/completions` (direct), at the floor, as `POST /tasks` runs of a one-task `raw_string`
chain through the server, and (unless `--no-openai`) as `POST /openai/{chain}/v1/chat/completions`.
It prints requests/s, p50/p99 latency, the ratios to the floor (the target: within
`TARGET` = 1.5x in req/s and p99) and to the direct calls, each serving process's CPU time per
request, the errors (must be 0) and the server's resident memory (peak, and after each
repetition, to show it stays bounded).

    python benchmarks/server_load.py [--concurrency 500] [--repeat 8] [--delay 0.05] [--no-openai]
                                     [--json-out PATH] [--profile PREFIX]

`--profile` runs both servers under `py-spy record`; `benchmarks/profile_layers.py` turns the
server's file into the per-layer breakdown of docs/performance.md. It is a benchmark, not a
test: nothing here is timed by CI. Exit status 1 when any request failed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

#: The target: each server endpoint within this factor of the floor, in req/s and in p99.
TARGET = 1.5

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
def child(
    cmd: list[str], prefix: str, what: str, stop: int = signal.SIGTERM
) -> Iterator[tuple[subprocess.Popen[str], str]]:
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    try:
        yield proc, _read_line(proc, prefix, what)
    finally:
        proc.send_signal(stop)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def serve(llm_url: str, db_path: str, max_runs: int) -> None:
    """The server process: taskengine's app under uvicorn on a free 127.0.0.1 port."""
    import logging

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
    from taskengine.server.app import tune_gc_for_service

    sock = _listen()
    app = create_app(settings)
    tune_gc_for_service()  # what `taskengine serve` does
    _uvicorn(app, sock)


def _listen() -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(4096)
    print(f"SERVER_PORT={sock.getsockname()[1]}", flush=True)
    return sock


def _uvicorn(app: Any, sock: socket.socket) -> None:
    """Both servers run under this one uvicorn configuration."""
    import uvicorn

    # keep-alive beyond a round, so the client never reuses a connection the server just closed
    config = uvicorn.Config(
        app, log_level="warning", access_log=False, backlog=4096, timeout_keep_alive=120
    )
    uvicorn.Server(config).run(sockets=[sock])


def serve_floor(llm_url: str) -> None:
    """The floor: the same FastAPI + uvicorn stack with one route forwarding to the model.

    `POST /floor` takes a chat-completions body and sends it through taskengine's own provider
    transport (the `openai` SDK on its aiohttp client, built exactly as a run builds it), then
    answers the model's JSON. No engine, store, activity or middleware: what any server must
    spend to relay one request.
    """
    import httpx
    from fastapi import FastAPI
    from fastapi.responses import JSONResponse

    from taskengine.providers.openai_compat import OpenAICompatProvider
    from taskengine.server.app import tune_gc_for_service

    provider = OpenAICompatProvider("fake", base_url=llm_url + "/v1", max_connections=2000)
    app = FastAPI()

    @app.post("/floor")
    async def floor(body: dict[str, Any]) -> JSONResponse:
        reply = await provider.client().post("/chat/completions", body=body, cast_to=httpx.Response)
        return JSONResponse(json.loads(reply.text))

    sock = _listen()
    tune_gc_for_service()
    _uvicorn(app, sock)


def cpu_s(pid: int) -> float:
    """User + system CPU seconds a process has used so far, from /proc."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


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
    #: CPU seconds the serving process spent on the round (a machine shared with other
    #: work slows req/s and p99 down, this much less)
    cpu_s: float = float("nan")

    @property
    def cpu_us_per_request(self) -> float:
        return self.cpu_s / len(self.latencies) * 1e6

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


async def drive(args: argparse.Namespace, urls: dict[str, str], pids: dict[str, int]) -> int:
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
    server_url = urls["server"]
    choices = lambda p: bool(p.get("choices"))  # noqa: E731
    variants = [
        ("direct", f"{urls['llm']}/v1/chat/completions", direct_bodies, choices),
        ("floor", f"{urls['floor']}/floor", direct_bodies, choices),
        ("/tasks", f"{server_url}/tasks", task_bodies, lambda p: p.get("status") == "succeeded"),
    ]
    if not args.no_openai:
        variants.append(("/openai", f"{server_url}/openai/load/v1/chat/completions",
                         openai_bodies, choices))  # fmt: skip
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
        for rep in range(args.repeat):
            # the order rotates per repetition, as in the other benchmarks, so no variant always
            # meets the state (SQLite WAL, heap, pools) the one before it left behind
            shift = rep % len(variants)
            for name, url, bodies, check in variants[shift:] + variants[:shift]:
                pid = pids[name]
                before = cpu_s(pid)
                done = await fire(session, name, url, bodies, check)
                done.cpu_s = cpu_s(pid) - before
                rounds[name].append(done)
            memory.append(rss_kb(pids["/tasks"])[0])
    peak = rss_kb(pids["/tasks"])[1]
    return report(args, rounds, memory, peak)


def _ratios(runs: list[Round], base: list[Round]) -> tuple[float, float]:
    """(base req/s / variant req/s, variant p99 / base p99), paired per repetition, medians."""
    med = statistics.median
    pairs = list(zip(runs, base, strict=True))
    return med(b.rps / r.rps for r, b in pairs), med(r.pct(0.99) / b.pct(0.99) for r, b in pairs)


def report(
    args: argparse.Namespace, rounds: dict[str, list[Round]], memory: list[int], peak_kb: int
) -> int:
    med = statistics.median
    print(f"\n{args.concurrency} concurrent requests x {args.repeat} repetitions, "
          f"FakeLLMServer delay {args.delay * 1000:.0f} ms (medians)")  # fmt: skip
    print(f"{'variant':<9} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'wall s':>7} "
          f"{'rps/floor':>10} {'p99/floor':>10} {'rps/direct':>11} {'p99/direct':>11} "
          f"{'CPU us/req':>11} {'errors':>7}")  # fmt: skip
    failed = 0
    summary: dict[str, dict[str, float]] = {}
    for name, runs in rounds.items():
        errors = sum(sum(r.errors.values()) for r in runs)
        failed += errors
        floor_rps, floor_p99 = _ratios(runs, rounds["floor"])
        direct_rps, direct_p99 = _ratios(runs, rounds["direct"])
        row = summary[name] = {
            "rps": med(r.rps for r in runs),
            "p50_ms": med(r.pct(0.50) for r in runs) * 1000,
            "p99_ms": med(r.pct(0.99) for r in runs) * 1000,
            "wall_s": med(r.wall_s for r in runs),
            "rps_ratio_floor": floor_rps,
            "p99_ratio_floor": floor_p99,
            "rps_ratio_direct": direct_rps,
            "p99_ratio_direct": direct_p99,
            "cpu_us_per_request": med(r.cpu_us_per_request for r in runs),
            "errors": errors,
        }
        print(f"{name:<9} {row['rps']:>8.0f} {row['p50_ms']:>8.1f} {row['p99_ms']:>8.1f} "
              f"{row['wall_s']:>7.2f} {floor_rps:>9.2f}x {floor_p99:>9.2f}x "
              f"{direct_rps:>10.2f}x {direct_p99:>10.2f}x {row['cpu_us_per_request']:>11.0f} "
              f"{errors:>7}")  # fmt: skip
        for r in runs:
            if r.errors:
                print(f"    errors in a {name} round: {r.errors}")
    print("(rps/X = X's req/s / the variant's; p99/X = the variant's p99 / X's; paired per "
          "repetition.\n floor = the same FastAPI + uvicorn stack relaying to the fake model "
          "through taskengine's SDK transport, no engine;\n CPU us/req = CPU time of the serving "
          "process (fake model, floor or taskengine server) per request)")  # fmt: skip
    for name in ("/tasks", "/openai"):
        if name in summary:
            row = summary[name]
            met = max(row["rps_ratio_floor"], row["p99_ratio_floor"]) <= TARGET
            print(f"{name}: within {TARGET}x of the floor in req/s and p99: "
                  f"{'yes' if met else 'no'}")  # fmt: skip
    print(f"server RSS after each repetition: {', '.join(f'{kb / 1024:.0f} MiB' for kb in memory)}; "
          f"peak {peak_kb / 1024:.0f} MiB")  # fmt: skip
    print(f"errors: {failed}")
    if args.json:
        with open(args.json, "w") as out:
            vs_floor = {
                name: {"rps": row["rps_ratio_floor"], "p99": row["p99_ratio_floor"]}
                for name, row in summary.items()
                if name in ("/tasks", "/openai")
            }
            json.dump({"concurrency": args.concurrency, "repeat": args.repeat,
                       "delay_s": args.delay, "target": TARGET, "vs_floor": vs_floor,
                       "variants": summary,
                       "rss_mib": [kb / 1024 for kb in memory], "peak_rss_mib": peak_kb / 1024},
                      out, indent=2)  # fmt: skip
    return 1 if failed else 0


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, default=500)
    parser.add_argument(
        "--repeat", type=int, default=8,
        help="repetitions (default 8: the four variants' order rotates each time, so every "
        "variant takes every place in the order twice)",
    )  # fmt: skip
    parser.add_argument("--delay", type=float, default=0.05, help="FakeLLMServer answer delay (s)")
    parser.add_argument(
        "--no-openai", action="store_true", help="skip the OpenAI-compatible endpoint"
    )
    parser.add_argument(
        "--json-out",
        "--json",
        dest="json",
        metavar="PATH",
        help="also write the medians and the ratios to the floor as JSON here",
    )
    parser.add_argument(
        "--profile",
        metavar="PREFIX",
        help="run the taskengine and floor servers under `py-spy record` (speedscope files "
        "PREFIX-server.json and PREFIX-floor.json; needs py-spy on PATH)",
    )
    parser.add_argument(
        "--serve", nargs=3, metavar=("LLM_URL", "DB", "MAX_RUNS"), help=argparse.SUPPRESS
    )
    parser.add_argument("--serve-floor", metavar="LLM_URL", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    if args.serve:
        serve(args.serve[0], args.serve[1], int(args.serve[2]))
        return 0
    if args.serve_floor:
        serve_floor(args.serve_floor)
        return 0
    fake = [sys.executable, "-m", "taskengine.testing.fake_llm", "--delay", str(args.delay)]
    script = os.path.abspath(__file__)
    stop = signal.SIGINT if args.profile else signal.SIGTERM  # py-spy writes its file on SIGINT
    with (
        tempfile.TemporaryDirectory() as tmp,
        child(fake, "FAKE_LLM_URL=", "FakeLLMServer") as (fake_proc, llm_url),
        child(
            _profiled([sys.executable, script, "--serve-floor", llm_url], args.profile, "floor"),
            "SERVER_PORT=", "floor server", stop,
        ) as (floor_proc, floor_port),
    ):  # fmt: skip
        db = os.path.join(tmp, "load.db")
        server_cmd = [sys.executable, script, "--serve", llm_url, db,
                      str(max(1000, args.concurrency))]  # fmt: skip
        server_cmd = _profiled(server_cmd, args.profile, "server")
        with child(server_cmd, "SERVER_PORT=", "taskengine server", stop) as (proc, port):
            urls = {"llm": llm_url, "floor": f"http://127.0.0.1:{floor_port}",
                    "server": f"http://127.0.0.1:{port}"}  # fmt: skip
            server_pid, floor_pid = _served(proc.pid), _served(floor_proc.pid)
            pids = {"direct": fake_proc.pid, "floor": floor_pid, "/tasks": server_pid,
                    "/openai": server_pid}  # fmt: skip
            return asyncio.run(drive(args, urls, pids))


def _profiled(cmd: list[str], prefix: str | None, name: str) -> list[str]:
    """`cmd` under `py-spy record` writing `<prefix>-<name>.json` (speedscope) when profiling."""
    if not prefix:
        return cmd
    return ["py-spy", "record", "--nonblocking", "--rate", "200", "--format", "speedscope",
            "--output", f"{prefix}-{name}.json", "--", *cmd]  # fmt: skip


def _served(pid: int) -> int:
    """The Python process serving: `pid` itself, or py-spy's child when it is py-spy."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as children:
            found = children.read().split()
    except OSError:
        return pid
    with open(f"/proc/{pid}/comm") as comm:
        is_pyspy = comm.read().strip() == "py-spy"
    return int(found[0]) if is_pyspy and found else pid


if __name__ == "__main__":
    sys.exit(main())
