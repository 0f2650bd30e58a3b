"""Per-step cost of the OpenTelemetry observer: off, sampled out, and exporting over OTLP/HTTP.

Each run is a linear chain of hook steps (a local no-op hook, so every step also opens a tool
span); the exporter sends to `OtlpReceiver`, a real OTLP/HTTP endpoint in this process that
decodes every batch. Figures are medians of several runs, per step, with the ratio to the
no-tracing baseline measured in the same process. Usage:

    python -m benchmarks.otel_overhead [--steps 200] [--runs 15]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from typing import Any

from taskengine.config import Settings
from taskengine.engine import SimpleEnv
from taskengine.hooks import default_local_hooks, hook
from taskengine.hooks.composite import HookRegistry
from taskengine.observability.otel import configure_tracing
from taskengine.testing.otlp import OtlpReceiver


def chain(steps: int) -> dict[str, Any]:
    tasks = []
    for i in range(steps):
        nxt = f"s{i + 1}" if i + 1 < steps else "end"
        tasks.append({"id": f"s{i}", "handler": "hook", "hook": {"name": "bench_otel_noop"},
                      "transition": {"branches": [{"operator": "default", "goto": nxt}]}})  # fmt: skip
    return {"id": "otel-bench", "tasks": tasks}


async def per_step_us(env: SimpleEnv, definition: dict[str, Any], runs: int, steps: int) -> float:
    samples = []
    await env.exec_env(definition, "warm-up")
    for _ in range(runs):
        started = time.perf_counter()
        await env.exec_env(definition, "x")
        samples.append((time.perf_counter() - started) / steps * 1e6)
    return statistics.median(samples)


async def measure(steps: int, runs: int) -> dict[str, float]:
    @hook("bench_otel_noop")
    def noop(input: Any = None) -> str:
        """Does nothing."""
        return "ok"

    definition = chain(steps)
    hooks = HookRegistry(default_local_hooks())
    figures: dict[str, float] = {}
    with OtlpReceiver() as receiver:
        variants = {
            "off": None,
            "sampled_out": {"endpoint": receiver.url, "sample_ratio": 0.0},
            "exporting": {"endpoint": receiver.url},
        }
        for name, otel in variants.items():
            observers = []
            tracing = None
            if otel is not None:
                tracing = configure_tracing(Settings.model_validate({"otel": otel}), {})
                observers.append(tracing)
            env = SimpleEnv(hooks=hooks, observers=observers)
            figures[name] = await per_step_us(env, definition, runs, steps)
            if tracing is not None:
                await tracing.aclose()
        figures["spans_received"] = len(receiver.snapshot())
    default_local_hooks().unregister("bench_otel_noop")
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    figures = asyncio.run(measure(args.steps, args.runs))
    base = figures["off"]
    print(f"per-step time, median of {args.runs} runs of {args.steps} hook steps")
    for name in ("off", "sampled_out", "exporting"):
        extra = figures[name] - base
        print(
            f"  {name:12s} {figures[name]:8.1f} µs/step  (+{extra:6.1f} µs, x{figures[name] / base:.2f})"
        )
    print(f"  spans received by the in-process OTLP/HTTP collector: {figures['spans_received']}")


if __name__ == "__main__":
    main()
