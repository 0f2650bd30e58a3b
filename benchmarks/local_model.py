"""The local model's figures: server start-up, generation and prompt speed, a short reply's
latency, memory. ``python -m benchmarks.local_model [--runs N] [--json PATH]``.

Starts its own llama-server through ``scripts/local-model.sh serve`` (build it first with
``scripts/local-model.sh build``), asks for greedy replies and reads the server's own timings, so
the numbers are the model's, not the HTTP client's. On a shared machine they vary with load:
the load average is printed with them.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "local-model.sh"


def _post(url: str, body: dict[str, Any]) -> dict[str, Any]:
    request = urllib.request.Request(
        url, json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=120) as response:
        return json.load(response)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_healthy(root: str, process: subprocess.Popen[bytes], limit: float = 60.0) -> float:
    started = time.perf_counter()
    while time.perf_counter() - started < limit:
        if process.poll() is not None:
            raise SystemExit("llama-server exited; is it built? (scripts/local-model.sh build)")
        try:
            with urllib.request.urlopen(f"{root}/health", timeout=2):
                return time.perf_counter() - started
        except OSError:
            time.sleep(0.05)
    raise SystemExit("llama-server did not become healthy")


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def measure(runs: int) -> dict[str, Any]:
    port = _free_port()
    root = f"http://127.0.0.1:{port}"
    process = subprocess.Popen(
        ["bash", str(SCRIPT), "serve", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        startup_s = _wait_healthy(root, process)
        url = f"{root}/v1/chat/completions"
        long_body = {"model": "m", "temperature": 0, "max_tokens": 100,
                     "messages": [{"role": "user", "content": "Write a story about a dragon."}]}  # fmt: skip
        short_body = {**long_body, "max_tokens": 30, "messages": [
            {"role": "user", "content": "Say something about the sea."}]}  # fmt: skip
        gen, prompt, short = [], [], []
        for _ in range(runs):
            timings = _post(url, long_body)["timings"]
            gen.append(timings["predicted_per_second"])
            started = time.perf_counter()
            _post(url, short_body)
            short.append(time.perf_counter() - started)
            big = _post(url, {**long_body, "max_tokens": 1, "messages": [
                {"role": "user", "content": f"Summarise: {'the quick brown fox ' * 50} #{_}"}]})  # fmt: skip
            prompt.append(big["timings"]["prompt_per_second"])
        return {
            "load_average": os.getloadavg()[0],
            "startup_s": round(startup_s, 2),
            "generation_tokens_per_s": round(statistics.median(gen), 1),
            "prompt_tokens_per_s": round(statistics.median(prompt), 1),
            "reply_30_tokens_s": round(statistics.median(short), 2),
            "rss_mb": round(_rss_mb(process.pid), 1),
            "runs": runs,
        }
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=10)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.local_model", description=__doc__.splitlines()[0])  # fmt: skip
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", metavar="PATH", help="also write the figures to PATH")
    args = parser.parse_args(argv)
    figures = measure(args.runs)
    for key, value in figures.items():
        print(f"{key:>26}: {value}")
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
