"""Hostile-input figures (issue 14): the server's latency under a runaway run, template bombs.

Run: `.venv/bin/python -m benchmarks.hostile [--seconds 5]`. Prints, for a real `taskengine
serve` process:

- `/health` latency (p50/p99/max) while idle (the baseline) and while a self-looping `noop`
  chain runs, and how long after its `limits.run_timeout` the run is answered;
- time and peak memory (tracemalloc) of loading and rendering each template bomb, next to an
  ordinary template measured in the same run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
from pathlib import Path
from typing import Any

import httpx

SELF_LOOP = {
    "id": "spin",
    "max_steps": 1_000_000_000,
    "tasks": [{"id": "again", "handler": "noop",
               "transition": {"branches": [{"operator": "default", "goto": "again"}]}}],
}  # fmt: skip

TEMPLATES = {
    "ordinary": 'Summarise: {{ input }} ({{ printf "%05d" 42 }})',
    "printf width": '{{ printf "%0999999999d" 1 }}',
    "% width": '{{ "%0999999999d" % 1 }}',
    "format width": '{{ "{:0999999999d}".format(1) }}',
    "ljust": '{{ "x".ljust(999999999) }}',
    "100 braces": "{" * 100,
    "100 000 braces": "{" * 100_000,
    "deep parens": "{{ " + "(" * 5000 + "1" + ")" * 5000 + " }}",
    "range bomb": "{% for i in range(999999999) %}x{% endfor %}",
}


def _serve(tmp: Path, run_timeout: float) -> tuple[subprocess.Popen[bytes], str]:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    (tmp / "none.yaml").write_text("{}\n")
    env = {**os.environ, "TASKENGINE_DB": f"sqlite:///{tmp / 'runs.db'}",
           "TASKENGINE_KV": "memory://", "TASKENGINE_CONFIG": str(tmp / "none.yaml"),
           "TASKENGINE_LIMITS__RUN_TIMEOUT": str(run_timeout),
           "TASKENGINE_LIMITS__MAX_STEPS_CAP": "1000000000"}  # fmt: skip
    exe = Path(sys.executable).with_name("taskengine")
    proc = subprocess.Popen([str(exe), "serve", "--port", str(port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            httpx.get(f"{url}/health", timeout=1)
            return proc, url
        except httpx.TransportError:
            if time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError("server did not start") from None
            time.sleep(0.1)


def _probe(url: str, seconds: float | None, stop: threading.Event | None) -> list[float]:
    out: list[float] = []
    end = time.monotonic() + (seconds or 1e9)
    with httpx.Client(base_url=url, timeout=30) as client:
        while time.monotonic() < end and not (stop and stop.is_set()):
            started = time.perf_counter()
            client.get("/health")
            out.append(time.perf_counter() - started)
            time.sleep(0.01)
    return out


def _summary(samples: list[float]) -> str:
    ms = sorted(x * 1000 for x in samples)
    p99 = statistics.quantiles(ms, n=100)[98] if len(ms) > 2 else ms[-1]
    return f"n={len(ms)} p50={statistics.median(ms):.1f} ms p99={p99:.1f} ms max={ms[-1]:.1f} ms"


def runaway(seconds: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        proc, url = _serve(Path(tmp), seconds)
        try:
            idle = _probe(url, 2.0, None)
            stop = threading.Event()
            busy: list[float] = []
            watcher = threading.Thread(target=lambda: busy.extend(_probe(url, None, stop)))
            watcher.start()
            started = time.monotonic()
            response = httpx.post(f"{url}/tasks", json={"input": "x", "chain": SELF_LOOP},
                                  timeout=seconds * 10)  # fmt: skip
            answered = time.monotonic() - started
            stop.set()
            watcher.join()
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    return {"idle": idle, "busy": busy, "status": response.status_code, "answered_s": answered}


def template_bombs() -> list[tuple[str, float, int, str]]:
    from taskengine.errors import TaskEngineError
    from taskengine.templates import Template

    rows = []
    for name, source in TEMPLATES.items():
        tracemalloc.start()
        started = time.perf_counter()
        try:
            Template(source).render({"input": "x"})
            outcome = "rendered"
        except TaskEngineError as exc:
            outcome = f"refused: {str(exc)[:60]}"
        elapsed = time.perf_counter() - started
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        rows.append((name, elapsed, peak, outcome))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="limits.run_timeout")
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}")
    result = runaway(args.seconds)
    print(f"/health idle          : {_summary(result['idle'])}")
    print(f"/health runaway run   : {_summary(result['busy'])}")
    p99_idle = statistics.quantiles(result["idle"], n=100)[98]
    p99_busy = statistics.quantiles(result["busy"], n=100)[98]
    print(f"p99 ratio busy/idle   : {p99_busy / p99_idle:.1f}x")
    print(f"run_timeout={args.seconds:g}s answered HTTP {result['status']} after "
          f"{result['answered_s']:.2f} s")  # fmt: skip
    print("template                time      peak memory  outcome")
    for name, elapsed, peak, outcome in template_bombs():
        print(f"{name:22s} {elapsed * 1000:8.1f} ms {peak / 1024:9.0f} KiB  {outcome}")


if __name__ == "__main__":
    main()
