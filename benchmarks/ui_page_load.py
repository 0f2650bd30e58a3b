"""Inspector page times for a run of 1 000 steps (and the runs list), served in-process.

Builds a real 1 000-step run in a SQLite store (a chain of local no-op hook steps, debug on so
every step keeps its input and output), then times `GET /ui/runs/{id}` and `GET /ui` through
the ASGI app (no socket), with the JSON `GET /runs/{id}` of the same run as the baseline.

    python -m benchmarks.ui_page_load [--steps 1000] [--repeat 20]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from taskengine.config import Settings
from taskengine.hooks import default_local_hooks, hook
from taskengine.server import create_app


def chain(steps: int) -> dict[str, Any]:
    tasks = []
    for i in range(steps):
        nxt = f"step{i + 1}" if i + 1 < steps else "end"
        tasks.append({"id": f"step{i}", "handler": "hook", "hook": {"name": "bench_ui_noop"},
                      "transition": {"branches": [{"operator": "default", "goto": nxt}]}})  # fmt: skip
    return {"id": "ui-bench", "debug": True, "tasks": tasks}


async def timed(client: httpx.AsyncClient, url: str, repeat: int) -> tuple[float, int]:
    samples = []
    size = 0
    for _ in range(repeat):
        started = time.perf_counter()
        reply = await client.get(url)
        samples.append((time.perf_counter() - started) * 1000)
        reply.raise_for_status()
        size = len(reply.content)
    return statistics.median(samples), size


async def measure(steps: int, repeat: int, folder: Path) -> dict[str, tuple[float, int]]:
    @hook("bench_ui_noop")
    def noop(input: Any = None) -> str:
        """Does nothing."""
        return "ok"

    settings = Settings.model_validate({"db": f"sqlite:///{folder / 'ui.db'}", "kv": "memory://",
                                        "limits": {"max_steps_default": steps + 10}})  # fmt: skip
    app = create_app(settings, environ={})
    async with app.router.lifespan_context(app):
        env = app.state.taskengine.runtime.env
        result = await env.exec_env(chain(steps), "start")
        assert len(result.state) == steps, len(result.state)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://te") as client:
            figures = {
                "json GET /runs/{id}": await timed(client, f"/runs/{result.run_id}", repeat),
                "page GET /ui/runs/{id}": await timed(client, f"/ui/runs/{result.run_id}", repeat),
                "page GET /ui": await timed(client, "/ui", repeat),
            }
    default_local_hooks().unregister("bench_ui_noop")
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        figures = asyncio.run(measure(args.steps, args.repeat, Path(folder)))
    base = figures["json GET /runs/{id}"][0]
    print(f"run of {args.steps} steps; median of {args.repeat} requests, in-process ASGI")
    for name, (ms, size) in figures.items():
        print(f"  {name:24s} {ms:8.1f} ms  {size / 1024:8.1f} KiB  (x{ms / base:.2f} vs JSON)")


if __name__ == "__main__":
    main()
